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

from hpd_imaging.domain import CtImage, LesionMask, MaskSource, tight_box
from hpd_imaging.errors import DicomReadError, GeometryError, MaskError
from hpd_imaging.io._dicomread import BoundedReader, read_dicom
from hpd_imaging.io._limits import check_dicom_pixel_size, check_mask_count
from hpd_imaging.io._placement import geometry_from_hd_affine, match_crop_to_grid
from hpd_imaging.io.structures import StructureProblem, classify_structure, report_problem
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


_BACKGROUND_CODES = {"125040"}  # DCM "Background" (the Label Map SEG's explicit background segment)


def _referenced_uids(seg: Any) -> tuple[set[str], set[str]]:
    """(series UIDs, SOP instance UIDs) the SEG says it was derived from."""
    series: set[str] = set()
    instances: set[str] = set()
    for item in seg.get("ReferencedSeriesSequence", None) or []:
        series.add(str(item.get("SeriesInstanceUID", "") or ""))
        for inst in item.get("ReferencedInstanceSequence", None) or []:
            instances.add(str(inst.get("ReferencedSOPInstanceUID", "") or ""))
    for item in seg.get("SourceImageSequence", None) or []:
        instances.add(str(item.get("ReferencedSOPInstanceUID", "") or ""))
    groups = [*(seg.get("SharedFunctionalGroupsSequence", None) or [])]
    groups += [*(seg.get("PerFrameFunctionalGroupsSequence", None) or [])]
    for frame in groups:
        for deriv in frame.get("DerivationImageSequence", None) or []:
            for src in deriv.get("SourceImageSequence", None) or []:
                instances.add(str(src.get("ReferencedSOPInstanceUID", "") or ""))
    series.discard("")
    instances.discard("")
    return series, instances


def _check_frame_of_reference(path: Path, header: Any, ct: CtImage) -> str | None:
    """None when the Frames of Reference agree; a note when they differ but the SEG references this CT.

    A FoR mismatch is accepted (with a warning) only when the SEG names this CT's series or some of its
    instances: the 2012 Slicer SEG of the QuantitativeReporting data minted its own FoR UID on the CT's very
    grid. The caller must still find the SEG's grid equal to the CT's; otherwise it refuses.
    """
    for_uid = str(header.get("FrameOfReferenceUID", "") or "")
    if not for_uid or not ct.frame_of_reference_uid or for_uid == ct.frame_of_reference_uid:
        return None
    series, instances = _referenced_uids(header)
    ct_instances = {u for u in ct.provenance.get("sop_instance_uids", ()) or () if u}
    if (ct.series_instance_uid and ct.series_instance_uid in series) or (instances & ct_instances):
        how = "series" if ct.series_instance_uid in series else f"{len(instances & ct_instances)} instance(s)"
        return (
            f"Frame of Reference {for_uid} differs from the CT's {ct.frame_of_reference_uid}, but the SEG "
            f"references this CT's {how}; read in the CT's frame because its grid is the CT's (checked "
            "frame by frame, refused otherwise)"
        )
    raise MaskError(
        f"{path}: Frame of Reference mismatch: expected the CT's {ct.frame_of_reference_uid}, "
        f"got {for_uid} (coordinates cannot be compared without registration, and the SEG references "
        "neither this CT's series nor its instances)",
        path=str(path),
    )


def _code_of(concept: Any) -> tuple[str, str]:
    if concept is None:
        return "", ""
    return str(getattr(concept, "value", "") or ""), str(getattr(concept, "meaning", "") or "")


def _is_background(number: int, seg_type: str, property_code: str, label: str) -> bool:
    """The Label Map SEG's background: segment 0, or a segment typed DCM 125040 "Background"."""
    if seg_type == "LABELMAP" and number == 0:
        return True
    return property_code in _BACKGROUND_CODES or (
        seg_type == "LABELMAP" and label.strip().lower() == "background"
    )


def read_seg(
    path: Path | str,
    ct: CtImage,
    *,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    problems: list[StructureProblem] | None = None,
    **_: Any,
) -> list[LesionMask]:
    """Read every non-empty segment of a DICOM SEG (BINARY, FRACTIONAL, Label Map) as a mask on ``ct``'s grid.

    highdicom first; a vendor SEG that highdicom refuses (syngo.via: no SegmentedPropertyCategoryCodeSequence)
    is decoded frame by frame with pydicom, with a warning naming the missing attribute. The Label Map SEG's
    background segment is not a structure. Every mask carries its category and the lesion decision
    (io/structures.py). Raises :class:`MaskError` when the Frame of Reference differs from the CT's (unless
    the SEG references this CT and lies on its grid), when the SEG grid is not the CT lattice, or when every
    segment is empty.
    """
    import highdicom as hd

    path = Path(path)
    try:
        header, pixel_offset = read_dicom(path, stop_before_pixels=True, what="DICOM SEG")
    except InvalidDicomError as exc:
        raise DicomReadError(f"{path}: cannot read as DICOM SEG: {exc}", path=str(path)) from exc
    # memory-bomb guard: Rows x Columns x frames (bit-packed) vs the limit and the file, before highdicom
    check_dicom_pixel_size(path, header, settings, pixel_offset=pixel_offset)
    for_note = _check_frame_of_reference(path, header, ct)
    file_notes = [for_note] if for_note else []
    if for_note:
        log.warning("%s: %s", path, for_note)
    try:
        with BoundedReader(path) as fp:
            seg = hd.seg.segread(fp)
    except Exception as exc:  # highdicom/pydicom raise many types for malformed files
        return _read_seg_fallback(path, ct, header, exc, settings, file_notes, problems)
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
    slice_ranges = _segment_slice_ranges(seg)
    for number in segment_numbers:
        try:
            description = seg.get_segment_description(number)
            label = str(description.segment_label)
            organ, is_ln = segment_site(description)
            tracking_id, tracking_uid = description.tracking_id, description.tracking_uid
            category = _code_of(getattr(description, "segmented_property_category", None))
            prop = _code_of(getattr(description, "segmented_property_type", None))
        except Exception as exc:  # noqa: BLE001 - highdicom validates the description on access
            raise DicomReadError(
                f"{path}: segment {number}: expected a valid segment description, got "
                f"{type(exc).__name__}: {exc}",
                path=str(path),
            ) from exc
        if _is_background(int(number), seg_type, prop[0], label):
            log.info("%s: segment %d (%s) is the background; not a structure", path, number, label)
            continue
        notes: list[str] = list(file_notes)
        first, last = slice_ranges.get(int(number), (None, None))
        try:
            volume = seg.get_volume(
                segment_numbers=[number],
                combine_segments=False,
                rescale_fractional=True,
                slice_start=first,
                slice_end=last,
                as_indices=True,
            )
        except Exception as exc:  # no frames for this segment, or frames not forming a volume
            if "no frames" in str(exc).lower() or "not found" in str(exc).lower():
                _empty_segment(problems, path, number, label, category, prop, settings)
                continue
            # highdicom cannot index this SEG's frames (e.g. the 2012 Slicer SEG's dimension index): decode
            # the frames with pydicom instead, strictly on the CT grid
            return _read_seg_fallback(path, ct, header, exc, settings, file_notes, problems)
        values = np.asarray(volume.array)
        values = values[..., 0] if values.ndim == 4 else values
        threshold_fraction = settings.fractional_threshold if seg_type == "FRACTIONAL" else None
        binary = values >= threshold_fraction if threshold_fraction is not None else values > 0
        box = tight_box(binary)
        n_before = 0 if box is None else int(np.count_nonzero(binary[box]))
        if n_before == 0 or box is None:
            got = (
                f"0 voxels at or above fractional_threshold={threshold_fraction} (largest fraction "
                f"{float(values.max()):.3f})"
                if threshold_fraction is not None and values.size and values.max() > 0
                else "0 voxels (no frame or an empty frame)"
            )
            _empty_segment(problems, path, number, label, category, prop, settings, got)
            continue
        try:
            source_geometry = geometry_from_hd_affine(volume.affine, tuple(binary.shape))  # type: ignore[arg-type]
        except GeometryError as exc:
            raise MaskError(f"{path}: segment {number} ({label}): {exc}", path=str(path)) from exc
        try:
            # only the segment's bounding box is placed: lesion-sized work and result (issue 21)
            placed, offset = match_crop_to_grid(
                binary[box].astype(np.uint8),
                source_geometry,
                (box[0].start, box[1].start, box[2].start),
                ct.geometry,
                tol=settings.labelmap_tolerance_mm,
            )
        except ValueError as exc:
            raise MaskError(
                f"{path}: segment {number} ({label}): SEG grid is not the CT grid: "
                f"{ct.geometry.describe_difference(source_geometry)} ({exc})",
                path=str(path),
            ) from exc
        crop = placed.astype(bool)
        n_after = int(np.count_nonzero(crop))
        if n_after < n_before:
            lost = n_before - n_after
            note = f"segment {number} ({label}): {lost} of {n_before} voxels lie outside the CT volume"
            log.warning("%s: %s", path, note)
            notes.append(note)
        is_lesion, rule = classify_structure(
            name=label,
            category_code=category[0],
            category_meaning=category[1],
            property_meaning=prop[1],
            settings=settings,
        )
        masks.append(
            LesionMask(
                crop=crop,
                offset=offset,
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
                structure_type=category[1],
                is_lesion=is_lesion,
                lesion_rule=rule,
                terminology=_terminology(category, prop),
            )
        )
    if not masks:
        raise MaskError(
            f"{path}: expected at least one non-empty segment, got none on the CT grid", path=str(path)
        )
    return masks


def _segment_slice_ranges(seg: Any) -> dict[int, tuple[int, int]]:
    """Segment number -> (first, last + 1) slice of highdicom's SEG volume that holds its frames.

    Why: ``get_volume`` of one segment otherwise decodes and allocates the SEG's whole extent (every slice
    of the SEG, rows x columns each) although a lesion spans a few of them; with the range it reads only
    the segment's frames (issue 21). Positions come from the per-frame functional groups; an absent or
    unusual layout returns {} (the whole extent is read, as before).
    """
    try:
        geometry = seg.get_volume_geometry()
        if geometry is None:
            return {}
        to_index = np.linalg.inv(np.asarray(geometry.affine, dtype=float))
        shared = (seg.get("SharedFunctionalGroupsSequence", None) or [None])[0]
        shared_ident = shared.get("SegmentIdentificationSequence", None) if shared is not None else None
        ranges: dict[int, tuple[int, int]] = {}
        for item in seg.PerFrameFunctionalGroupsSequence:
            ident = item.get("SegmentIdentificationSequence", None) or shared_ident
            if not ident:
                return {}
            number = int(ident[0].ReferencedSegmentNumber)
            position = np.asarray([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
            k = int(np.rint(to_index[0, :3] @ position + to_index[0, 3]))
            lo, hi = ranges.get(number, (k, k + 1))
            ranges[number] = (min(lo, k), max(hi, k + 1))
        n_slices = int(geometry.spatial_shape[0])
        return {
            n: (max(lo, 0), min(hi, n_slices)) for n, (lo, hi) in ranges.items() if lo < n_slices and hi > 0
        }
    except Exception:  # noqa: BLE001 - an optimisation only: read the whole extent instead
        return {}


def _terminology(category: tuple[str, str], prop: tuple[str, str]) -> str:
    return " / ".join(f"{v}^{m}" for v, m in (category, prop) if v or m)


def _empty_segment(
    problems: list[StructureProblem] | None,
    path: Path,
    number: int,
    label: str,
    category: tuple[str, str],
    prop: tuple[str, str],
    settings: LoaderSettings,
    got: str = "0 voxels (no frame or an empty frame)",
) -> None:
    is_lesion, _ = classify_structure(
        name=label,
        category_code=category[0],
        category_meaning=category[1],
        property_meaning=prop[1],
        settings=settings,
    )
    report_problem(
        problems,
        StructureProblem(
            str(path),
            f"segment {number} ({label})",
            "a segment needs at least one voxel on the CT grid",
            got,
            is_lesion=is_lesion,
        ),
        log,
    )


def _read_seg_fallback(
    path: Path,
    ct: CtImage,
    header: Any,
    error: BaseException,
    settings: LoaderSettings,
    file_notes: list[str],
    problems: list[StructureProblem] | None,
) -> list[LesionMask]:
    """highdicom refused the SEG: decode its frames with pydicom (io/_seg_fallback.py), say what was wrong."""
    from hpd_imaging.io._seg_fallback import decode_seg_frames, missing_segment_attributes

    missing = missing_segment_attributes(header)
    why = (
        f"missing required attribute(s) {', '.join(missing)}"
        if missing
        else f"{type(error).__name__}: {error}"
    )
    note = f"highdicom refused this SEG ({why}); frames decoded with pydicom on the CT grid"
    log.warning("%s: %s", path, note)
    try:
        segments = decode_seg_frames(path, ct, settings)
    except Exception as exc:  # noqa: BLE001 - a damaged SEG (wrong VRs, NaN positions) is one clear error
        detail = str(exc) if isinstance(exc, MaskError) else f"{type(exc).__name__}: {exc}"
        raise DicomReadError(
            f"{path}: cannot read as DICOM SEG: {type(error).__name__}: {error}; the pydicom fallback "
            f"failed too: {detail}",
            path=str(path),
        ) from exc
    seg_type = str(header.get("SegmentationType", "") or "").upper()
    masks: list[LesionMask] = []
    for s in segments:
        if _is_background(s.number, seg_type, "", s.label):
            continue
        crop, offset = s.crop()
        if crop.size == 0:
            _empty_segment(
                problems,
                path,
                s.number,
                s.label,
                (s.category_code, s.category_meaning),
                ("", s.property_meaning),
                settings,
            )
            continue
        is_lesion, rule = classify_structure(
            name=s.label,
            category_code=s.category_code,
            category_meaning=s.category_meaning,
            property_meaning=s.property_meaning,
            settings=settings,
        )
        masks.append(
            LesionMask(
                crop=crop,
                offset=offset,
                geometry=ct.geometry,
                label=s.label,
                source=MaskSource.SEG,
                source_path=str(path),
                lesion_id=s.tracking_id or None,
                tracking_uid=s.tracking_uid or None,
                label_value=s.number,
                notes=tuple([*file_notes, note]),
                structure_type=s.category_meaning,
                is_lesion=is_lesion,
                lesion_rule=rule,
                terminology=_terminology((s.category_code, s.category_meaning), ("", s.property_meaning)),
            )
        )
    if not masks:
        raise MaskError(
            f"{path}: expected at least one non-empty segment, got none on the CT grid", path=str(path)
        )
    return masks
