"""Seeded mutators: turn one valid seed into one broken, truncated, mislabelled or hostile input.

Why our own mutator rather than hypothesis or atheris: a case must be reproducible from ``(seed, index)``
alone (``python -m tools.fuzz --case N`` rebuilds it), must know the structure of DICOM to reach deep
code (a flipped byte mostly lands in pixel data, where it breaks nothing), and must run in a child process
under a memory limit. ``random.Random(f"{seed}:{index}")`` gives each case its own deterministic stream.

Four families, chosen with fixed weights:

* bytes: truncation, bit flips (biased to the header), overwritten runs, inserted or deleted bytes;
* dataset: a required attribute deleted, an attribute re-typed with a wrong VR, an absurd value (Rows x
  Columns x frames declaring gigabytes, zero/negative/NaN spacing, NaN positions, huge frame counts);
* identity (tools.fuzz.mutate_identity): TransferSyntaxUIDs that are not transfer syntaxes, identity fields
  and dates rewritten, a clinical.csv whose dates contradict the scans or are not dates;
* semantic, per target: wrong modality, duplicate UIDs/positions, mask/CT geometry mismatch, empty masks,
  a million contour points, NaN or ragged contour data, NIfTI headers declaring gigabytes or zero spacing.
"""

from __future__ import annotations

import copy
import gzip
import io
import math
import random
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ImplicitVRLittleEndian

from tools.fuzz.mutate_identity import IDENTITY_MUTATORS, clinical_table

NAN, INF = float("nan"), float("inf")

# attributes the loaders depend on: deleting or corrupting them must give a clear error
IMPORTANT = (
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
    "NumberOfFrames", "PixelData", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "RescaleSlope", "RescaleIntercept", "PhotometricInterpretation",
    "Modality", "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PatientID",
    "StudyDate", "SegmentationType", "SegmentSequence", "SegmentNumber", "ReferencedSegmentNumber",
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "PlanePositionSequence",
    "PlaneOrientationSequence", "PixelMeasuresSequence", "SegmentIdentificationSequence",
    "DimensionIndexValues", "DimensionIndexSequence", "ROIContourSequence", "ContourSequence", "ContourData",
    "NumberOfContourPoints", "ContourGeometricType", "StructureSetROISequence", "ROINumber",
    "ReferencedROINumber", "ReferencedFrameOfReferenceSequence", "MaximumFractionalValue",
    "PlanarConfiguration", "SegmentLabel", "ROIName", "PixelValueTransformationSequence",
)  # fmt: skip

# absurd values per keyword (the loaders must refuse them with a clear error, never crash or allocate)
ABSURD: dict[str, list[Any]] = {
    "Rows": [0, 1, 65535, 40000],
    "Columns": [0, 1, 65535, 40000],
    "NumberOfFrames": [0, -1, 1_000_000, 2**31 - 1, "abc"],
    "BitsAllocated": [0, 1, 7, 12, 32, 64, 65535],
    "BitsStored": [0, 40, 65535],
    "HighBit": [0, 40, 65535],
    "SamplesPerPixel": [0, 3, 65535],
    "PixelRepresentation": [2, 65535],
    "PixelSpacing": [[0, 0], [-1, -1], [NAN, 1], [INF, INF], [1e308, 1e308], [1e-300, 1e-300], [1]],
    "ImagePositionPatient": [[NAN, NAN, NAN], [INF, 0, 0], [1e308, 1e308, 1e308], [0, 0], [-1e12, 0, 5]],
    "ImageOrientationPatient": [
        [0] * 6,
        [1, 0, 0, 1, 0, 0],
        [NAN] * 6,
        [1, 0, 0, 0, 1],
        [1e308, 0, 0, 0, 1, 0],
    ],
    "SliceThickness": [0, -5, NAN, 1e308],
    "SpacingBetweenSlices": [0, -5, NAN, 1e308],
    "RescaleSlope": [0, NAN, INF, 1e308, -1e308],
    "RescaleIntercept": [NAN, 1e308, -1e308],
    "NumberOfContourPoints": [0, 10**9, -1, 3],
    "SegmentNumber": [0, 65535, 99],
    "ReferencedSegmentNumber": [0, 65535, 99],
    "ROINumber": [0, -1, 2**31 - 1],
    "ReferencedROINumber": [0, -1, 2**31 - 1],
    "MaximumFractionalValue": [0, 1, 65535],
    "Modality": ["MR", "SEG", "RTSTRUCT", "SR", "", "OT"],
    "SOPClassUID": [
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.840.10008.5.1.4.1.1.2.1",
        "1.2.840.10008.5.1.4.1.1.66.4",
        "1.2.840.10008.5.1.4.1.1.481.3",
        "1.2.3",
        "",
    ],  # fmt: skip
    "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "YBR_FULL", ""],
    "FrameOfReferenceUID": ["1.2.3.999", ""],
    "SegmentationType": ["FRACTIONAL", "LABELMAP", "BINARY", "XYZ"],
    "DimensionIndexValues": [[0, 0], [65535, 65535], [1]],
    "ContourGeometricType": ["POINT", "OPEN_PLANAR", "", "CLOSED_PLANAR_XOR"],
    "PlanarConfiguration": [1, 65535],
}
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.2",  # explicit big endian (retired)
    "1.2.840.10008.1.2",  # implicit little endian
    "1.2.3.4",  # unknown
)
_WRONG_VRS: dict[str, Any] = {
    "US": 65535, "SS": -32768, "UL": 2**32 - 1, "FD": NAN, "FL": INF, "DS": "abc", "IS": "1.5",
    "SQ": [], "LO": "garbage\x00", "UI": "not.a.uid!", "OB": b"\x00\x01\x02", "CS": "X" * 70,
    "AT": 0x00100010,
}  # fmt: skip
INTERESTING_BYTES = (
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xfe\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\xff\xff",
)


@dataclass
class Mutant:
    """One case's files (name -> bytes) and what was done, for the report and for reproduction."""

    target: str
    files: dict[str, bytes]
    mutation: str
    main: str  # the file given to the mask readers (or the single CT file)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# bytes
# --------------------------------------------------------------------------------------------------


def _pos(data: bytes, rng: random.Random, header_bias: float = 0.7) -> int:
    """A position in ``data``, usually in the first 4 KB (the header) where a flip breaks structure."""
    n = len(data)
    if n == 0:
        return 0
    if rng.random() < header_bias:
        return rng.randrange(min(n, 4096))
    return rng.randrange(n)


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    cut = _pos(data, rng, 0.5)
    return data[:cut], f"truncate at {cut} of {len(data)} bytes"


def flip_bits(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    flips = []
    for _ in range(rng.randint(1, 8)):
        if not buf:
            break
        i = _pos(data, rng)
        buf[i] ^= 1 << rng.randrange(8)
        flips.append(i)
    return bytes(buf), f"flip bits at {flips}"


def overwrite(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    i = _pos(data, rng)
    if rng.random() < 0.5:
        chunk = rng.choice(INTERESTING_BYTES)
    else:
        chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return data[:i] + chunk + data[i + len(chunk) :], f"overwrite {chunk.hex()} at {i}"


def insert_delete(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    i = _pos(data, rng)
    n = rng.randint(1, 64)
    if rng.random() < 0.5:
        return data[:i] + bytes(rng.randrange(256) for _ in range(n)) + data[i:], f"insert {n} bytes at {i}"
    return data[:i] + data[i + n :], f"delete {n} bytes at {i}"


BYTE_MUTATORS: tuple[Callable[[bytes, random.Random], tuple[bytes, str]], ...] = (
    truncate,
    flip_bits,
    overwrite,
    insert_delete,
)


# --------------------------------------------------------------------------------------------------
# pydicom datasets
# --------------------------------------------------------------------------------------------------


def walk(ds: Dataset) -> Iterator[tuple[Dataset, DataElement]]:
    """Every (parent dataset, element) pair, into sequences. Pixel data stays unconverted."""
    for tag in list(ds.keys()):
        elem = ds[tag]
        yield ds, elem
        if elem.VR == "SQ" and elem.value is not None:
            for item in elem.value:
                yield from walk(item)


def _pick(
    ds: Dataset, rng: random.Random, keywords: tuple[str, ...] | None = None
) -> tuple[Dataset, DataElement] | None:
    pairs = list(walk(ds))
    if keywords is not None:
        wanted = [(p, e) for p, e in pairs if e.keyword in keywords]
        pairs = wanted or pairs
    return rng.choice(pairs) if pairs else None


def delete_attribute(ds: Dataset, rng: random.Random) -> str:
    picked = _pick(ds, rng, IMPORTANT if rng.random() < 0.8 else None)
    if picked is None:
        return "nothing to delete"
    parent, elem = picked
    del parent[elem.tag]
    return f"delete {elem.keyword or elem.tag}"


def wrong_vr(ds: Dataset, rng: random.Random) -> str:
    picked = _pick(ds, rng, IMPORTANT if rng.random() < 0.8 else None)
    if picked is None:
        return "nothing to retype"
    parent, elem = picked
    vr = rng.choice([v for v in _WRONG_VRS if v != elem.VR])
    parent[elem.tag] = DataElement(elem.tag, vr, _WRONG_VRS[vr])
    return f"retype {elem.keyword or elem.tag} {elem.VR} -> {vr}"


def absurd_value(ds: Dataset, rng: random.Random) -> str:
    pairs = [(p, e) for p, e in walk(ds) if e.keyword in ABSURD]
    if not pairs:
        return wrong_vr(ds, rng)
    parent, elem = rng.choice(pairs)
    value = rng.choice(ABSURD[elem.keyword])
    if elem.VR == "DS" and isinstance(value, list):
        value = [_ds(v) for v in value]
    elif elem.VR == "DS":
        value = _ds(value)
    elif elem.VR in ("US", "UL", "SS", "SL") and (not isinstance(value, int) or value < 0 or value > 65535):
        elem_vr = "SL" if isinstance(value, int) and value < 0 else "UL" if isinstance(value, int) else "LO"
        parent[elem.tag] = DataElement(elem.tag, elem_vr, value)
        return f"set {elem.keyword} = {value!r} (as {elem_vr})"
    parent[elem.tag] = DataElement(elem.tag, elem.VR, value)
    return f"set {elem.keyword} = {value!r}"


def _ds(value: Any) -> str:
    """A DS string for any number, including NaN and infinities (which real broken files contain)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def transfer_syntax(ds: Dataset, rng: random.Random) -> str:
    syntax = rng.choice(TRANSFER_SYNTAXES)
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    return f"TransferSyntaxUID = {syntax} (pixels unchanged)"


def declare_gigabytes(ds: Dataset, rng: random.Random) -> str:
    """Header declares gigabytes of pixel data while the file holds a few bytes: a memory bomb."""
    ds.Rows, ds.Columns = 65535, 65535
    what = "Rows = Columns = 65535"
    if "NumberOfFrames" in ds or rng.random() < 0.3:
        ds.NumberOfFrames = rng.choice([1000, 100_000])
        what += f", NumberOfFrames = {ds.NumberOfFrames}"
    return what + " (declares gigabytes)"


DATASET_MUTATORS: tuple[Callable[[Dataset, random.Random], str], ...] = (
    delete_attribute,
    wrong_vr,
    absurd_value,
    absurd_value,
    transfer_syntax,
    declare_gigabytes,
)


def dataset_bytes(ds: Dataset) -> bytes:
    """Serialise without validation: the point is to write what a broken writer would.

    The encoding of the dataset as read is kept (``force_encoding``), even when a mutation changed the
    Transfer Syntax UID, so that header and body may disagree as they do in damaged files.
    """
    buf = io.BytesIO()
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.pop("FileMetaInformationGroupLength", None)
    implicit, little = getattr(ds, "_hpd_encoding", None) or ds.original_encoding
    splice = getattr(ds, "_hpd_splice", None)
    if splice is not None:  # sequences of undefined length: the spliced element changes no outer length
        for _, elem in walk(ds):
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for item in elem.value or []:
                    item.is_undefined_length_sequence_item = True
    pydicom.dcmwrite(
        buf,
        ds,
        implicit_vr=bool(implicit) if implicit is not None else False,
        little_endian=bool(little) if little is not None else True,
        enforce_file_format=False,
        force_encoding=True,
    )
    return _splice(buf.getvalue(), *splice) if splice is not None else buf.getvalue()


def read_dataset(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


# --------------------------------------------------------------------------------------------------
# semantic mutations (need the target's structure)
# --------------------------------------------------------------------------------------------------


def _nested(ds: Dataset, keyword: str) -> list[tuple[Dataset, DataElement]]:
    return [(p, e) for p, e in walk(ds) if e.keyword == keyword]


def wrong_modality(ds: Dataset, rng: random.Random) -> str:
    modality = rng.choice(["MR", "SEG", "RTSTRUCT", "CT", "SR", "PT"])
    ds.Modality = modality
    if rng.random() < 0.5:
        ds.SOPClassUID = rng.choice(ABSURD["SOPClassUID"])
        return f"Modality = {modality}, SOPClassUID = {ds.SOPClassUID}"
    return f"Modality = {modality}"


def shift_positions(ds: Dataset, rng: random.Random) -> str:
    """Mask or slice positions off the CT lattice (half a voxel, far away, or NaN)."""
    shift = rng.choice([0.5, 0.37, 1000.0, NAN, -3.0])
    axis = rng.randrange(3)
    n = 0
    for _, elem in _nested(ds, "ImagePositionPatient"):
        values = [float(v) for v in elem.value]
        if len(values) == 3:
            values[axis] += shift
            elem.value = [_ds(v) for v in values]
            n += 1
    return f"ImagePositionPatient[{axis}] += {shift} in {n} place(s)"


def scale_spacing(ds: Dataset, rng: random.Random) -> str:
    factor = rng.choice([1.5, 2.0, 0.5, 0.0, -1.0])
    for _, elem in _nested(ds, "PixelSpacing"):
        elem.value = [_ds(float(v) * factor) for v in elem.value]
    for _, elem in _nested(ds, "SliceThickness") + _nested(ds, "SpacingBetweenSlices"):
        elem.value = _ds(float(elem.value) * factor)
    return f"PixelSpacing/SliceThickness x {factor}"


def other_frame_of_reference(ds: Dataset, rng: random.Random) -> str:
    for _, elem in _nested(ds, "FrameOfReferenceUID") + _nested(ds, "ReferencedFrameOfReferenceUID"):
        elem.value = "1.2.826.0.1.3680043.8.498.999"
    return "FrameOfReferenceUID changed (mask on another frame of reference)"


def empty_pixels(ds: Dataset, rng: random.Random) -> str:
    if "PixelData" in ds:
        ds.PixelData = bytes(len(ds.PixelData))
    return "PixelData all zero (empty mask)"


def duplicate_segment_numbers(ds: Dataset, rng: random.Random) -> str:
    for _, elem in _nested(ds, "SegmentNumber") + _nested(ds, "ReferencedSegmentNumber"):
        elem.value = 1
    return "every SegmentNumber / ReferencedSegmentNumber = 1 (duplicates)"


def _contours(ds: Dataset) -> list[Dataset]:
    return [c for roi in ds.get("ROIContourSequence", []) for c in roi.get("ContourSequence", [])]


_MILLION: list[bytes] = []
_PLACEHOLDER = "9.87654321\\8.7654321\\7.654321"


def million_points(ds: Dataset, rng: random.Random) -> str:
    """One contour with a million points in implicit VR (explicit VR DS values cannot exceed 64 KB, which is
    why real files this big are implicit VR).

    Why the splice (see :func:`dataset_bytes`): pydicom converts a 3-million-value DS while writing it
    (seconds per case); instead a short placeholder is written and replaced by the prebuilt bytes.
    """
    contours = _contours(ds)
    if not contours:
        return "no contour to inflate"
    contour = rng.choice(contours)
    n = 1_000_000
    if not _MILLION:
        _MILLION.append(b"\\".join([b"1.5\\2.5\\0.0"] * n))
    contour.ContourData = _PLACEHOLDER.split("\\")
    contour.NumberOfContourPoints = rng.choice([n, 4])  # a lying count too
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds._hpd_encoding = (True, True)  # type: ignore[attr-defined]
    ds._hpd_splice = (_PLACEHOLDER.encode("ascii"), _MILLION[0])  # type: ignore[attr-defined]
    return f"one contour with {n} points (NumberOfContourPoints {contour.NumberOfContourPoints})"


def _splice(data: bytes, placeholder: bytes, value: bytes) -> bytes:
    """Replace the implicit-VR little-endian ContourData element holding ``placeholder`` by ``value``."""
    padded = placeholder + b" " * (len(placeholder) % 2)
    tag = struct.pack("<HH", 0x3006, 0x0050)
    old = tag + struct.pack("<I", len(padded)) + padded
    value = value + b" " * (len(value) % 2)
    return data.replace(old, tag + struct.pack("<I", len(value)) + value, 1)


def bad_contour_data(ds: Dataset, rng: random.Random) -> str:
    contours = _contours(ds)
    if not contours:
        return "no contour"
    contour = rng.choice(contours)
    values = [float(v) for v in contour.ContourData]
    choice = rng.randrange(4)
    if choice == 0:
        values[rng.randrange(len(values))] = NAN
        what = "a NaN coordinate"
    elif choice == 1:
        values = values[: len(values) - rng.choice([1, 2])]
        what = "ragged ContourData (not a multiple of 3)"
    elif choice == 2:
        values = [v + 1e6 if i % 3 == 2 else v for i, v in enumerate(values)]
        what = "contour 1 km off every slice"
    else:
        values = [v * 1e300 for v in values]
        what = "coordinates of 1e300 mm"
    contour.ContourData = [_ds(v) for v in values]
    return what


def duplicate_roi_numbers(ds: Dataset, rng: random.Random) -> str:
    for _, elem in _nested(ds, "ROINumber") + _nested(ds, "ReferencedROINumber"):
        elem.value = 1
    return "every ROINumber / ReferencedROINumber = 1 (duplicates)"


def empty_contours(ds: Dataset, rng: random.Random) -> str:
    for roi in ds.get("ROIContourSequence", []):
        roi.ContourSequence = DicomSequence([])
    return "every ContourSequence empty"


SEMANTIC: dict[str, tuple[Callable[[Dataset, random.Random], str], ...]] = {
    "ct": (wrong_modality, shift_positions, scale_spacing, declare_gigabytes),
    "seg": (
        wrong_modality, shift_positions, scale_spacing, other_frame_of_reference, empty_pixels,
        duplicate_segment_numbers, declare_gigabytes,
    ),
    "rtstruct": (
        wrong_modality, million_points, bad_contour_data, bad_contour_data, duplicate_roi_numbers,
        empty_contours, other_frame_of_reference,
    ),
}  # fmt: skip


def series_mutation(files: dict[str, bytes], rng: random.Random) -> tuple[dict[str, bytes], str] | None:
    """Mutations that need several slices: duplicate UIDs or positions, mixed series, a copied file."""
    names = sorted(n for n in files if not n.endswith(".nii") and not n.endswith(".gz"))
    if len(names) < 2:
        return None
    a, b = rng.sample(names, 2)
    ds_a, ds_b = read_dataset(files[a]), read_dataset(files[b])
    choice = rng.randrange(5)
    if choice == 0:
        ds_b.SOPInstanceUID = ds_a.get("SOPInstanceUID", "1.2.3")
        what = f"{b} has the SOPInstanceUID of {a}"
    elif choice == 1:
        if "ImagePositionPatient" in ds_a:
            ds_b.ImagePositionPatient = ds_a.ImagePositionPatient
        what = f"{b} at the position of {a} (duplicate slice)"
    elif choice == 2:
        ds_b.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.31337"
        what = f"{b} in another series"
    elif choice == 3:
        out = dict(files)
        out[f"copy_of_{a}"] = files[a]
        return out, f"{a} copied under another name (duplicate UIDs and position)"
    else:
        ds_b.Rows = int(ds_b.get("Rows", 8) or 8) + 1
        what = f"{b} declares one more row (mixed matrix, short pixel data)"
    out = dict(files)
    out[b] = dataset_bytes(ds_b)
    return out, what


# --------------------------------------------------------------------------------------------------
# NIfTI / NRRD headers
# --------------------------------------------------------------------------------------------------

# NIfTI-1 header fields: (offset, struct format) -- https://nifti.nimh.nih.gov/nifti-1/documentation/nifti1fields
_NIFTI_FIELDS: dict[str, tuple[int, str, list[Any]]] = {
    "dim": (40, "<8h", [(3, 32767, 32767, 32767, 1, 1, 1, 1), (3, 0, 8, 3, 1, 1, 1, 1),
                        (3, -1, 8, 3, 1, 1, 1, 1),
                         (7, 8, 8, 3, 2, 2, 2, 2), (3, 30000, 30000, 3, 1, 1, 1, 1)]),
    "datatype": (70, "<h", [0, 16, 32, 128, 2304, 1792, 255]),
    "bitpix": (72, "<h", [0, 1, 64, 255]),
    "pixdim": (76, "<8f", [(1, 0, 0, 0, 1, 1, 1, 1), (1, -1, 1, 2, 1, 1, 1, 1), (1, NAN, 1, 2, 1, 1, 1, 1),
                           (1, INF, INF, INF, 1, 1, 1, 1), (1, 1e-30, 1e-30, 1e-30, 1, 1, 1, 1)]),
    "vox_offset": (108, "<f", [0.0, 1e9, -352.0, NAN]),
    "scl_slope": (112, "<f", [NAN, INF, 0.0]),
    "qform_code": (252, "<h", [0, 1, 99]),
    "quatern": (256, "<3f", [(NAN, 0, 0), (2.0, 2.0, 2.0)]),
    "qoffset": (268, "<3f", [(NAN, 0, 0), (1e38, 1e38, 1e38)]),
    "srow_x": (280, "<4f", [(0, 0, 0, 0), (NAN, 0, 0, 0), (1e38, 0, 0, 0)]),
    "sizeof_hdr": (0, "<i", [0, 540, -1]),
}  # fmt: skip


def nifti_header(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Overwrite one NIfTI-1 header field with an absurd value (gzip-aware)."""
    compressed = data[:2] == b"\x1f\x8b"
    raw = gzip.decompress(data) if compressed else data
    if len(raw) < 348:
        return overwrite(data, rng)
    name, (offset, fmt, values) = rng.choice(sorted(_NIFTI_FIELDS.items()))
    value = rng.choice(values)
    packed = struct.pack(fmt, *(value if isinstance(value, tuple) else (value,)))
    raw = raw[:offset] + packed + raw[offset + len(packed) :]
    out = gzip.compress(raw, mtime=0) if compressed else raw
    return out, f"NIfTI {name} = {value}"


def nrrd_header(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Rewrite one NRRD header line (sizes, spacings, type, encoding) with an absurd value."""
    end = data.find(b"\n\n")
    if end < 0:
        return overwrite(data, rng)
    header = data[:end].decode("latin-1")
    choices = [
        (r"sizes: .*", "sizes: 65535 65535 65535"),
        (r"sizes: .*", "sizes: 0 3 3"),
        (r"space directions: .*", "space directions: (0,0,0) (0,1,0) (0,0,1)"),
        (r"space directions: .*", "space directions: (nan,0,0) (0,1,0) (0,0,1)"),
        (r"type: .*", "type: double"),
        (r"encoding: .*", "encoding: bzip2"),
        (r"dimension: .*", "dimension: 7"),
    ]
    pattern, repl = rng.choice(choices)
    new = re.sub(pattern, repl, header, count=1)
    return new.encode("latin-1") + data[end:], f"NRRD header: {repl}"


def labelmap_semantic(name: str, rng: random.Random) -> tuple[bytes, str]:
    """A valid label map that is empty or off the CT grid."""
    import tempfile

    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    from tools.fuzz import corpus

    values = corpus.labelmap_values()
    choice = rng.randrange(4)
    if choice == 0:
        values = np.zeros_like(values)
    image = sitk.GetImageFromArray(values)
    spacing = (corpus.PIXEL_SPACING_MM[1], corpus.PIXEL_SPACING_MM[0], corpus.SLICE_SPACING_MM)
    origin = list(corpus.ORIGIN_MM)
    what = "empty label map (all zero)"
    if choice == 1:
        origin[0] += 0.4
        what = "label map shifted 0.4 mm off the CT lattice"
    elif choice == 2:
        spacing = (spacing[0] * 1.5, spacing[1], spacing[2])
        what = "label map with 1.5x the CT's column spacing"
    elif choice == 3:
        image = sitk.GetImageFromArray(np.pad(values, ((0, 1), (0, 0), (0, 0))))
        what = "label map with one slice more than the CT"
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    suffix = ".nii.gz" if name.endswith(".gz") else ".nii"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"labels{suffix}"
        sitk.WriteImage(image, str(path), useCompression=suffix == ".nii.gz")
        return path.read_bytes(), what


# --------------------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------------------


def mutate(seed: dict[str, Any], files: dict[str, bytes], rng: random.Random) -> Mutant:
    """Apply one mutation to a seed (files: name -> bytes); deterministic for a given ``rng`` state.

    A structured mutation that cannot be applied or written (pydicom refuses the value) falls back to bit
    flips, recorded in the description.
    """
    try:
        return _mutate(seed, files, rng)
    except Exception as exc:  # noqa: BLE001 - the harness must always produce a case
        main = sorted(files)[0]
        out = dict(files)
        out[main], what = flip_bits(files[main], rng)
        return Mutant(
            seed["target"], out, f"bytes: {what} (fallback after {type(exc).__name__}: {exc})", main
        )


def _mutate(seed: dict[str, Any], files: dict[str, bytes], rng: random.Random) -> Mutant:
    target = seed["target"]
    names = sorted(files)
    main = names[0] if len(names) == 1 else rng.choice(names)
    out = dict(files)
    roll = rng.random()
    if target == "ct" and len(names) > 1 and roll < 0.1:
        result = series_mutation(files, rng)
        if result is not None:
            out, what = result
            return Mutant(target, out, f"series: {what}", main)
    is_dicom = target != "labelmap"
    if not is_dicom:
        if roll < 0.35:
            if main.endswith(".nrrd"):
                out[main], what = nrrd_header(files[main], rng)
            else:
                out[main], what = nifti_header(files[main], rng)
            return Mutant(target, out, f"header: {what}", main)
        if roll < 0.5 and not main.endswith(".nrrd"):
            out[main], what = labelmap_semantic(main, rng)
            return Mutant(target, out, f"semantic: {what}", main)
        mutator = rng.choice(BYTE_MUTATORS)
        out[main], what = mutator(files[main], rng)
        return Mutant(target, out, f"bytes: {what}", main)
    if roll < 0.45:
        mutator = rng.choice(BYTE_MUTATORS)
        out[main], what = mutator(files[main], rng)
        return Mutant(target, out, f"bytes: {what}", main)
    ds = copy.deepcopy(_parsed(files[main]))
    if 0.62 <= roll < 0.75:  # identity, dates, transfer syntaxes, and a clinical.csv (issue 16)
        if roll < 0.66:
            out["clinical.csv"], what = clinical_table(ds, rng)
            return Mutant(target, out, f"clinical: {what}", main)
        id_mutator = rng.choice(IDENTITY_MUTATORS)
        what = id_mutator(ds, rng)
        out[main] = dataset_bytes(ds)
        return Mutant(target, out, f"identity: {id_mutator.__name__}: {what}", main)
    family = "semantic" if roll >= 0.75 else "dataset"
    mutators = SEMANTIC[target] if family == "semantic" else DATASET_MUTATORS
    ds_mutator = rng.choice(mutators)
    what = ds_mutator(ds, rng)
    out[main] = dataset_bytes(ds)
    return Mutant(target, out, f"{family}: {ds_mutator.__name__}: {what}", main)


_PARSED: dict[int, Dataset] = {}


def _parsed(data: bytes) -> Dataset:
    """Seeds parsed once per process (keyed by identity of the bytes object, which the corpus keeps)."""
    key = id(data)
    if key not in _PARSED:
        ds = read_dataset(data)
        for _ in walk(ds):  # convert raw elements once, so deep copies are cheap and independent
            pass
        _PARSED[key] = ds
    return _PARSED[key]
