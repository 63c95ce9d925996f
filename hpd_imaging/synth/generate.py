"""``generate_archive``: plan, render, write and record the truth of a synthetic longitudinal archive.

Layout (contracts): ``OUT/clinical.csv``, ``OUT/ground_truth.json``, ``OUT/<patient>/<YYYYMMDD>/CT/<n>.dcm``,
``OUT/<patient>/<YYYYMMDD>/SEG/seg.dcm`` (or ``RTSTRUCT/rtstruct.dcm``, or ``LABELS/labels.nii.gz`` +
``OUT/masks.csv``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hpd_imaging import __version__
from hpd_imaging.errors import ConfigError
from hpd_imaging.settings.synth import SynthSettings
from hpd_imaging.synth.anatomy import Pose
from hpd_imaging.synth.clinical import clinical_row, hazard_per_month, write_clinical_csv
from hpd_imaging.synth.dicom_writer import ExamIds, SegmentSpec, make_uid, write_ct_series, write_seg
from hpd_imaging.synth.kinetics import V_CAP_MM3
from hpd_imaging.synth.lesions import TRUTH_DIAMETER_TOL_MM, TRUTH_VOLUME_REL_TOL
from hpd_imaging.synth.plan import LesionPlan, PatientPlan, plan_patient
from hpd_imaging.synth.render import ExamGrid, lesion_axes, min_detectable_mm, render_exam
from hpd_imaging.synth.texture import SIGNAL_MECHANISM

logger = logging.getLogger(__name__)

MASKS_CSV_COLUMNS = ("patient_id", "series_uid", "mask_path", "label", "lesion_id", "organ", "is_lymph_node")


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def tolerances(settings: SynthSettings) -> dict[str, Any]:
    """How close a correct measurement of the CT-grid mask is expected to be to the smooth-shape truth."""
    grid = ExamGrid.from_settings(settings)
    px, dz = grid.spacing_mm[0], grid.spacing_mm[2]
    return {
        "volume_rel": 0.15,
        "volume_rel_min_voxels": 50,
        "diameter_mm": _r(1.5 * max(px, dz)),
        "truth_volume_rel": TRUTH_VOLUME_REL_TOL,
        "truth_diameter_mm": TRUTH_DIAMETER_TOL_MM,
        "min_detectable_diameter_mm": _r(min_detectable_mm(grid)),
        "note": (
            "truth_* = accuracy of the truth itself for the smooth lesion shape (volume and centroid by "
            "sphere "
            "quadrature; diameters from a 91x180 parametric surface sampling, converged to < 0.05 mm). "
            "volume_rel / diameter_mm = expected agreement between the truth and a correct measurement of "
            "the "
            "CT-grid mask (voxels whose centre lies inside the smooth shape) for lesions "
            "with at least volume_rel_min_voxels voxels: volume within 15 % (voxel count x voxel volume; "
            "typically < 5 %), "
            "diameters within 1.5 x the largest voxel side. Measurements carry ct_mask_voxel_count and "
            "ct_mask_volume_mm3 so that consumers can tell the two error sources apart."
        ),
    }


def _exam_dir(plan: PatientPlan, date: dt.date) -> str:
    return f"{plan.patient_id}/{date.strftime('%Y%m%d')}"


def _mask_relpath(settings: SynthSettings, exam_dir: str) -> str:
    return {
        "seg": f"{exam_dir}/SEG/seg.dcm",
        "rtstruct": f"{exam_dir}/RTSTRUCT/rtstruct.dcm",
        "nifti": f"{exam_dir}/LABELS/labels.nii.gz",
    }[settings.mask_format]


def _label_numbers(
    settings: SynthSettings, plan: PatientPlan, exam_index: int, present: list[str]
) -> dict[str, int]:
    """Label values 1..n: in lesion order with tracking IDs, shuffled per exam without them."""
    numbers = list(range(1, len(present) + 1))
    if not settings.tracking_ids:
        np.random.default_rng([settings.seed, plan.index, exam_index, 7919]).shuffle(numbers)
    return dict(zip(present, numbers, strict=True))


def generate_patient(out_dir: Path, settings: SynthSettings, index: int) -> dict[str, Any]:
    """Generate one patient's exams under ``out_dir``; return its ground-truth entry (+ clinical row)."""
    from hpd_imaging.synth.mask_formats import write_labelmap, write_rtstruct

    plan = plan_patient(settings, index)
    grid = ExamGrid.from_settings(settings)
    salt = settings.content_hash()
    birth = plan.schedule.ici_start - dt.timedelta(days=int(round(plan.clinical.age * 365.25)) + 100)
    tracking_uids = {
        les.lesion_id: make_uid(salt, plan.patient_id, les.lesion_id, "tracking") for les in plan.lesions
    }
    timepoints: list[dict[str, Any]] = []
    measurements: dict[str, list[dict[str, Any]]] = {les.lesion_id: [] for les in plan.lesions}
    manifest: list[dict[str, str]] = []
    for e, (date, role) in enumerate(zip(plan.schedule.scan_dates, plan.schedule.roles, strict=True)):
        exam_dir = _exam_dir(plan, date)
        ids = ExamIds(
            patient_id=plan.patient_id,
            patient_name=f"SYNTHETIC^{plan.patient_id}",
            birth_date=birth.strftime("%Y%m%d"),
            sex=plan.clinical.sex,
            age=plan.clinical.age,
            scan_date=date,
            study_uid=make_uid(salt, plan.patient_id, date, "study"),
            series_uid=make_uid(salt, plan.patient_id, date, "ct-series"),
            frame_of_reference_uid=make_uid(salt, plan.patient_id, date, "for"),
            accession=f"A{plan.index + 1:06d}{e:02d}",
            uid_salt=f"{salt}/{plan.patient_id}/{date}",
        )
        render = render_exam(plan, e, settings, grid)
        ct_datasets = write_ct_series(
            out_dir / exam_dir / "CT", render.stored, grid, ids, settings.compression
        )
        present = [les.lesion_id for les in plan.lesions if les.lesion_id in render.masks]
        numbers = _label_numbers(settings, plan, e, present)
        by_id = {les.lesion_id: les for les in plan.lesions}
        segments = sorted(
            (
                SegmentSpec(
                    number=numbers[lid],
                    label=lid if settings.tracking_ids else f"Lesion {numbers[lid]}",
                    organ=by_id[lid].organ,
                    mask=render.masks[lid],
                    tracking_id=lid if settings.tracking_ids else None,
                    tracking_uid=tracking_uids[lid] if settings.tracking_ids else None,
                )
                for lid in present
            ),
            key=lambda s: s.number,
        )
        mask_rel = _mask_relpath(settings, exam_dir) if segments else None
        if segments and mask_rel is not None:
            if settings.mask_format == "seg":
                write_seg(out_dir / mask_rel, ct_datasets, segments, ids)
            elif settings.mask_format == "rtstruct":
                write_rtstruct(out_dir / mask_rel, ct_datasets, segments, ids, grid)
            else:
                write_labelmap(out_dir / mask_rel, segments, grid)
                manifest += [
                    {
                        "patient_id": plan.patient_id,
                        "series_uid": ids.series_uid,
                        "mask_path": mask_rel,
                        "label": str(s.number),
                        "lesion_id": s.label if settings.tracking_ids else "",
                        "organ": s.organ,
                        "is_lymph_node": str(s.organ == "lymph_node").lower(),
                    }
                    for s in segments
                ]
        pose: Pose = plan.poses[e]
        timepoints.append(
            {
                "scan_date": date.isoformat(),
                "role": role,
                "study_instance_uid": ids.study_uid,
                "series_instance_uid": ids.series_uid,
                "frame_of_reference_uid": ids.frame_of_reference_uid,
                "shift_mm": [_r(x) for x in pose.shift_mm],
                "rotation_deg": _r(pose.roll_deg),
                "rotation_axis": "cranio-caudal (z); x_scanner = Rz(rotation_deg) @ x_body + shift_mm",
                "ct_dir": f"{exam_dir}/CT",
                "mask_path": mask_rel,
                "n_slices": grid.shape[0],
            }
        )
        for les in plan.lesions:
            measurements[les.lesion_id].append(
                _measurement(les, date, pose, render.masks.get(les.lesion_id), numbers, segments, grid)
            )
        logger.debug("%s %s: %d lesion(s) segmented", plan.patient_id, date, len(segments))

    lesions = [
        _lesion_entry(les, tracking_uids[les.lesion_id], measurements[les.lesion_id]) for les in plan.lesions
    ]
    sched = plan.schedule
    return {
        "truth": {
            "patient_id": plan.patient_id,
            "phenotype": plan.phenotype,
            "latent_risk": _r(plan.latent_risk),
            "ici_start_date": sched.ici_start.isoformat(),
            "survival": {
                "death_date": sched.death.isoformat() if sched.death else None,
                "last_followup_date": sched.last_followup.isoformat() if sched.last_followup else None,
                "hazard_per_month_after_last_scan": _r(
                    hazard_per_month(
                        plan.phenotype, settings.survival_median_months, settings.survival_hazard_ratio_hpd
                    ),
                    6,
                ),
            },
            "texture": plan.texture.as_dict(),
            "texture_base": plan.texture_base.as_dict(),
            "timepoints": timepoints,
            "lesions": lesions,
        },
        "clinical": clinical_row(plan.patient_id, plan.clinical, sched),
        "manifest": manifest,
    }


def _measurement(
    les: LesionPlan,
    date: dt.date,
    pose: Pose,
    mask: np.ndarray | None,
    numbers: dict[str, int],
    segments: list[SegmentSpec],
    grid: ExamGrid,
) -> dict[str, Any]:
    state = lesion_axes(les, date)
    exists = state is not None
    entry: dict[str, Any] = {"scan_date": date.isoformat(), "present": mask is not None, "exists": exists}
    smooth_volume = les.shape.volume_mm3(state[0]) if state is not None else 0.0
    entry["smooth_volume_mm3"] = _r(smooth_volume, 3)
    if mask is None or state is None:
        entry.update(
            {
                "label_value": None,
                "segment_label": None,
                "volume_mm3": 0.0,
                "longest_axial_diameter_mm": 0.0,
                "short_axis_mm": 0.0,
                "max_3d_diameter_mm": 0.0,
                "centroid_mm": None,
                "ct_mask_voxel_count": 0,
                "ct_mask_volume_mm3": 0.0,
            }
        )
        return entry
    axes, L = state
    m = les.shape.measure(axes)
    number = numbers[les.lesion_id]
    label = next(s.label for s in segments if s.number == number)
    count = int(mask.sum())
    centroid = pose.body_to_scanner(les.shape.centroid_body_mm(axes))
    entry.update(
        {
            "label_value": number,
            "segment_label": label,
            "volume_mm3": _r(m["volume_mm3"], 3),
            "longest_axial_diameter_mm": _r(m["longest_axial_diameter_mm"]),
            "short_axis_mm": _r(m["short_axis_mm"]),
            "max_3d_diameter_mm": _r(m["max_3d_diameter_mm"]),
            "centroid_mm": [_r(x) for x in centroid],
            "semi_axes_mm": [_r(x) for x in axes],
            "log_volume_ratio": _r(L, 6),
            "ct_mask_voxel_count": count,
            "ct_mask_volume_mm3": _r(count * grid.voxel_volume_mm3, 3),
        }
    )
    return entry


def _lesion_entry(les: LesionPlan, tracking_uid: str, measurements: list[dict[str, Any]]) -> dict[str, Any]:
    g = les.growth
    return {
        "lesion_id": les.lesion_id,
        "tracking_uid": tracking_uid,
        "organ": les.organ,
        "is_lymph_node": les.is_lymph_node,
        "is_new": les.is_new,
        "k_pre_per_month": _r(g.k_pre, 6),
        "k_post_per_month": _r(g.k_post, 6),
        "k_late_per_month": None if g.k_late is None else _r(g.k_late, 6),
        "switch_days_after_ici": g.switch_days,
        "appear_date": None if g.appear_date is None else g.appear_date.isoformat(),
        "reference_date": (g.ref_date or g.ici_start).isoformat(),
        "reference_volume_mm3": _r(les.v_ref_mm3, 3),
        "volume_cap_mm3": _r(V_CAP_MM3, 1),
        "centre_body_mm": [_r(x) for x in les.shape.centre_body_mm],
        "measurements": measurements,
    }


def _worker(args: tuple[Path, SynthSettings, int]) -> dict[str, Any]:
    # One BLAS thread per patient (why: the only BLAS call is the (n, 3) @ (3, 3) pose product over every
    # voxel, which OpenBLAS splits over all cores; on 2 shared cores its threads spun ~25x longer than one
    # thread computes it, 6 of 11 s of render_anatomy. Each element is the same 3-term dot product on any
    # number of threads, so the pixels do not change; patients run in parallel processes instead.)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return generate_patient(*args)


def generate_archive(
    out_dir: Path, settings: SynthSettings | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Generate a synthetic archive in ``out_dir`` and return the ground-truth dict (also ground_truth.json).

    ``out_dir`` must be empty or absent, apart from a README.md (we never mix two archives).
    ``progress(done, total)`` is called after
    each patient. Patients are independent, so ``settings.workers > 1`` generates them in processes and gives
    the same archive.
    """
    settings = settings or SynthSettings()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(p.name != "README.md" for p in out_dir.iterdir()):
        raise ConfigError(
            f"{out_dir}: expected an empty or new output folder (a README.md may be there), "
            "got a non-empty one",
            path=str(out_dir),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir, settings, i) for i in range(settings.n_patients)]
    results: list[dict[str, Any]] = []
    if settings.workers > 1 and settings.n_patients > 1:
        with ProcessPoolExecutor(max_workers=min(settings.workers, settings.n_patients)) as pool:
            for r in pool.map(_worker, jobs):
                results.append(r)
                if progress:
                    progress(len(results), len(jobs))
    else:
        for job in jobs:
            results.append(_worker(job))
            if progress:
                progress(len(results), len(jobs))
    truth = {
        "generator": {
            "hpd_imaging_version": __version__,
            "seed": settings.seed,
            "settings": settings.model_dump(mode="json", exclude={"workers"}),
        },
        "tolerances": tolerances(settings),
        "signal_mechanism": SIGNAL_MECHANISM,
        "survival_model": {
            "hazard_ratio_hyperprogressor_vs_others": settings.survival_hazard_ratio_hpd,
            "median_months_after_last_scan_others": settings.survival_median_months,
            "followup_months_after_last_scan": [
                settings.survival_followup_min_months,
                settings.survival_followup_max_months,
            ],
            "note": (
                "exponential death time after the last scan, hazard ln2/median per month of 30.4375 days, "
                "times the hazard ratio for hyperprogressors; censoring uniform in the follow-up window; "
                "nobody dies before the last scan (synth/clinical.py)"
            ),
        },
        "kinetics_note": (
            "V(t) = V_ref * exp(G(t) - G(t_ref)), G = integral of the log-volume rate (per month of 30.4375 "
            "days): "
            "k_pre before ici_start_date, k_post after it, k_late after switch_days_after_ici "
            "(pseudoprogression); capped at volume_cap_mm3. New lesions exist from appear_date, grow at "
            "k_post "
            "(k_pre is reported equal to k_post), reference_date = first evaluation. present = segmented on "
            "that exam (exists, equivalent diameter >= min_detectable_diameter_mm, non-empty CT-grid mask); "
            "absent lesions have 0 for volume and diameters."
        ),
        "patients": [r["truth"] for r in results],
    }
    write_clinical_csv(out_dir / "clinical.csv", [r["clinical"] for r in results])
    if settings.mask_format == "nifti":
        import csv

        with (out_dir / "masks.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(MASKS_CSV_COLUMNS), lineterminator="\n")
            w.writeheader()
            for r in results:
                w.writerows(r["manifest"])
    (out_dir / "ground_truth.json").write_text(
        json.dumps(truth, indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )
    logger.info("wrote %d patient(s) to %s", len(results), out_dir)
    return truth
