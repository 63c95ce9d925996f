"""RTSTRUCT -> one :class:`LesionMask` per ROI on the CT grid.

Why our own rasteriser: rt-utils matches contours to slices by SOPInstanceUID and fails on real data whose
references are stale (every IBSI sarcoma contour references an uncropped slice that is not there);
SimpleITK has no polygon rasteriser (specs/dicom_io_notes.md 2.2). The rule here reproduced the IBSI
reference masks voxel for voxel:

* contours are matched to slices **by geometry**: every point is mapped to a continuous (i, j, k) index with
  the CT affine; the contour belongs to the nearest slice (at most half the slice spacing away; one exactly
  midway between two slices has no nearest slice and is skipped with a note). UID references are only a
  cross-check;
* each polygon is filled at pixel centres (``skimage.draw.polygon``), and the polygons of one slice are
  combined with XOR (even-odd rule: holes and several islands per slice);
* contours off the slice planes, outside the volume or reaching beyond the field of view are reported in
  ``LesionMask.notes`` and logged; a limit on the total number of contour points guards memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from skimage.draw import polygon as fill_polygon

from hpd_imaging.domain import CtImage, LesionMask, MaskSource
from hpd_imaging.errors import DicomReadError, InputLimitError, MaskError
from hpd_imaging.io._dicomread import count_ds_values, parse_ds_array, raw_ds_bytes, read_dicom
from hpd_imaging.io._limits import check_mask_count
from hpd_imaging.io.seg import organ_name
from hpd_imaging.io.structures import StructureProblem, classify_structure, report_problem
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

log = logging.getLogger(__name__)

# in-plane: a contour must be planar within this fraction of the slice spacing to be rasterised on one slice
_PLANARITY_FRACTION = 0.25


def _referenced_for_uids(ds: Dataset) -> set[str]:
    uids = {
        str(item.get("FrameOfReferenceUID", "") or "")
        for item in _items(ds, "ReferencedFrameOfReferenceSequence")
    }
    uids |= {
        str(item.get("ReferencedFrameOfReferenceUID", "") or "")
        for item in _items(ds, "StructureSetROISequence")
    }
    uids.discard("")
    return uids


def _contour_image_uids(ds: Dataset) -> set[str]:
    return {
        str(ref.get("ReferencedSOPInstanceUID", "") or "")
        for roi in _items(ds, "ROIContourSequence")
        for contour in _items(roi, "ContourSequence")
        for ref in _items(contour, "ContourImageSequence")
    } - {""}


_CONTOUR_DATA = 0x30060050


def _items(ds: Dataset, keyword: str) -> list[Dataset]:
    """Items of a sequence attribute; [] when absent or not a sequence (a wrong VR in a damaged file)."""
    value = ds.get(keyword)
    if isinstance(value, DicomSequence):
        return [item for item in value if isinstance(item, Dataset)]
    return []


def _count_points(ds: Dataset) -> int:
    """Total contour points from the data actually stored (NumberOfContourPoints may lie)."""
    total = 0
    for roi in _items(ds, "ROIContourSequence"):
        for contour in _items(roi, "ContourSequence"):
            total += count_ds_values(raw_ds_bytes(contour, _CONTOUR_DATA)) // 3
    return total


def contour_points(contour: Dataset, where: str) -> np.ndarray | None:
    """(n, 3) LPS points of one contour; None without ContourData; DicomReadError/MaskError if broken."""
    raw = raw_ds_bytes(contour, _CONTOUR_DATA)
    if raw is None:
        return None
    values = parse_ds_array(raw, f"{where}: ContourData")
    if values.size % 3:
        raise MaskError(
            f"{where}: ContourData: expected x\\y\\z triplets, got {values.size} values", path=where
        )
    if not np.all(np.isfinite(values)):
        raise MaskError(
            f"{where}: ContourData: expected finite coordinates (mm), got NaN or infinity", path=where
        )
    return values.reshape(-1, 3)


def _int_or(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return default


def _observations(ds: Dataset) -> dict[int, tuple[str, str]]:
    """ROI number -> (RTROIInterpretedType, ROIObservationLabel)."""
    out: dict[int, tuple[str, str]] = {}
    for obs in _items(ds, "RTROIObservationsSequence"):
        n = _int_or(obs.get("ReferencedROINumber"), -1)
        if n >= 0:
            out[n] = (
                str(obs.get("RTROIInterpretedType", "") or ""),
                str(obs.get("ROIObservationLabel", "") or ""),
            )
    return out


def read_rtstruct(
    path: Path | str,
    ct: CtImage,
    *,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    roi_names: Sequence[str] | None = None,
    problems: list[StructureProblem] | None = None,
    **_: Any,
) -> list[LesionMask]:
    """Rasterise every ROI of an RTSTRUCT (or only ``roi_names``) onto ``ct``'s grid.

    Each mask carries its RT ROI Interpreted Type and the lesion decision (io/structures.py). A lesion ROI
    that gives no voxel (its only contour a single point, or off the CT) is a :class:`StructureProblem`
    appended to ``problems`` (an error row in ``run``), never a lesion of volume 0.
    """
    path = Path(path)
    where = str(path)
    try:
        ds, _offset = read_dicom(path, what="DICOM RTSTRUCT", skip_tags={_CONTOUR_DATA})
    except InvalidDicomError as exc:
        raise DicomReadError(f"{path}: cannot read as DICOM: {exc}", path=where) from exc
    if str(ds.get("Modality", "")) != "RTSTRUCT":
        raise MaskError(f"{path}: expected Modality RTSTRUCT, got {ds.get('Modality')!r}", path=str(path))
    n_points = _count_points(ds)
    if n_points > settings.max_contour_points:
        raise InputLimitError(
            f"{path}: {n_points} contour points exceed the limit "
            f"max_contour_points={settings.max_contour_points}",
            path=str(path),
        )
    sop_to_k = {uid: k for k, uid in enumerate(ct.provenance.get("sop_instance_uids", ()) or ()) if uid}
    for_uids = _referenced_for_uids(ds)
    file_notes: list[str] = []
    if ct.frame_of_reference_uid and for_uids and ct.frame_of_reference_uid not in for_uids:
        refs = _contour_image_uids(ds)
        if not (refs and sop_to_k and refs <= sop_to_k.keys()):
            raise MaskError(
                f"{path}: Frame of Reference mismatch: expected the CT's {ct.frame_of_reference_uid}, "
                f"got {', '.join(sorted(for_uids))}",
                path=str(path),
            )
        # some writers (rt-utils) mint a new FoR UID; every contour still names a slice of this very CT
        note = (
            f"Frame of Reference {', '.join(sorted(for_uids))} differs from the CT's "
            f"{ct.frame_of_reference_uid}, but all {len(refs)} referenced CT instances are in the series; "
            "read in the CT's frame"
        )
        log.warning("%s: %s", path, note)
        file_notes.append(note)
    names = {
        _int_or(r.get("ROINumber"), -1): str(r.get("ROIName", "") or f"ROI {r.get('ROINumber')}")
        for r in _items(ds, "StructureSetROISequence")
    }
    observations = _observations(ds)
    masks: list[LesionMask] = []
    fill_work = [0]  # vertex x pixel tests spent filling polygons in this file (see max_contour_fill_work)
    n_rois = sum(
        1
        for roi in _items(ds, "ROIContourSequence")
        if roi_names is None or names.get(_int_or(roi.get("ReferencedROINumber"), -1)) in roi_names
    )
    check_mask_count(n_rois, ct.geometry.shape, settings, where, "ROIs")
    for roi in _items(ds, "ROIContourSequence"):
        number = _int_or(roi.get("ReferencedROINumber"), -1)
        name = names.get(number, f"ROI {number}")
        if roi_names is not None and name not in roi_names:
            continue
        crop, offset, notes = _rasterise_roi(roi, ct, name, sop_to_k, settings, where, fill_work)
        for note in notes:
            log.warning("%s: %s", path, note)
        interpreted, obs_label = observations.get(number, ("", ""))
        is_lesion, rule = classify_structure(name=name, rt_roi_type=interpreted, settings=settings)
        if not crop.any():
            report_problem(
                problems,
                StructureProblem(
                    where,
                    f"ROI {number} ({name}, {interpreted or 'no RT ROI Interpreted Type'})",
                    "a ROI needs at least one closed planar contour of >= 3 points that covers a voxel "
                    "centre of the CT",
                    "; ".join(notes) or "contours that cover no voxel centre",
                    is_lesion=is_lesion,
                ),
                log,
            )
            continue
        is_ln = "lymph" in name.lower() or "lymph" in obs_label.lower()
        masks.append(
            LesionMask(
                crop=crop,
                offset=offset,
                geometry=ct.geometry,
                label=name,
                source=MaskSource.RTSTRUCT,
                source_path=str(path),
                organ="lymph_node" if is_ln else (organ_name(obs_label) if obs_label else ""),
                is_lymph_node=is_ln,
                label_value=number,
                notes=tuple(file_notes + notes),
                structure_type=interpreted,
                is_lesion=is_lesion,
                lesion_rule=rule,
            )
        )
    if not masks:
        wanted = f" among {list(roi_names)}" if roi_names is not None else ""
        raise MaskError(
            f"{path}: expected at least one ROI{wanted} with contours on the CT grid, got none",
            path=str(path),
        )
    return masks


def _fill_work(rows: np.ndarray, cols: np.ndarray, n_j: int, n_i: int) -> int:
    """Vertex x pixel tests ``skimage.draw.polygon`` will make: it tests every pixel centre of the polygon's
    bounding box (clipped to the grid) against every edge, so the cost grows with both."""
    height = min(n_j - 1, int(np.ceil(rows.max()))) - max(0, int(rows.min())) + 1
    width = min(n_i - 1, int(np.ceil(cols.max()))) - max(0, int(cols.min())) + 1
    return len(rows) * max(height, 0) * max(width, 0)


def _rasterise_roi(
    roi: Dataset,
    ct: CtImage,
    name: str,
    sop_to_k: dict[str, int],
    settings: LoaderSettings,
    where: str,
    fill_work: list[int],
) -> tuple[np.ndarray, tuple[int, int, int], list[str]]:
    geometry = ct.geometry
    n_k, n_j, n_i = geometry.shape
    spacing_k = geometry.spacing_mm[2]
    polygons: list[tuple[int, np.ndarray, np.ndarray]] = []  # (slice, rows, columns) to fill, in order
    notes: list[str] = []
    off_plane_mm: list[float] = []
    outside_volume: list[str] = []
    clipped = 0
    skipped_types: dict[str, int] = {}
    stale_refs = 0
    mismatched_refs = 0
    tol_mm = max(settings.spacing_tolerance_mm, settings.spacing_tolerance_rel * spacing_k)
    for contour in _items(roi, "ContourSequence"):
        kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR") or "CLOSED_PLANAR")
        points = contour_points(contour, f"{where}: ROI {name}")
        if kind != "CLOSED_PLANAR" or points is None or len(points) < 3:
            key = kind if points is not None and len(points) >= 3 else f"{kind} with < 3 points"
            skipped_types[key] = skipped_types.get(key, 0) + 1
            continue
        ijk = geometry.lps_to_index(points)
        if not np.all(np.isfinite(ijk)):  # finite mm but beyond float range once scaled (1e308 mm)
            outside_volume.append("inf")
            continue
        k_values = ijk[:, 2]
        if float(k_values.max() - k_values.min()) > _PLANARITY_FRACTION:
            notes.append(
                f"ROI {name}: a contour spans "
                f"{float(k_values.max() - k_values.min()) * spacing_k:.2f} mm across "
                "the slice normal (not parallel to the CT slices); skipped"
            )
            continue
        k_mean = float(k_values.mean())
        k_low = int(np.floor(k_mean))
        z_mm = float(points[0] @ geometry.slice_normal)
        if abs((k_mean - k_low) - 0.5) * spacing_k <= tol_mm:
            # equidistant from two planes: no nearest slice; Python's round() would pick the even one
            notes.append(
                f"ROI {name}: a contour at {z_mm:.2f} mm lies midway between slices {k_low} and {k_low + 1} "
                f"(0.50 of the {spacing_k:.2f} mm slice spacing from each); the rule assigns a contour to "
                "the nearest slice and there is none; skipped"
            )
            continue
        k = k_low if k_mean - k_low < 0.5 else k_low + 1  # the nearest plane (never half-to-even rounding)
        distance_mm = abs(k_mean - k) * spacing_k
        if k < 0 or k >= n_k:
            outside_volume.append(f"{z_mm:.2f}")
            continue
        if distance_mm > tol_mm:
            off_plane_mm.append(distance_mm)
        for ref in _items(contour, "ContourImageSequence"):  # cross-check only
            uid = str(ref.get("ReferencedSOPInstanceUID", "") or "")
            if uid and sop_to_k:
                if uid not in sop_to_k:
                    stale_refs += 1
                elif sop_to_k[uid] != k:
                    mismatched_refs += 1
        rows, cols = ijk[:, 1], ijk[:, 0]
        if rows.min() < -0.5 or cols.min() < -0.5 or rows.max() > n_j - 0.5 or cols.max() > n_i - 0.5:
            clipped += 1
        fill_work[0] += _fill_work(rows, cols, n_j, n_i)
        if fill_work[0] > settings.max_contour_fill_work:  # time-bomb guard: checked before filling
            raise InputLimitError(
                f"{where}: ROI {name}: filling the contours needs more than max_contour_fill_work="
                f"{settings.max_contour_fill_work} vertex x pixel tests (a contour of {len(rows)} points "
                f"over {n_j} x {n_i} pixels); pass roi_names to read only the lesion ROIs or raise the limit",
                path=where,
            )
        polygons.append((k, rows, cols))
    crop, offset = _fill_polygons(polygons, n_j, n_i)
    if outside_volume:
        notes.append(
            f"ROI {name}: {len(outside_volume)} contour(s) at {', '.join(outside_volume[:5])} mm "
            "along the normal lie "
            f"outside the CT volume (slices missing from the series?); ignored"
        )
    if off_plane_mm:
        notes.append(
            f"ROI {name}: {len(off_plane_mm)} contour(s) lie between slice planes (up to "
            f"{max(off_plane_mm):.2f} mm "
            "off); assigned to the nearest slice (rule: a contour belongs to the slice nearest its mean "
            f"position, up to half the slice spacing away; worst {max(off_plane_mm) / spacing_k:.2f} of the "
            f"{spacing_k:.2f} mm slice spacing)"
        )
    if clipped:
        notes.append(f"ROI {name}: {clipped} contour(s) extend beyond the CT field of view; clipped to it")
    if skipped_types:
        notes.append(f"ROI {name}: skipped non-area contours {skipped_types}")
    if stale_refs:
        notes.append(
            f"ROI {name}: {stale_refs} contour image reference(s) name SOP instances not in the CT series "
            "(stale references); contours were matched by geometry"
        )
    if mismatched_refs:
        notes.append(
            f"ROI {name}: {mismatched_refs} contour(s) reference a CT slice other than the one at "
            "their position; "
            "the position was used"
        )
    return crop, offset, notes


def _fill_polygons(
    polygons: list[tuple[int, np.ndarray, np.ndarray]], n_j: int, n_i: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Fill the polygons (slice k, row and column indices) into the box they cover, not the CT grid.

    Each polygon is filled at pixel centres (``skimage.draw.polygon``) and XORed into its slice (even-odd
    rule). The box spans the contours' slices and their rows/columns clipped to the grid: every pixel centre
    skimage returns for a polygon lies within its vertices' extent, so the crop holds the same voxels as the
    whole-grid fill (issue 21: lesion-sized work arrays). Returns the crop and its (k, j, i) offset.
    """
    if not polygons:
        return np.zeros((0, 0, 0), dtype=bool), (0, 0, 0)
    ks = [k for k, _, _ in polygons]
    r0 = max(0, min(int(np.floor(rows.min())) for _, rows, _ in polygons))
    r1 = min(n_j, max(int(np.ceil(rows.max())) + 1 for _, rows, _ in polygons))
    c0 = max(0, min(int(np.floor(cols.min())) for _, _, cols in polygons))
    c1 = min(n_i, max(int(np.ceil(cols.max())) + 1 for _, _, cols in polygons))
    k0 = min(ks)
    if r1 <= r0 or c1 <= c0:
        return np.zeros((0, 0, 0), dtype=bool), (0, 0, 0)
    crop = np.zeros((max(ks) - k0 + 1, r1 - r0, c1 - c0), dtype=bool)
    for k, rows, cols in polygons:
        # pixel centres inside the polygon, filled in grid coordinates (the very arithmetic of a whole-grid
        # fill: shifted vertices could round a centre on an edge the other way), stored in the box
        rr, cc = fill_polygon(rows, cols, shape=(n_j, n_i))
        if rr.size:
            crop[k - k0, rr - r0, cc - c0] ^= True  # even-odd rule across the polygons of this slice
    return crop, (k0, r0, c0)
