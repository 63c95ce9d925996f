"""What a file is, from its first bytes, never from its name.

Why: real archives carry an NRRD label map named ``slicer.seg.dcm`` (QuantitativeReporting test data), DICOM
files without any suffix, and NIfTI files named ``.img``. Every reader of the project (archive scan,
``measure``, ``run``) asks :func:`sniff` rather than looking at the suffix.

Signatures (each from the format's own specification):

* DICOM Part 10: 128-byte preamble then ``DICM``; a preamble-less stream (ACR-NEMA / raw dataset) starts
  with a group 0x0002 or 0x0008 element tag in little endian and must then parse with pydicom;
* NRRD: the magic ``NRRD000`` + version digit (detached ``.nhdr`` headers too);
* NIfTI-1 / NIfTI-2: ``sizeof_hdr`` (first int32, either byte order) is 348 / 540, and the magic at byte 344
  (``n+1``/``ni1``) or 4 (``n+2``/``ni2``); also inside gzip;
* MetaImage: a text header starting with ``ObjectType`` or ``NDims``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from enum import StrEnum
from pathlib import Path


class FileKind(StrEnum):
    DICOM = "dicom"
    NRRD = "nrrd"
    NIFTI = "nifti"
    METAIMAGE = "metaimage"
    UNKNOWN = "unknown"


#: the kinds SimpleITK reads as an image volume (a CT or a label map)
VOLUME_KINDS = frozenset({FileKind.NRRD, FileKind.NIFTI, FileKind.METAIMAGE})

_GZIP_MAGIC = b"\x1f\x8b"


def _nifti(head: bytes) -> bool:
    if len(head) < 348:
        return False
    for order in ("<", ">"):
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            return True
        if size == 540 and len(head) >= 8 and head[4:7] in (b"n+2", b"ni2"):
            return True
    return False


def _raw_dicom_parses(path: Path) -> bool:
    """A preamble-less stream: believe it only when pydicom parses a dataset with a SOP class or modality."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            path, force=True, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"]
        )
    except Exception:  # noqa: BLE001 - anything that does not parse is not DICOM
        return False
    return bool(ds.get("SOPClassUID", None) or ds.get("Modality", None))


def sniff_bytes(head: bytes) -> FileKind:
    """Kind of a file from its first bytes (at least 544 for NIfTI-2; 132 for DICOM); raw DICOM excluded."""
    if head.startswith(_GZIP_MAGIC):
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1024)
        except zlib.error:
            return FileKind.UNKNOWN
        return FileKind.NIFTI if _nifti(inner) else FileKind.UNKNOWN
    if len(head) >= 132 and head[128:132] == b"DICM":
        return FileKind.DICOM
    if head.startswith(b"NRRD000"):
        return FileKind.NRRD
    if _nifti(head):
        return FileKind.NIFTI
    text = head.lstrip()[:32]
    if text.startswith((b"ObjectType", b"NDims")):
        return FileKind.METAIMAGE
    return FileKind.UNKNOWN


def sniff(path: Path | str, *, parse_raw_dicom: bool = True) -> FileKind:
    """Kind of the file at ``path`` from its content (module docstring); UNKNOWN when none fits.

    ``parse_raw_dicom``: a file starting like a preamble-less DICOM stream is confirmed by parsing it with
    pydicom (set False where the caller parses it anyway).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            head = fp.read(1024)
    except OSError:
        return FileKind.UNKNOWN
    if head.startswith(_GZIP_MAGIC):
        # the first compressed block may be longer than what we read: decompress a bounded prefix
        try:
            with gzip.open(path, "rb") as gz:
                inner = gz.read(544)
        except (OSError, EOFError, zlib.error):
            return FileKind.UNKNOWN
        return FileKind.NIFTI if _nifti(inner) else FileKind.UNKNOWN
    kind = sniff_bytes(head)
    if kind is not FileKind.UNKNOWN:
        return kind
    raw_start = len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")
    if raw_start and (not parse_raw_dicom or _raw_dicom_parses(path)):
        return FileKind.DICOM
    return FileKind.UNKNOWN


def is_volume_file(path: Path | str) -> bool:
    """True for NIfTI / NRRD / MetaImage content (read with SimpleITK), whatever the name."""
    return sniff(path, parse_raw_dicom=False) in VOLUME_KINDS


_SITK_IMAGE_IO = {
    FileKind.NRRD: "NrrdImageIO",
    FileKind.NIFTI: "NiftiImageIO",
    FileKind.METAIMAGE: "MetaImageIO",
}


def sitk_reader(path: Path | str):  # noqa: ANN201 - SimpleITK is imported lazily
    """A SimpleITK ImageFileReader for ``path`` whose ImageIO is chosen by content, not by the suffix.

    Why: SimpleITK picks the ImageIO from the file name, so an NRRD named ``.dcm`` went to GDCM and failed.
    """
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    io_name = _SITK_IMAGE_IO.get(sniff(path, parse_raw_dicom=False))
    if io_name is not None:
        reader.SetImageIO(io_name)
    return reader


def read_sitk_image(path: Path | str):  # noqa: ANN201
    """The image at ``path`` read with the ImageIO its content calls for (see :func:`sitk_reader`)."""
    return sitk_reader(path).Execute()
