"""Pairing segmentations with the CT stack they were drawn on (headers only).

DICOM SEG / RTSTRUCT, in order of trust:

1. ``series_uid``: a referenced SeriesInstanceUID (SEG ReferencedSeriesSequence, RTSTRUCT
   RTReferencedSeriesSequence) is a CT stack of the archive. When none of the referenced SOP instances is
   present (the IBSI sarcoma RTSTRUCTs reference the uncropped TCIA slices) the references are stale: the
   mask's planes are then checked against the stack's extent and the pairing reads ``series_uid+geometry``.
2. ``instances``: referenced SOP instances (SEG SourceImageSequence / DerivationImageSequence, RTSTRUCT
   ContourImageSequence) found in a stack although the series UID differs (re-exported series).
3. ``frame_of_reference``: same Frame of Reference UID and the mask's planes inside the stack's extent.
4. ``geometry``: same patient, no usable UID, planes (and for SEG orientation + pixel spacing) fit one stack.

Label maps (NIfTI/NRRD) carry no references: they pair through ``masks.csv`` at the archive root
(``manifest``), or by convention: ``<series folder>.nii.gz`` next to a series folder (``folder_name``), or a
label map anywhere inside an exam's folder (``folder``), the stack whose matrix equals the label map's size.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpd_imaging.archive.stacks import IssueSink, Stack, normalised_orientation
from hpd_imaging.domain import MaskRef, MaskSource
from hpd_imaging.settings.archive import ArchiveSettings

logger = logging.getLogger(__name__)


@dataclass
class PairedMask:
    ref: MaskRef
    stack: Stack | None  # the stack it was drawn on
    exam: tuple[str, Any] | None = None  # (patient, date) when only the exam is known: goes to the chosen CT


class StackIndex:
    """Lookup tables over the candidate CT stacks."""

    def __init__(self, stacks: Sequence[Stack]) -> None:
        self.stacks = list(stacks)
        self.by_series: dict[str, list[Stack]] = defaultdict(list)
        self.by_sop: dict[str, Stack] = {}
        self.by_for: dict[str, list[Stack]] = defaultdict(list)
        self.by_patient: dict[str, list[Stack]] = defaultdict(list)
        self.dirs: dict[str, set[Path]] = {}
        for s in self.stacks:
            self.by_series[s.series_uid].append(s)
            for uid in s.sop_instances:
                self.by_sop[uid] = s
            if s.for_uid:
                self.by_for[s.for_uid].append(s)
            self.by_patient[s.patient_id].append(s)
            self.dirs[s.stack_id] = {f.parent for f in s.files}

    def under(self, folder: Path) -> list[Stack]:
        return [
            s for s in self.stacks if any(d == folder or folder in d.parents for d in self.dirs[s.stack_id])
        ]

    def directly_in(self, folder: Path) -> list[Stack]:
        return [s for s in self.stacks if folder in self.dirs[s.stack_id]]


def _mask_planes(record: dict[str, Any]) -> list[tuple[float, float, float]]:
    if record.get("kind") == "seg":
        return [tuple(p[:3]) for p in record.get("frame_positions") or [] if len(p) >= 3]  # type: ignore[misc]
    bbox = record.get("contour_bbox")
    if bbox:
        return [tuple(bbox[0]), tuple(bbox[1])]  # type: ignore[list-item]
    return []


def geometry_fit(stack: Stack, record: dict[str, Any], tol_mm: float) -> float:
    """Fraction of the mask's planes (SEG frames, RTSTRUCT contour bounding box) inside the stack's extent.

    Positions are projected on the stack's slice normal; the extent is widened by half a slice thickness so
    that planes lying on the first or last slice count as inside.
    """
    planes = _mask_planes(record)
    extent = stack.extent_along_normal()
    n = stack.normal
    if not planes or extent is None or n is None:
        return 0.0
    margin = max(tol_mm, 0.5 * (stack.slice_thickness or 0.0))
    lo, hi = extent[0] - margin, extent[1] + margin
    inside = sum(1 for p in planes if lo <= p[0] * n[0] + p[1] * n[1] + p[2] * n[2] <= hi)
    return inside / len(planes)


def _seg_grid_matches(stack: Stack, record: dict[str, Any]) -> bool:
    if record.get("kind") != "seg":
        return True
    orientation = normalised_orientation(record.get("iop"))
    spacing = record.get("pixel_spacing") or []
    if orientation is not None and stack.orientation is not None and orientation != stack.orientation:
        return False
    if len(spacing) >= 2 and stack.pixel_spacing is not None:
        return all(abs(a - b) < 1e-3 for a, b in zip(spacing[:2], stack.pixel_spacing, strict=False))
    return True


def _best(stacks: list[Stack], record: dict[str, Any], tol: float) -> Stack:
    overlap = set(record.get("ref_instances") or [])
    return max(
        stacks,
        key=lambda s: (len(overlap & s.sop_instances), geometry_fit(s, record, tol), s.n_slices, s.stack_id),
    )


def pair_dicom_mask(
    path: Path, record: dict[str, Any], index: StackIndex, settings: ArchiveSettings, issue: IssueSink
) -> PairedMask:
    """Pair one SEG or RTSTRUCT file (see the module docstring for the order of the rules)."""
    source = MaskSource.SEG if record["kind"] == "seg" else MaskSource.RTSTRUCT
    pid = record.get("patient_id") or ""
    tol = settings.position_tolerance_mm
    ref_instances = set(record.get("ref_instances") or [])
    for_uids = [u for u in [*(record.get("ref_for") or []), record.get("for_uid") or ""] if u]
    stack: Stack | None = None
    pairing = ""

    by_series = [s for uid in record.get("ref_series") or [] for s in index.by_series.get(uid, [])]
    if by_series:
        stack = _best(by_series, record, tol)
        pairing = "series_uid"
        present = len(ref_instances & stack.sop_instances)
        if ref_instances and present == 0:
            fit = geometry_fit(stack, record, tol)
            same_for = not for_uids or stack.for_uid in for_uids
            issue(
                stack.patient_id,
                path,
                f"{source.value}: none of the {len(ref_instances)} referenced SOP instances is in series "
                f"{stack.series_uid} (stale references); Frame of Reference "
                f"{'matches' if same_for else 'differs'}, {fit:.0%} of its planes lie inside the CT extent; "
                "slices must be matched by geometry",
            )
            pairing = "series_uid+geometry" if fit > 0 and same_for else "series_uid"
        elif ref_instances and present < len(ref_instances):
            issue(
                stack.patient_id,
                path,
                f"{source.value}: {len(ref_instances) - present} of the {len(ref_instances)} referenced SOP "
                f"instances are absent from series {stack.series_uid}",
            )
    if stack is None and ref_instances:
        counts: dict[str, int] = defaultdict(int)
        found: dict[str, Stack] = {}
        for uid in ref_instances:
            s = index.by_sop.get(uid)
            if s is not None:
                counts[s.stack_id] += 1
                found[s.stack_id] = s
        if counts:
            stack = found[max(counts, key=lambda k: (counts[k], k))]
            pairing = "instances"
    if stack is None and for_uids:
        for_stacks = [
            s for uid in for_uids for s in index.by_for.get(uid, []) if not pid or s.patient_id == pid
        ]
        fitting = [s for s in for_stacks if _seg_grid_matches(s, record) and geometry_fit(s, record, tol) > 0]
        if fitting:
            stack = _best(fitting, record, tol)
            pairing = "frame_of_reference"
    if stack is None and pid:
        fitting = [
            s
            for s in index.by_patient.get(pid, [])
            if _seg_grid_matches(s, record) and geometry_fit(s, record, tol) >= 0.5
        ]
        if fitting:
            stack = _best(fitting, record, tol)
            pairing = "geometry"
    if stack is not None and pid and stack.patient_id != pid:
        issue(pid, path, f"{source.value}: PatientID '{pid}' differs from the CT's '{stack.patient_id}'")
    ref = MaskRef(
        path=path,
        source=source,
        patient_id=stack.patient_id if stack else pid,
        referenced_series_uid=stack.series_uid if stack else ";".join(record.get("ref_series") or []),
        frame_of_reference_uid=(stack.for_uid if stack else "") or (for_uids[0] if for_uids else ""),
        pairing=pairing,
        structures=header_structures(record),
    )
    return PairedMask(ref, stack)


def header_structures(record: dict[str, Any]) -> tuple[str, ...]:
    """Each ROI / segment of a SEG or RTSTRUCT header record as "name [type]: lesion|not a lesion (rule)".

    The rules are io/structures.py's with the default loader settings (series.csv documents the archive;
    ``run`` applies the configured rules when it reads the masks).
    """
    from hpd_imaging.io.structures import classify_structure

    out = []
    if record.get("kind") == "rtstruct":
        names = record.get("rois") or []
        types = record.get("roi_types") or [""] * len(names)
        for name, rt_type in zip(names, types, strict=False):
            is_lesion, rule = classify_structure(name=name, rt_roi_type=rt_type)
            out.append(f"{name} [{rt_type or '-'}]: {'lesion' if is_lesion else 'not a lesion'} ({rule})")
    elif record.get("kind") == "seg":
        for label, code, meaning, prop, number, prop_code in record.get("segment_codes") or []:
            if prop_code == "125040" or (record.get("seg_type") == "LABELMAP" and number == 0):
                continue  # the Label Map SEG's background is no structure
            is_lesion, rule = classify_structure(
                name=label, category_code=code, category_meaning=meaning, property_meaning=prop
            )
            out.append(f"{label} [{meaning or '-'}]: {'lesion' if is_lesion else 'not a lesion'} ({rule})")
    return tuple(out)


_LABEL_WORDS = ("seg", "label", "mask", "roi", "gtv", "lesion", "tumo")
_IMAGE_WORDS = ("image", "img", "_0000", "volume")
_SIBLING_TAGS = ("_seg", "_label", "_labels", "_mask", ".seg", "-seg", "-label")


def looks_like_label_map(path: Path, header: dict[str, Any]) -> bool:
    """NIfTI/NRRD files can be images as well as label maps, and the header does not say which.

    The voxels decide when the scan could read them (``header["content"]``: non-negative integers with few
    distinct values are a label map); otherwise the name rule: a name with
    seg/label/mask/roi/gtv/lesion/tumo(u)r is a label map; otherwise a floating-point file,
    a name with image/img/volume/_0000 (nnU-Net channel), or a name that is or starts with "ct" (dcm2niix
    output next to a DICOM folder called CT) is an image; anything else is taken as a label map.
    """
    content = header.get("content")
    if content in ("labelmap", "image"):  # read from the voxels at scan time (headers.volume_content)
        return bool(content == "labelmap")
    name = path.name.lower()
    if any(w in name for w in _LABEL_WORDS):
        return True
    if "float" in str(header.get("pixel_type", "")).lower():
        return False
    if name.split(".")[0] == "ct" or name.startswith(("ct_", "ct-")):
        return False
    return not any(w in name for w in _IMAGE_WORDS)


def labelmap_size_matches(stack: Stack, header: dict[str, Any]) -> bool:
    """Label-map size (i, j, k) equals the stack's (columns, rows, slices)."""
    size = header.get("size") or []
    return len(size) >= 3 and list(size[:3]) == [stack.columns, stack.rows, stack.n_slices]


def pair_labelmap_by_convention(
    path: Path,
    header: dict[str, Any],
    index: StackIndex,
    study_dir: Path,
    settings: ArchiveSettings,
    issue: IssueSink,
) -> PairedMask | None:
    """Naming conventions for label maps that masks.csv does not list (module docstring)."""
    name = path.name
    stem = next((name[: -len(sfx)] for sfx in settings.labelmap_suffixes if name.endswith(sfx)), path.stem)
    # 1. <series folder>[_seg|_label|_labels|_mask|.seg].nii.gz next to the series folder
    siblings = [path.parent / stem] + [
        path.parent / stem[: -len(tag)]
        for tag in _SIBLING_TAGS
        if stem.lower().endswith(tag) and len(stem) > len(tag)
    ]
    sibling = next((s for s in siblings if s.is_dir()), None)
    if sibling is not None:
        stacks = index.directly_in(sibling) or index.under(sibling)
        if stacks:
            matching = [s for s in stacks if labelmap_size_matches(s, header)] or stacks
            stack = max(matching, key=lambda s: (s.n_slices, s.stack_id))
            return PairedMask(_labelmap_ref(path, stack, "folder_name"), stack)
    # 2. inside an exam folder: walk up until a folder holds the stacks of exactly one exam
    folder = path.parent
    for _ in range(settings.labelmap_search_levels + 1):
        stacks = index.under(folder)
        if stacks:
            exams = {(s.patient_id, s.study_date) for s in stacks}
            if len(exams) > 1:
                # several exams below this folder: only a stack whose matrix equals the label-map size counts
                stacks = [s for s in stacks if labelmap_size_matches(s, header)]
                exams = {(s.patient_id, s.study_date) for s in stacks}
            if len(exams) > 1 or not stacks:
                issue(
                    "",
                    path,
                    f"label map: folder {folder.name} holds series of several exams and the label-map size "
                    f"{header.get('size')} does not single one out; "
                    f"list it in {settings.manifest_name} to pair it",
                )
                return None
            matching = [s for s in stacks if labelmap_size_matches(s, header)]
            if matching:
                # the stack(s) whose matrix equals the label map's; two forms of one CT (single frames and
                # Legacy Converted Enhanced) both match: the one with most slices, then the lowest id
                best = max(matching, key=lambda s: (s.n_slices, s.stack_id))
                return PairedMask(_labelmap_ref(path, best, "folder"), best)
            exam = next(iter(exams))
            size = header.get("size")
            if not matching:
                issue(exam[0], path, f"label map size {size} matches no CT stack of its exam folder {folder}")
            ref = MaskRef(path=path, source=MaskSource.LABELMAP, patient_id=exam[0], pairing="folder")
            return PairedMask(ref, None, exam)
        if folder == study_dir or study_dir not in folder.parents:
            break
        folder = folder.parent
    return None


def _labelmap_ref(
    path: Path, stack: Stack, pairing: str, label_table: tuple[tuple[int, str, str, bool], ...] = ()
) -> MaskRef:
    return MaskRef(
        path=path,
        source=MaskSource.LABELMAP,
        patient_id=stack.patient_id,
        referenced_series_uid=stack.series_uid,
        frame_of_reference_uid=stack.for_uid,
        label_table=label_table,
        pairing=pairing,
    )
