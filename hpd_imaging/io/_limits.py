"""Memory-bomb guards: check what a header *declares* before anything is decoded or allocated.

A hostile or corrupt file can declare Rows x Columns x frames worth gigabytes while holding a few bytes; a
reader that trusts the header allocates the volume first and fails (or swaps the machine) afterwards. Here the
declared size is computed from the header alone and refused when

* it exceeds ``LoaderSettings.max_pixel_data_bytes`` (:class:`InputLimitError`), or
* the pixel data is stored uncompressed and the file cannot hold it (:class:`DicomReadError`: truncated or
  corrupt). Compressed data cannot be compared with the file size (the ratio is unbounded for blank images),
  so for it the configured limit is the guard.

The same rules apply to NIfTI/NRRD/MetaImage headers (read with SimpleITK's ``ReadImageInformation``, which
reads no voxels). docs/robustness.md lists every guard and its default limit.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID

from hpd_imaging.errors import DicomReadError, InputLimitError
from hpd_imaging.io._niftiguard import nifti_header_problem
from hpd_imaging.settings.io import LoaderSettings

_PIXEL_DATA_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}  # Pixel, Float, Double Float
_UNDEFINED_LENGTH = 0xFFFFFFFF


def _positive_int(ds: Dataset, keyword: str, where: str, default: int | None = None) -> int:
    value = ds.get(keyword, None)
    if value in (None, "") and default is not None:
        return default
    try:
        number = int(value)  # type: ignore[arg-type]
        if number != float(value):  # type: ignore[arg-type]
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise DicomReadError(
            f"{where}: expected {keyword} to be a positive integer, got {value!r}", path=where
        ) from None
    if number < 1:
        raise DicomReadError(f"{where}: expected {keyword} >= 1, got {number}", path=where)
    return number


def declared_pixel_bytes(ds: Dataset, where: str) -> int:
    """Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames (bit-packed for 1-bit data)."""
    rows = _positive_int(ds, "Rows", where)
    columns = _positive_int(ds, "Columns", where)
    samples = _positive_int(ds, "SamplesPerPixel", where, default=1)
    frames = _positive_int(ds, "NumberOfFrames", where, default=1)
    bits = _positive_int(ds, "BitsAllocated", where)
    if bits != 1 and (bits % 8 or bits > 64):
        raise DicomReadError(
            f"{where}: expected BitsAllocated 1 or a multiple of 8 up to 64, got {bits}", path=where
        )
    n_bits = rows * columns * samples * frames * bits
    return math.ceil(n_bits / 8)


def _pixel_element_length(path: Path, offset: int, explicit_vr: bool, little_endian: bool) -> int | None:
    """Length field of the element at ``offset`` (the pixel data), or None when it is something else."""
    endian = "<" if little_endian else ">"
    with open(path, "rb") as fp:
        fp.seek(offset)
        head = fp.read(12)
    if len(head) < 8:
        return 0
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group, element) not in _PIXEL_DATA_TAGS:
        return None
    if not explicit_vr:
        return int(struct.unpack(endian + "I", head[4:8])[0])
    if len(head) < 12:
        return 0
    return int(struct.unpack(endian + "I", head[8:12])[0])


def check_dicom_pixel_size(
    path: Path | str, ds: Dataset, settings: LoaderSettings, *, pixel_offset: int | None = None
) -> int:
    """Refuse a DICOM image whose declared pixel data is over the limit or larger than its file.

    ``ds`` is the header (read with ``stop_before_pixels``); ``pixel_offset`` is where the pixel data element
    starts (``fp.tell()`` after that read), which gives the exact stored length of uncompressed data.
    Returns the declared size in bytes.
    """
    where = str(path)
    declared = declared_pixel_bytes(ds, where)
    if declared > settings.max_pixel_data_bytes:
        raise InputLimitError(
            f"{where}: header declares {declared} bytes of pixel data ({ds.get('Rows')} rows x "
            f"{ds.get('Columns')} columns x {ds.get('NumberOfFrames', 1)} frames x "
            f"{ds.get('BitsAllocated')} bits); expected at most max_pixel_data_bytes="
            f"{settings.max_pixel_data_bytes}",
            path=where,
        )
    meta = getattr(ds, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", "") or "")) if meta is not None else UID("")
    if syntax:
        if not syntax.is_transfer_syntax or syntax.is_compressed or syntax.is_deflated:
            return declared  # compressed, deflated or unknown: only the limit applies
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    else:  # no file meta (raw stream): the encoding pydicom found
        implicit, little = (True if v is None else bool(v) for v in ds.original_encoding)
    size = os.path.getsize(path)
    available = size - (pixel_offset or 0)
    if pixel_offset is not None:
        length = _pixel_element_length(Path(path), pixel_offset, not implicit, little)
        if length is not None and length != _UNDEFINED_LENGTH:
            available = min(available, length)
    if declared > available:
        raise DicomReadError(
            f"{where}: header declares {declared} bytes of uncompressed pixel data ({ds.get('Rows')} x "
            f"{ds.get('Columns')} x {ds.get('NumberOfFrames', 1)} frames x {ds.get('BitsAllocated')} bits), "
            f"expected at most the {max(available, 0)} bytes the file holds (truncated or corrupt file)",
            path=where,
        )
    return declared


def check_mask_count(
    n_masks: int, shape: tuple[int, ...], settings: LoaderSettings, where: str, what: str
) -> None:
    """Refuse a segmentation that would become more dense masks (one byte per CT voxel) than allowed."""
    n_bytes = n_masks * math.prod(shape)
    if n_bytes > settings.max_mask_bytes:
        raise InputLimitError(
            f"{where}: {n_masks} {what} on a {shape} CT grid would take {n_bytes} bytes of masks; "
            f"expected at most max_mask_bytes={settings.max_mask_bytes}",
            path=where,
        )


def check_image_header(path: Path | str, settings: LoaderSettings, *, max_voxels: int | None = None) -> None:
    """Refuse a NIfTI/NRRD/MetaImage whose header declares more voxels or bytes than the limits allow.

    For uncompressed ``.nii`` files the declared voxel bytes must also fit in the file.
    """
    import SimpleITK as sitk  # noqa: N813

    from hpd_imaging.io.filetype import sitk_reader

    where = str(path)
    if (problem := nifti_header_problem(path)) is not None:  # ITK hangs on such headers (issue 16)
        raise DicomReadError(problem, path=where)
    reader = sitk_reader(where)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DicomReadError(f"{where}: cannot read image header with SimpleITK: {exc}", path=where) from exc
    size = tuple(int(n) for n in reader.GetSize())
    n_voxels = math.prod(size)
    components = int(reader.GetNumberOfComponents())
    per_component = _bytes_per_component(reader.GetPixelID(), sitk)
    declared = n_voxels * max(components, 1) * per_component
    if max_voxels is not None and n_voxels > max_voxels:
        raise InputLimitError(
            f"{where}: header declares {size} = {n_voxels} voxels; expected at most {max_voxels}", path=where
        )
    if declared > settings.max_pixel_data_bytes:
        raise InputLimitError(
            f"{where}: header declares {declared} bytes of voxel data (size {size}, {components} "
            f"component(s) of {per_component} bytes); expected at most max_pixel_data_bytes="
            f"{settings.max_pixel_data_bytes}",
            path=where,
        )
    if where.lower().endswith(".nii") and declared > os.path.getsize(where):
        raise DicomReadError(
            f"{where}: header declares {declared} bytes of voxel data (size {size}), expected at most the "
            f"{os.path.getsize(where)} bytes the file holds (truncated or corrupt file)",
            path=where,
        )


def _bytes_per_component(pixel_id: int, sitk: object) -> int:
    """Size in bytes of one component of a SimpleITK pixel type (8 for anything unknown: conservative)."""
    name = str(sitk.GetPixelIDValueAsString(pixel_id)).lower()  # type: ignore[attr-defined]
    factor = 2 if "complex" in name else 1  # real and imaginary parts
    for token, n in (("8-bit", 1), ("16-bit", 2), ("32-bit", 4), ("64-bit", 8)):
        if token in name:
            return n * factor
    return 8 * factor
