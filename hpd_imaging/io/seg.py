"""DICOM SEG -> one :class:`LesionMask` per segment on the CT grid, through highdicom.

Why highdicom: it handles BINARY, FRACTIONAL and LABELMAP SEGs, overlapping segments and omitted empty frames
(specs/dicom_io_notes.md 2.1); pydicom-seg is broken on pydicom 3 and ITK collapses multi-segment SEGs.
Each segment is read on its own (overlaps stay separate lesions), thresholded (FRACTIONAL at
``LoaderSettings.fractional_threshold``), and put onto the CT grid by geometry with ``Volume.match_geometry``
after the Frame of Reference has been checked; the referenced SOP instances are not needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.errors import InvalidDicomError

from hpd_imaging.domain import CtImage, LesionMask, MaskSource
from hpd_imaging.errors import DicomReadError, GeometryError, MaskError
from hpd_imaging.io._dicomread import BoundedReader, read_dicom
from hpd_imaging.io._limits import check_dicom_pixel_size, check_mask_count
from hpd_imaging.io._placement import geometry_from_hd_affine, match_to_grid
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

log = logging.getLogger(__name__)

# SNOMED CT codes and words that mean "lymph node" in a segment's anatomic region or property type
_LYMPH_NODE_CODES = {"59441001", "T-C4000"}
# property types that describe *what* the lesion is rather than *where*; they never name the organ
_LESION_WORDS = ("neoplasm", "tumor", "tumour", "lesion", "mass", "nodule", "metasta", "carcinoma", "cancer")


def organ_name(meaning: str) -> str:
    """Normalise a coded meaning ('Lymph node structure', 'Liver') to our organ vocabulary ('lymph_node')."""
    text = meaning.strip().lower()
    if "lymph node" in text:
        return "lymph_node"
    for suffix in (" structure", " (organ)"):
        text = text.removesuffix(suffix)
    return "_".join(text.split())


def _codes(concepts: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for c in concepts:
        if c is None:
            continue
        out.append((str(getattr(c, "value", "")), str(getattr(c, "meaning", ""))))
    return out


def segment_site(description: Any) -> tuple[str, bool]:
    """(organ, is_lymph_node) from a highdicom SegmentDescription: anatomic region first, then "
    "property type."""
    regions = _codes(getattr(description, "anatomic_regions", None) or [])
    prop = _codes([getattr(description, "segmented_property_type", None)])
    modifiers = (
        _codes(getattr(description, "segmented_property_type_modifier_codes", None) or [])
        if hasattr(description, "segmented_property_type_modifier_codes")
        else []
    )
    all_codes = regions + prop + modifiers
    is_ln = any(v in _LYMPH_NODE_CODES or "lymph node" in m.lower() for v, m in all_codes)
    organ = ""
    if regions:
        organ = organ_name(regions[0][1])
    elif prop and prop[0][1] and not any(w in prop[0][1].lower() for w in _LESION_WORDS):
        organ = organ_name(prop[0][1])
    if is_ln:
        organ = "lymph_node"
    return organ, is_ln


def read_seg(
    path: Path | str,
    ct: CtImage,
    *,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    **_: Any,
) -> list[LesionMask]:
    """Read every non-empty segment of a DICOM SEG as a LesionMask on ``ct``'s grid.

    Raises :class:`MaskError` when the Frame of Reference differs from the CT's, when the SEG grid is not the
    CT lattice, or when every segment is empty.
    """
    import highdicom as hd

    path = Path(path)
    try:
        header, pixel_offset = read_dicom(path, stop_before_pixels=True, what="DICOM SEG")
    except InvalidDicomError as exc:
        raise DicomReadError(f"{path}: cannot read as DICOM SEG: {exc}", path=str(path)) from exc
    # memory-bomb guard: Rows x Columns x frames (bit-packed) vs the limit and the file, before highdicom
    check_dicom_pixel_size(path, header, settings, pixel_offset=pixel_offset)
    try:
        with BoundedReader(path) as fp:
            seg = hd.seg.segread(fp)
    except Exception as exc:  # highdicom/pydicom raise many types for malformed files
        raise DicomReadError(
            f"{path}: cannot read as DICOM SEG: {type(exc).__name__}: {exc}", path=str(path)
        ) from exc
    for_uid = str(seg.get("FrameOfReferenceUID", "") or "")
    if for_uid and ct.frame_of_reference_uid and for_uid != ct.frame_of_reference_uid:
        raise MaskError(
            f"{path}: Frame of Reference mismatch: expected the CT's {ct.frame_of_reference_uid}, "
            f"got {for_uid} "
            "(coordinates cannot be compared without registration)",
            path=str(path),
        )
    seg_type = str(seg.get("SegmentationType", ""))
    masks: list[LesionMask] = []
    try:
        segment_numbers = list(seg.segment_numbers)
    except Exception as exc:  # noqa: BLE001 - a damaged SegmentSequence
        raise DicomReadError(
            f"{path}: SegmentSequence: expected numbered segment descriptions, got "
            f"{type(exc).__name__}: {exc}",
            path=str(path),
        ) from exc
    check_mask_count(len(segment_numbers), ct.geometry.shape, settings, str(path), "segments")
    for number in segment_numbers:
        try:
            description = seg.get_segment_description(number)
            label = str(description.segment_label)
            organ, is_ln = segment_site(description)
            tracking_id, tracking_uid = description.tracking_id, description.tracking_uid
        except Exception as exc:  # noqa: BLE001 - highdicom validates the description on access
            raise DicomReadError(
                f"{path}: segment {number}: expected a valid segment description, got "
                f"{type(exc).__name__}: {exc}",
                path=str(path),
            ) from exc
        notes: list[str] = []
        try:
            volume = seg.get_volume(segment_numbers=[number], combine_segments=False, rescale_fractional=True)
        except Exception as exc:  # no frames for this segment, or frames not forming a volume
            if "no frames" in str(exc).lower() or "not found" in str(exc).lower():
                log.warning("%s: segment %d (%s) has no frames; skipped", path, number, label)
                continue
            raise MaskError(
                f"{path}: segment {number} ({label}): cannot assemble a volume: {exc}", path=str(path)
            ) from exc
        values = np.asarray(volume.array)
        values = values[..., 0] if values.ndim == 4 else values
        threshold_fraction = settings.fractional_threshold if seg_type == "FRACTIONAL" else None
        binary = values >= threshold_fraction if threshold_fraction is not None else values > 0
        n_before = int(np.count_nonzero(binary))
        if n_before == 0:
            log.warning("%s: segment %d (%s) is empty; skipped", path, number, label)
            continue
        try:
            source_geometry = geometry_from_hd_affine(volume.affine, tuple(binary.shape))  # type: ignore[arg-type]
        except GeometryError as exc:
            raise MaskError(f"{path}: segment {number} ({label}): {exc}", path=str(path)) from exc
        try:
            placed = match_to_grid(
                binary.astype(np.uint8), source_geometry, ct.geometry, tol=settings.labelmap_tolerance_mm
            ).astype(bool)
        except ValueError as exc:
            raise MaskError(
                f"{path}: segment {number} ({label}): SEG grid is not the CT grid: "
                f"{ct.geometry.describe_difference(source_geometry)} ({exc})",
                path=str(path),
            ) from exc
        n_after = int(np.count_nonzero(placed))
        if n_after < n_before:
            lost = n_before - n_after
            note = f"segment {number} ({label}): {lost} of {n_before} voxels lie outside the CT volume"
            log.warning("%s: %s", path, note)
            notes.append(note)
        masks.append(
            LesionMask(
                mask=placed,
                geometry=ct.geometry,
                label=label,
                source=MaskSource.SEG,
                source_path=str(path),
                lesion_id=tracking_id or None,
                tracking_uid=tracking_uid or None,
                organ=organ,
                is_lymph_node=is_ln,
                label_value=int(number),
                notes=tuple(notes),
            )
        )
    if not masks:
        raise MaskError(
            f"{path}: expected at least one non-empty segment, got none on the CT grid", path=str(path)
        )
    return masks
