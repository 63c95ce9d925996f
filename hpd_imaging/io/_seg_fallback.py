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
    # CT slice k -> (first row, first column, bool crop of the frame's voxels of this segment): only the
    # frames' content boxes are kept, so a segment costs its extent, not the CT grid (issue 21)
    frames: dict[int, tuple[int, int, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, k: int, voxels: np.ndarray) -> None:
        """OR one frame's voxels (bool rows x columns on CT slice ``k``) into the segment."""
        rows = np.flatnonzero(voxels.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(voxels.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        if k in self.frames:  # a second frame on the same slice (LABELMAP / overlapping frames): merge boxes
            pr0, pc0, prev = self.frames[k]
            nr0, nc0 = min(r0, pr0), min(c0, pc0)
            nr1, nc1 = max(r1, pr0 + prev.shape[0]), max(c1, pc0 + prev.shape[1])
            merged = np.zeros((nr1 - nr0, nc1 - nc0), dtype=bool)
            merged[pr0 - nr0 : pr0 - nr0 + prev.shape[0], pc0 - nc0 : pc0 - nc0 + prev.shape[1]] = prev
            merged[r0 - nr0 : r1 - nr0, c0 - nc0 : c1 - nc0] |= voxels[r0:r1, c0:c1]
            self.frames[k] = (nr0, nc0, merged)
        else:
            self.frames[k] = (r0, c0, voxels[r0:r1, c0:c1].copy())

    def crop(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The segment as a bounding-box crop and its (k, j, i) offset on the CT grid ((0, 0, 0) crop when
        no frame has a voxel)."""
        if not self.frames:
            return np.zeros((0, 0, 0), dtype=bool), (0, 0, 0)
        ks = sorted(self.frames)
        r0 = min(f[0] for f in self.frames.values())
        c0 = min(f[1] for f in self.frames.values())
        r1 = max(f[0] + f[2].shape[0] for f in self.frames.values())
        c1 = max(f[1] + f[2].shape[1] for f in self.frames.values())
        out = np.zeros((ks[-1] - ks[0] + 1, r1 - r0, c1 - c0), dtype=bool)
        for k, (fr, fc, voxels) in self.frames.items():
            out[k - ks[0], fr - r0 : fr - r0 + voxels.shape[0], fc - c0 : fc - c0 + voxels.shape[1]] = voxels
        return out, (ks[0], r0, c0)


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
            if seg_type == "LABELMAP":
                seg.add(k, frame == number)
            elif seg_type == "FRACTIONAL":
                # the fraction as highdicom rescales it (float32 / MaximumFractionalValue), so that a value
                # at the threshold falls on the same side in both readers
                fraction = frame.astype(np.float32) / max_fraction
                seg.add(k, fraction >= settings.fractional_threshold)
            else:
                seg.add(k, frame > 0)
    return [segments[n] for n in sorted(segments)]
