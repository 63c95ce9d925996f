"""One patient's work, on a Dask worker: load, track + measure, radiomics, snapshots, DICOM outputs.

A worker receives a :class:`PatientJob` (paths and settings, never pixel arrays) and returns a small status
dict; the tables are stored under ``job.result_dir``, so a remote worker sends back kilobytes, not images.

Memory: one patient's images at a time per worker process. CTs are loaded lazily (issue 21: headers and
geometry checked, slices decoded when first read): with declared lesion identity a follow-up exam decodes only
its snapshot slices (one per lesion) and the baseline only the slices of its radiomics crops, so in the
common case about one timepoint's volume is in memory; registration, the body mask of peritumoral rings and
MIRP decode a CT whole (a 512x512x300 CT is ~160 MB as int16). Masks are bounding-box crops; pyradiomics'
working copies of the baseline lesion regions come on top. ``loader.memory_budget_mib`` bounds it
(pipeline/memory.py: an exam, a registration or a radiomics region that would pass it is an error row). Size
``--workers`` so that workers x (budget + ~0.4 GiB) fits in memory.

Resume: ``done.json`` is written last, atomically; a result folder without it is an unfinished attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.course.roles import scan_roles
from hpd_imaging.course.targets import assign_lesion_roles
from hpd_imaging.domain import LesionMask, MaskSource, Timepoint, TimepointRole
from hpd_imaging.errors import EnvironmentFaultError, HpdImagingError
from hpd_imaging.pipeline.memory import (
    BODY_MASK_BYTES_PER_VOXEL,
    MemoryBudgetError,
    check_budget,
    ct_estimate_bytes,
    held_bytes,
    masks_bytes,
    mib,
    radiomics_region_bytes,
    whole_bytes,
    without_voxels,
)
from hpd_imaging.pipeline.ruler_exams import check_ruler_identities as _check_ruler_identities
from hpd_imaging.pipeline.ruler_exams import ruler_rows as _ruler_rows
from hpd_imaging.pipeline.ruler_exams import with_rulers as _with_rulers
from hpd_imaging.pseudonym import replace_token
from hpd_imaging.settings import PipelineConfig, load_response_config, resolve_resource

logger = logging.getLogger(__name__)

ERROR_COLUMNS = ["patient_id", "stage", "file", "message", "severity"]
#: Dice above which two masks of one exam from different files are reported as probably the same lesion
DUPLICATE_DICE = 0.5


@dataclass
class PatientJob:
    """Everything a worker needs for one patient: paths and settings, no pixels.

    ``patient_id`` is the ID written in outputs (the pseudonym with ``--pseudonymize``); ``source_patient_id``
    is the archive's, used only to scrub it from error messages (the worker never sees the pseudonym key).
    """

    patient_id: str
    timepoints: list[Timepoint]
    config: PipelineConfig
    result_dir: Path  # OUT/.work/patients/<patient_id>/<key>
    config_dir: Path | None
    source_patient_id: str = ""
    dicom_out_dir: Path | None = None
    dicom_patient_attributes: dict[str, str] = field(default_factory=dict)
    snapshots: bool = True


def error_row(
    patient_id: str, stage: str, path: str | None, exc: BaseException | str, severity: str = "error"
) -> dict[str, str]:
    """One errors.csv row. ``severity`` "error": an expected output is missing; "warning": outputs complete
    but something deserves a look (e.g. the same lesion annotated twice)."""
    message = str(exc) if not isinstance(exc, str) else exc
    if isinstance(exc, BaseException) and not isinstance(exc, HpdImagingError):
        # an unexpected exception is a bug or an unforeseen input: keep its type for the report
        message = f"{type(exc).__name__}: {exc}"
        logger.debug("patient %s stage %s:\n%s", patient_id, stage, traceback.format_exc())
    return {
        "patient_id": patient_id,
        "stage": stage,
        "file": path or "",
        "message": message,
        "severity": severity,
        "rule": type(exc).__name__ if isinstance(exc, BaseException) else "",  # errors.csv "rule" (issue 16)
    }


def assign_roles(timepoints: list[Timepoint], ici_start: dt.date | None) -> list[Timepoint]:
    """The timepoints, sorted, with their roles by the one rule of :func:`hpd_imaging.course.scan_roles`
    (specs/hpd_kinetics.md section 0). Without an ICI start date, roles stay UNASSIGNED and the first exam
    serves as the tracking reference."""
    tps = sorted(timepoints, key=lambda t: t.scan_date)
    roles = scan_roles([t.scan_date for t in tps], ici_start)
    return [dataclasses.replace(t, role=roles.role_of(t.scan_date)) for t in tps]


def _baseline(tps: list[Timepoint]) -> Timepoint:
    for t in tps:
        if t.role is TimepointRole.BASELINE:
            return t
    return tps[0]


def unique_labels(masks: list[LesionMask]) -> list[LesionMask]:
    """The exam's masks, each label made unique within the exam.

    Later stages find a lesion's mask by (scan date, label) (radiomics rows, snapshots, SEG/SR), and real
    exports repeat labels: SEG segments all called "Tumor", a label map's ``1`` beside an RTSTRUCT ROI named
    ``1``. Two masks under one label would give one lesion the other's features and picture. A repeated label
    is written ``<label> #<n> (<file name>)``, n counting its occurrences in mask order (the order of
    the files and of the segments in them, so the same input gives the same names); unique labels are kept.
    """
    counts: dict[str, int] = {}
    for m in masks:
        counts[m.label] = counts.get(m.label, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for m in masks:
        if counts[m.label] < 2:
            out.append(m)
            continue
        seen[m.label] = seen.get(m.label, 0) + 1
        name = Path(m.source_path).name if m.source_path else m.source.value
        out.append(dataclasses.replace(m, label=f"{m.label} #{seen[m.label]} ({name})"))
    return out


def duplicate_masks(
    masks: list[LesionMask], threshold: float = DUPLICATE_DICE
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, Dice) of masks from *different files* of one exam that overlap with Dice >= threshold.

    Archives exported from several tools often carry the same lesion twice (e.g. an RTSTRUCT and a NIfTI
    label map of the same ROI): both are then measured as separate lesions and the tumour burden (sum of
    diameters) doubles. We do not guess which one to drop; the pipeline reports a warning instead.
    """
    boxes: list[tuple[tuple[int, int], ...] | None] = [
        None if m.is_empty else tuple((o, o + n) for o, n in zip(m.offset, m.crop.shape, strict=True))
        for m in masks
    ]
    out = []
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            a, b, box_a, box_b = masks[i], masks[j], boxes[i], boxes[j]
            if a.source_path == b.source_path or box_a is None or box_b is None:
                continue
            lo = [max(p[0], q[0]) for p, q in zip(box_a, box_b, strict=True)]
            hi = [min(p[1], q[1]) for p, q in zip(box_a, box_b, strict=True)]
            if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
                continue
            # the two crops over the boxes' intersection (grid window lo:hi, shifted to each crop)
            win_a = tuple(slice(lo_ - o, h - o) for lo_, h, o in zip(lo, hi, a.offset, strict=True))
            win_b = tuple(slice(lo_ - o, h - o) for lo_, h, o in zip(lo, hi, b.offset, strict=True))
            inter = int(np.count_nonzero(a.crop[win_a] & b.crop[win_b]))
            dice = 2.0 * inter / (a.voxel_count + b.voxel_count)
            if dice >= threshold:
                out.append((i, j, dice))
    return out


def process_patient(job: PatientJob) -> dict[str, Any]:
    """Load, track, measure, extract radiomics and cut snapshots for one patient; store the results.

    Returns a small status dict (the tables are on disk under ``job.result_dir``). Raises nothing for
    patient-level problems: they become error rows.
    """
    from hpd_imaging.io import load_ct
    from hpd_imaging.measure import lesions_table
    from hpd_imaging.tracking import ExamMasks, registration_needed, track_lesions, tracking_table

    pid = job.patient_id
    cfg = job.config
    errors: list[dict[str, str]] = []
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    exams: list[ExamMasks] = []
    failed_load = False
    ruler_rows: list[dict[str, Any]] = []
    for tp in job.timepoints:
        if tp.ct is None:  # archive timepoints always carry their CT; only table courses have none
            raise ValueError(f"patient {job.patient_id}: exam {tp.scan_date} has no CT series")
        folder = str(tp.ct.files[0].parent) if tp.ct.files else ""
        rulers = [m for m in tp.masks if m.source is MaskSource.RULER_SR]
        if rulers:
            segmentations = tuple(m for m in tp.masks if m.source is not MaskSource.RULER_SR)
            if not segmentations:  # rulers where no mask exists: this exam is measured on its rulers
                rows = _ruler_rows(pid, tp, rulers, errors, error_row)
                failed_load |= rows is None
                ruler_rows.extend(rows or [])
                continue
            logger.info(
                "patient %s: exam %s has segmentations; its ruler SRs are not used", pid, tp.scan_date
            )
            tp = dataclasses.replace(tp, masks=segmentations)
        series = tp.ct
        assert series is not None  # checked above
        try:
            # memory budget (issue 21): the CTs held + this one, from its headers, before decoding it
            check_budget(
                held_bytes(exams) + ct_estimate_bytes(series),
                cfg.loader.memory_budget_mib,
                f"exam {tp.scan_date}: its CT ({series.columns}x{series.rows}x{series.n_slices}) with the "
                f"{len(exams)} exam(s) already loaded",
                folder,
            )
            # lazily (issue 21): every header and geometry check now, slices decoded when a stage reads them
            ct = load_ct(list(series.files), cfg.loader, lazy=True)
            check_budget(  # a float32 CT is twice the estimate: count it at its real size
                held_bytes(exams) + whole_bytes(ct),
                cfg.loader.memory_budget_mib,
                f"exam {tp.scan_date}: its CT ({ct.dtype}, {mib(whole_bytes(ct)):.1f} MiB) with the "
                f"{len(exams)} exam(s) already loaded",
                folder,
            )
        except HpdImagingError as exc:
            errors.append(error_row(pid, "load_ct", exc.path or folder, exc))
            failed_load = True
            continue
        except Exception as exc:  # noqa: BLE001 - one bad series must not end the batch
            errors.append(error_row(pid, "load_ct", folder, exc))
            failed_load = True
            continue
        masks, n_failed = _load_exam_masks(pid, tp, ct, cfg.loader, errors)
        masks = unique_labels(masks)
        if tp.masks and n_failed == len(tp.masks):
            failed_load = True  # not one segmentation of this exam could be read: nothing to measure
        if not tp.masks:
            if tp.role is TimepointRole.FOLLOW_UP and cfg.run.follow_up_without_mask == "no_lesions":
                errors.append(
                    error_row(
                        pid,
                        "load_masks",
                        folder,
                        f"follow-up exam {tp.scan_date} has no segmentation: read as no visible lesion "
                        "(every tracked lesion measured 0 mm); set run.follow_up_without_mask: error "
                        "to refuse instead",
                        severity="warning",
                    )
                )
            else:
                errors.append(
                    error_row(
                        pid,
                        "load_masks",
                        folder,
                        f"exam {tp.scan_date} ({tp.role.value}): expected a lesion segmentation paired "
                        "with the "
                        "CT, got none",
                    )
                )
                failed_load = True
        for i, j, dice in duplicate_masks(masks):
            a, b = masks[i], masks[j]
            msg = (
                f"exam {tp.scan_date}: mask {a.label!r} ({a.source_path}) and mask {b.label!r} "
                f"({b.source_path}) "
                f"overlap with Dice {dice:.2f}: probably the same lesion annotated in two files; both are "
                "measured as separate lesions (the sum of diameters counts it twice). Remove one file or "
                "list the intended masks in masks.csv."
            )
            logger.warning("patient %s: %s", pid, msg)
            errors.append(error_row(pid, "load_masks", b.source_path, msg, severity="warning"))
        exams.append(ExamMasks(tp.scan_date, ct, masks, tp))
    timings["load_s"] = time.perf_counter() - t0

    if failed_load:
        # a patient with an unreadable exam cannot be tracked or assessed faithfully
        return _finish(job, errors, timings, ok=False)
    if not exams:  # every exam measured on rulers: no image stage to run
        rd = job.result_dir
        atomic.write_parquet(rd / "lesions.parquet", _with_rulers(lesions_table([]), ruler_rows))
        atomic.write_parquet(rd / "tracking.parquet", tracking_table([]))
        _save_snapshots(rd / "snapshots.npz", [])
        return _finish(job, errors, timings, ok=True)

    t1 = time.perf_counter()
    try:
        if registration_needed(exams, cfg.tracking):  # registration decodes every exam's CT whole
            check_budget(
                sum(whole_bytes(e.ct) + masks_bytes(e.masks) for e in exams),
                cfg.loader.memory_budget_mib,
                f"registration (lesions without declared identity) of {len(exams)} exams: every CT decoded",
                str(exams[0].ct.source),
            )
        course = track_lesions(pid, exams, cfg.tracking, measure_settings=cfg.measure)
        # RECIST roles set once on the course (the rule the kinetics stage applies to lesions.csv), so that
        # every reader of this course (snapshots, DICOM SR) sees the same targets
        response_cfg = load_response_config(resolve_resource(cfg.response.definitions_file, job.config_dir))
        course = assign_lesion_roles(course, response_cfg)
    except Exception as exc:  # noqa: BLE001
        errors.append(error_row(pid, "tracking", _path_of(exc), exc))  # e.g. a slice that fails to decode
        return _finish(job, errors, timings, ok=False)
    lesions = lesions_table([course])
    tracking = tracking_table([course])
    if ruler_rows:
        _check_ruler_identities(pid, lesions, ruler_rows, errors, error_row)
        lesions = _with_rulers(lesions, ruler_rows)
    timings["track_measure_s"] = time.perf_counter() - t1

    label_to_id = _label_to_lesion_id(course)
    base_tp = _baseline(job.timepoints)

    t3 = time.perf_counter()
    snapshot_errors: list[dict[str, str]] = []
    snapshots = _snapshots(job, exams, course, label_to_id, snapshot_errors) if job.snapshots else []
    outputs_s = time.perf_counter() - t3
    # one timepoint's volume where possible (issue 21): tracking (registration) and the snapshots are done,
    # so only the CTs radiomics reads keep their voxels; the others keep their grid for the DICOM outputs
    keep = (
        {e.scan_date for e in exams}
        if cfg.radiomics.enabled and cfg.radiomics.timepoints == "all"
        else ({base_tp.scan_date} if cfg.radiomics.enabled else set())
    )
    exams = [e if e.scan_date in keep else e._replace(ct=without_voxels(e.ct)) for e in exams]
    base_exam = next((e for e in exams if e.scan_date == base_tp.scan_date), None)

    t2 = time.perf_counter()
    features = diagnostics = None
    if cfg.radiomics.enabled and base_exam is None:
        errors.append(
            error_row(
                pid,
                "radiomics",
                None,
                f"baseline exam {base_tp.scan_date} is measured on rulers (no mask): no radiomics",
                severity="warning",
            )
        )
    elif cfg.radiomics.enabled:
        try:
            features, diagnostics, radiomics_errors = _radiomics(job, exams, base_exam, label_to_id)
            errors.extend(radiomics_errors)
        except Exception as exc:  # noqa: BLE001 - keep the measurements when radiomics fails
            errors.append(error_row(pid, "radiomics", _path_of(exc) or base_exam.ct.source, exc))
    timings["radiomics_s"] = time.perf_counter() - t2

    errors.extend(snapshot_errors)  # after the radiomics rows, as before the snapshots moved up
    t3 = time.perf_counter()
    if job.dicom_out_dir is not None:
        _dicom_outputs(job, exams, course, label_to_id, errors)
    timings["outputs_s"] = outputs_s + time.perf_counter() - t3

    rd = job.result_dir
    atomic.write_parquet(rd / "lesions.parquet", lesions)
    atomic.write_parquet(rd / "tracking.parquet", tracking)
    if features is not None:
        atomic.write_parquet(rd / "radiomics.parquet", features)
        atomic.write_parquet(rd / "radiomics_diagnostics.parquet", diagnostics)
    _save_snapshots(rd / "snapshots.npz", snapshots)
    return _finish(job, errors, timings, ok=True)


def _load_exam_masks(
    pid: str, tp: Timepoint, ct: Any, loader: Any, errors: list[dict[str, str]]
) -> tuple[list[LesionMask], int]:
    """The lesion masks of one exam, and how many of its files failed.

    Failure isolation at the mask level: an unreadable or mismatched file is one error row (file, rule,
    value) and the exam's other files go on. Structures that the lesion rules exclude (body outline, organs,
    markers, anatomy segments; io/structures.py) are dropped with their reason logged; a lesion structure
    that gives no voxel (a one-point ROI, an empty segment) is an error row, never a lesion of volume 0.
    """
    from hpd_imaging.io import load_masks
    from hpd_imaging.io.structures import StructureProblem

    masks: list[LesionMask] = []
    n_failed = 0
    for ref in tp.masks:
        problems: list[StructureProblem] = []
        try:
            table = {v: (lid, organ, node) for v, lid, organ, node in ref.label_table} or None
            loaded = load_masks(ref.path, ct, settings=loader, label_table=table, problems=problems)
        except Exception as exc:  # noqa: BLE001 - one bad mask file is one row; the exam goes on
            errors.append(error_row(pid, "load_masks", str(ref.path), exc))
            n_failed += 1
            continue
        for problem in problems:
            if problem.is_lesion:
                errors.append(error_row(pid, "load_masks", problem.path, problem.message))
        for m in loaded:
            if not m.is_lesion:
                logger.info(
                    "patient %s: %s: %r is not a lesion (%s)", pid, m.source_path, m.label, m.lesion_rule
                )
        masks.extend(m for m in loaded if m.is_lesion)
    return masks, n_failed


def _path_of(exc: BaseException) -> str | None:
    """The file an error names (``HpdImagingError.path``: e.g. the CT slice that failed to decode)."""
    return getattr(exc, "path", None) if isinstance(exc, HpdImagingError) else None


def _label_to_lesion_id(course: Any) -> dict[tuple[dt.date, str], str]:
    """(scan date, mask label) -> lesion_id, from the tracker's evidence."""
    return {
        (m.scan_date, m.label): m.lesion_id for m in course.tracking if m.method != "disappeared" and m.label
    }


def _radiomics(job: PatientJob, exams: list, base_exam: Any, label_to_id: dict) -> tuple:
    from hpd_imaging.radiomics import extract_lesion_features, load_params

    cfg = job.config.radiomics
    params = load_params(resolve_resource(cfg.params_file, job.config_dir))
    if cfg.engine is not None:
        params = params.with_engine(cfg.engine)
    chosen = exams if cfg.timepoints == "all" else [base_exam]
    feats: list[pd.DataFrame] = []
    diags: list[pd.DataFrame] = []
    errors: list[dict[str, str]] = []
    limit_mm3 = job.config.loader.max_radiomics_region_mm3
    budget_mib = job.config.loader.memory_budget_mib
    for exam in chosen:
        masks = []
        # held during extraction: the other exams' decoded voxels, this CT decoded (a lazy CT decodes only its
        # crops' slices: counted whole, as an upper bound), pyradiomics' SimpleITK copy of it (of a lazy CT a
        # 1-byte grid reference plus the crops: counted as the copy), the body mask
        held = held_bytes([e for e in exams if e is not exam]) + 2 * whole_bytes(exam.ct)
        held += masks_bytes(exam.masks)
        if cfg.ring_widths_mm:
            held += BODY_MASK_BYTES_PER_VOXEL * math.prod(exam.ct.geometry.shape)
        for m in exam.masks:
            if (exam.scan_date, m.label) not in label_to_id:
                continue
            volume_mm3 = m.voxel_count * m.geometry.voxel_volume_mm3
            if volume_mm3 > limit_mm3:  # memory bound: pyradiomics' working copies scale with the region
                errors.append(
                    error_row(
                        job.patient_id,
                        "radiomics",
                        m.source_path,
                        f"lesion {label_to_id[(exam.scan_date, m.label)]} ({m.label!r}): region volume "
                        f"{volume_mm3:.0f} mm3 exceeds loader.max_radiomics_region_mm3={limit_mm3:.0f}; "
                        "radiomics skipped for it (raise the limit to extract it)",
                    )
                )
                continue
            try:
                check_budget(
                    held + _region_work_bytes(m, exam.ct, params, cfg.ring_widths_mm),
                    budget_mib,
                    f"lesion {label_to_id[(exam.scan_date, m.label)]} ({m.label!r}, {m.voxel_count} voxels "
                    f"in a {'x'.join(str(n) for n in m.crop.shape[::-1])} box): radiomics",
                    m.source_path,
                )
            except MemoryBudgetError as exc:
                errors.append(error_row(job.patient_id, "radiomics", m.source_path, exc))
                continue
            masks.append(m)
        if not masks:
            continue
        ids = [label_to_id[(exam.scan_date, m.label)] for m in masks]
        result = extract_lesion_features(
            exam.ct,
            masks,
            params,
            ring_widths_mm=cfg.ring_widths_mm,
            lesion_ids=ids,
            patient_id=job.patient_id,
            scan_date=exam.scan_date,
            body_threshold_hu=cfg.body_threshold_hu,
            workers=cfg.lesion_workers,
            fast_shape=cfg.fast_shape,
            ibsi_tags=cfg.ibsi_tags,
            dask=cfg.distribute_on_dask,  # lesions as tasks of the cluster this patient runs on (issue 21)
            split_min_voxels=cfg.split_min_voxels,
        )
        feats.append(result.features)
        diags.append(result.diagnostics)
        errors.extend(
            error_row(job.patient_id, "radiomics", exam.ct.source, f"lesion {lid}: {msg}")
            for lid, msg in result.errors
        )
    features = pd.concat(feats, ignore_index=True) if feats else pd.DataFrame()
    diagnostics = pd.concat(diags, ignore_index=True) if diags else pd.DataFrame()
    return features, diagnostics, errors


def _region_work_bytes(mask: LesionMask, ct: Any, params: Any, ring_widths_mm: Any) -> int:
    """Estimated pyradiomics bytes of a lesion's largest region (the lesion, or its widest ring's box)."""
    from hpd_imaging.radiomics.extract import _crop_margin_voxels

    spacing = ct.geometry.spacing_mm
    if _crop_margin_voxels(params, spacing) is None:  # pyradiomics gets the whole CT: whole-image filters
        box = ct.geometry.shape
    else:
        widest = max((float(w) for w in ring_widths_mm), default=0.0)
        grow = [2 * (int(np.ceil(widest / s)) + 1) if widest else 0 for s in spacing[::-1]]
        box = tuple(min(n + g, t) for n, g, t in zip(mask.crop.shape, grow, ct.geometry.shape, strict=True))
    return radiomics_region_bytes(box, spacing, params.as_dict())


def _snapshots(job: PatientJob, exams: list, course: Any, label_to_id: dict, errors: list) -> list:
    from hpd_imaging.report.inputs import make_snapshot

    out = []
    by_key = {(m.scan_date, m.lesion_id): m for m in course.measurements}
    for exam in exams:
        for mask in exam.masks:
            lid = label_to_id.get((exam.scan_date, mask.label))
            meas = by_key.get((exam.scan_date, lid))
            if lid is None or meas is None or meas.voxel_count == 0:
                continue
            try:
                out.append(
                    make_snapshot(
                        exam.ct, mask, dataclasses.replace(meas, lesion_id=lid), patient_id=job.patient_id
                    )
                )
            except Exception as exc:  # noqa: BLE001 - a missing picture must not lose the numbers
                # a CT slice that fails to decode names its file; other failures are the mask's
                errors.append(error_row(job.patient_id, "snapshot", _path_of(exc) or mask.source_path, exc))
    return out


def _dicom_outputs(job: PatientJob, exams: list, course: Any, label_to_id: dict, errors: list) -> None:
    """SEG + TID 1500 SR per exam: every measurement of the exam (0 mm included), also for an exam without
    segmentation (an SR that says "assessed, not present"), with the exam's role and order (TID 1502).
    Exams whose CT is not DICOM (images.csv archives) get none: a SEG/SR needs DICOM source images."""
    from hpd_imaging.io.dicom_out import TimePointInfo, write_dicom_outputs
    from hpd_imaging.io.filetype import FileKind, sniff

    assert job.dicom_out_dir is not None
    for order, exam in enumerate(sorted(exams, key=lambda e: e.scan_date), start=1):
        ct_files = list(exam.timepoint.ct.files) if exam.timepoint is not None and exam.timepoint.ct else []
        if ct_files and sniff(ct_files[0], parse_raw_dicom=False) is not FileKind.DICOM:
            logger.info("patient %s: %s is not DICOM; no SEG/SR written", job.patient_id, ct_files[0])
            continue
        meas = [m for m in course.measurements if m.scan_date == exam.scan_date]
        masks = {
            label_to_id[(exam.scan_date, m.label)]: m
            for m in exam.masks
            if (exam.scan_date, m.label) in label_to_id
        }
        folder = job.dicom_out_dir / job.patient_id / exam.scan_date.strftime("%Y%m%d")
        try:
            write_dicom_outputs(
                list(exam.timepoint.ct.files),
                exam.ct,
                masks,
                meas,
                list(course.lesions),
                folder,
                scan_date=exam.scan_date,
                time_point=TimePointInfo(role=exam.timepoint.role, order=order),
                patient_attributes=job.dicom_patient_attributes,
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(error_row(job.patient_id, "dicom_out", str(folder), exc))


def _save_snapshots(path: Path, snapshots: list) -> None:
    """Snapshots as one npz (arrays) + JSON metadata: no pickle, so results stay safe to read back."""
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for n, s in enumerate(snapshots):
        arrays[f"hu{n}"] = s.hu
        arrays[f"mask{n}"] = s.mask
        meta.append(
            {
                "patient_id": s.patient_id,
                "lesion_id": s.lesion_id,
                "scan_date": s.scan_date.isoformat(),
                "pixel_spacing_mm": list(s.pixel_spacing_mm),
                "long_axis_xy": s.long_axis_xy,
                "short_axis_xy": s.short_axis_xy,
                "long_axis_mm": s.long_axis_mm,
                "short_axis_mm": s.short_axis_mm,
                "slice_index": s.slice_index,
            }
        )
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy stub: **kwds of arrays

    atomic.write_with(path, write)


def load_snapshots(path: Path) -> list:
    from hpd_imaging.report.inputs import LesionSnapshot

    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        out = []
        for n, m in enumerate(meta):
            out.append(
                LesionSnapshot(
                    patient_id=m["patient_id"],
                    lesion_id=m["lesion_id"],
                    scan_date=dt.date.fromisoformat(m["scan_date"]),
                    hu=data[f"hu{n}"],
                    mask=data[f"mask{n}"],
                    pixel_spacing_mm=tuple(m["pixel_spacing_mm"]),
                    long_axis_xy=_pairs(m["long_axis_xy"]),
                    short_axis_xy=_pairs(m["short_axis_xy"]),
                    long_axis_mm=m["long_axis_mm"],
                    short_axis_mm=m["short_axis_mm"],
                    slice_index=m["slice_index"],
                )
            )
    return out


def _pairs(value: Any) -> Any:
    return None if value is None else tuple(tuple(float(v) for v in p) for p in value)


def _finish(
    job: PatientJob, errors: list[dict[str, str]], timings: dict[str, float], ok: bool
) -> dict[str, Any]:
    if job.source_patient_id and job.source_patient_id != job.patient_id:
        # pseudonymised run: the source ID may sit in a file path or a message
        for row in errors:
            for col in ("file", "message"):
                row[col] = replace_token(row[col], job.source_patient_id, job.patient_id)
    status = {"patient_id": job.patient_id, "ok": ok, "errors": errors, "timings_s": timings}
    atomic.write_json(job.result_dir / "errors.json", errors)
    if ok:
        atomic.write_json(job.result_dir / "done.json", {"patient_id": job.patient_id, "timings_s": timings})
    return status


def safe_process(job: PatientJob) -> dict[str, Any]:
    """process_patient with a last-resort guard: an unexpected exception is that patient's error row."""
    try:
        return process_patient(job)
    except EnvironmentFaultError:
        raise  # full disk / unwritable OUT: the machine's fault, the run stops with exit code 2
    except Exception as exc:  # noqa: BLE001
        return _finish(job, [error_row(job.patient_id, "pipeline", None, exc)], {}, ok=False)
