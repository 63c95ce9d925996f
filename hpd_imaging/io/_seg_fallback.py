"""Frame-by-frame decoding of a DICOM SEG with pydicom, for vendor SEGs that highdicom refuses.

Why: highdicom validates the whole SegmentSequence on reading; a Siemens syngo.via VA11A SEG lacks the
(mandatory) SegmentedPropertyCategoryCodeSequence and is refused, although its frames are perfectly usable
(46 voxels on 2 frames). The standard's violation is harmless for us: only the frames, their positions and
the segment numbers are needed. This reader is deliberately strict about geometry: every frame must lie on
a slice of the CT with the CT's orientation, pixel spacing and matrix; anything else is refused (no
resampling of an object we could not validate with highdicom).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from hpd_imaging.domain import CtImage
from hpd_imaging.errors import MaskError
from hpd_imaging.io._dicomread import BoundedReader
from hpd_imaging.settings.io import LoaderSettings

log = logging.getLogger(__name__)


@dataclass
class FallbackSegment:
    number: int
    label: str
    category_code: str = ""
    category_meaning: str = ""
    property_meaning: str = ""
    tracking_id: str = ""
    tracking_uid: str = ""
    mask: np.ndarray | None = None  # bool on the CT grid
    notes: list[str] = field(default_factory=list)


def _first(item: Dataset | None, sequence: str) -> Dataset | None:
    if item is None:
        return None
    seq = item.get(sequence, None)
    return seq[0] if seq else None


def _frame_attr(shared: Dataset | None, frame: Dataset | None, sequence: str, keyword: str) -> Any:
    for source in (frame, shared):
        inner = _first(source, sequence)
        if inner is not None and keyword in inner:
            return inner.get(keyword)
    return None


def _code(item: Dataset, keyword: str) -> tuple[str, str]:
    seq = item.get(keyword, None)
    if not seq:
        return "", ""
    return str(seq[0].get("CodeValue", "") or ""), str(seq[0].get("CodeMeaning", "") or "")


def missing_segment_attributes(ds: Dataset) -> list[str]:
    """Type 1 attributes of the Segment Description (PS3.3 C.8.20.4) absent from some segment."""
    required = (
        "SegmentNumber",
        "SegmentLabel",
        "SegmentAlgorithmType",
        "SegmentedPropertyCategoryCodeSequence",
        "SegmentedPropertyTypeCodeSequence",
    )
    missing: list[str] = []
    for item in ds.get("SegmentSequence", None) or []:
        missing.extend(k for k in required if k not in item and k not in missing)
    return missing


def decode_seg_frames(path: Path, ct: CtImage, settings: LoaderSettings) -> list[FallbackSegment]:
    """Every segment of the SEG at ``path`` as a boolean mask on ``ct``'s grid (module docstring)."""
    import pydicom

    with BoundedReader(path) as fp:
        ds = pydicom.dcmread(fp)
    where = str(path)
    seg_type = str(ds.get("SegmentationType", "BINARY") or "BINARY").upper()
    try:
        frames = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - codec or length problems
        raise MaskError(f"{where}: cannot decode SEG frames with pydicom: {exc}", path=where) from exc
    if frames.ndim == 2:
        frames = frames[None]
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", None) or [])
    if len(per_frame) != frames.shape[0]:
        raise MaskError(
            f"{where}: expected one PerFrameFunctionalGroupsSequence item per frame ({frames.shape[0]}), "
            f"got {len(per_frame)}",
            path=where,
        )
    segments: dict[int, FallbackSegment] = {}
    for item in ds.get("SegmentSequence", None) or []:
        number = int(item.get("SegmentNumber", 0) or 0)
        cat_code, cat_meaning = _code(item, "SegmentedPropertyCategoryCodeSequence")
        _, prop_meaning = _code(item, "SegmentedPropertyTypeCodeSequence")
        segments[number] = FallbackSegment(
            number=number,
            label=str(item.get("SegmentLabel", "") or number),
            category_code=cat_code,
            category_meaning=cat_meaning,
            property_meaning=prop_meaning,
            tracking_id=str(item.get("TrackingID", "") or ""),
            tracking_uid=str(item.get("TrackingUID", "") or ""),
        )
    geometry = ct.geometry
    n_k, n_j, n_i = geometry.shape
    directions = geometry.direction_matrix
    tol = settings.labelmap_tolerance_mm
    max_fraction = float(ds.get("MaximumFractionalValue", 255) or 255)
    for index, (frame, item) in enumerate(zip(frames, per_frame, strict=True)):
        iop = _frame_attr(shared, item, "PlaneOrientationSequence", "ImageOrientationPatient")
        ipp = _frame_attr(shared, item, "PlanePositionSequence", "ImagePositionPatient")
        spacing = _frame_attr(shared, item, "PixelMeasuresSequence", "PixelSpacing")
        if iop is None or ipp is None or spacing is None:
            raise MaskError(
                f"{where}: frame {index + 1}: expected ImageOrientationPatient, ImagePositionPatient and "
                "PixelSpacing in the functional groups, got some missing",
                path=where,
            )
        row_dir, col_dir = np.asarray([float(v) for v in iop[:3]]), np.asarray([float(v) for v in iop[3:6]])
        # DICOM PixelSpacing is (row spacing, column spacing) = (j, i)
        if (
            frame.shape != (n_j, n_i)
            or not np.allclose(row_dir, directions[:, 0], atol=settings.labelmap_tolerance_direction)
            or not np.allclose(col_dir, directions[:, 1], atol=settings.labelmap_tolerance_direction)
            or abs(float(spacing[0]) - geometry.spacing_mm[1]) > tol
            or abs(float(spacing[1]) - geometry.spacing_mm[0]) > tol
        ):
            raise MaskError(
                f"{where}: frame {index + 1}: SEG grid is not the CT grid (matrix {frame.shape} vs "
                f"{(n_j, n_i)}, orientation {[float(v) for v in iop]}, "
                f"spacing {[float(v) for v in spacing]}); "
                "a SEG that highdicom cannot read is only accepted on the CT's own grid",
                path=where,
            )
        ijk = geometry.lps_to_index(np.asarray([float(v) for v in ipp]))
        k = int(round(float(ijk[2])))
        if abs(ijk[0]) * geometry.spacing_mm[0] > tol or abs(ijk[1]) * geometry.spacing_mm[1] > tol:
            raise MaskError(
                f"{where}: frame {index + 1}: origin {[float(v) for v in ipp]} is not on the CT's pixel grid",
                path=where,
            )
        if abs(float(ijk[2]) - k) * geometry.spacing_mm[2] > tol or not 0 <= k < n_k:
            raise MaskError(
                f"{where}: frame {index + 1}: position {[float(v) for v in ipp]} matches no CT slice",
                path=where,
            )
        if seg_type == "LABELMAP":
            values = [int(v) for v in np.unique(frame) if v != 0]
        else:
            ident = _first(item, "SegmentIdentificationSequence") or _first(
                shared, "SegmentIdentificationSequence"
            )
            if ident is None:
                raise MaskError(f"{where}: frame {index + 1}: no ReferencedSegmentNumber", path=where)
            values = [int(ident.ReferencedSegmentNumber)]
        for number in values:
            seg = segments.setdefault(number, FallbackSegment(number=number, label=str(number)))
            if seg.mask is None:
                seg.mask = np.zeros(geometry.shape, dtype=bool)
            if seg_type == "LABELMAP":
                seg.mask[k] |= frame == number
            elif seg_type == "FRACTIONAL":
                # the fraction as highdicom rescales it (float32 / MaximumFractionalValue), so that a value
                # at the threshold falls on the same side in both readers
                fraction = frame.astype(np.float32) / max_fraction
                seg.mask[k] |= fraction >= settings.fractional_threshold
            else:
                seg.mask[k] |= frame > 0
    return [segments[n] for n in sorted(segments)]
