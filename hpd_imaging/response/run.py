"""The response stage as one function: measurement table + clinical table -> kinetics, response, targets,
growth.

Used by ``hpd-imaging kinetics`` (a spreadsheet of RECIST measurements, no images) and by the pipeline on
lesions.csv. Output schemas: specs/hpd_kinetics.md section A. Non-finite numbers never reach a table:
undefined
values (0/0, ÷0) and limits (+inf) become empty cells.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.course.adapter import courses_from_tables
from hpd_imaging.domain import LesionRole, PatientCourse
from hpd_imaging.response.concordance import concordance_table
from hpd_imaging.response.growth import fit_growth
from hpd_imaging.response.hpd import DEFINITIONS, evaluate_all
from hpd_imaging.response.immune import IMMUNE_FIELDS, assess_immune
from hpd_imaging.response.kinetics import compute_facts
from hpd_imaging.response.patient import PatientData, recist_diameter
from hpd_imaging.response.recist import assess_recist
from hpd_imaging.response.records import PatientResponse, TimepointResponse
from hpd_imaging.response.stability import assess_stability, stability_columns
from hpd_imaging.settings.hpd import ResponseConfig, load_response_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResponseResult:
    kinetics: pd.DataFrame  # kinetics.csv: one row per patient
    response: pd.DataFrame  # response.csv: one row per patient per scan
    targets: pd.DataFrame  # the recorded target selection: one row per lesion
    growth: pd.DataFrame  # growth-model fit per patient
    concordance_stable_only: bool = False  # concordance.csv over stable labels only (stability settings)


RESPONSE_COLUMNS = [
    "patient_id",
    "scan_date",
    "role",
    "days_from_ici",
    "n_targets",
    "n_targets_not_measured",
    "sld_mm",
    "nadir_sld_mm",
    "sld_change_from_baseline_pct",
    "sld_change_from_nadir_pct",
    "volume_mm3",
    "volume_change_from_baseline_pct",
    "target_response",
    "non_target_response",
    "n_new_lesions",
    "new_lesion_ids",
    "recist_response",
    "volumetric_target_response",
    "volumetric_response",
    "irecist_response",
    "irecist_confirmation",
    *IMMUNE_FIELDS,
]

TARGET_COLUMNS = [
    "patient_id",
    "lesion_id",
    "organ",
    "is_lymph_node",
    "baseline_date",
    "baseline_diameter_mm",
    "role",
    "reason",
    "selection",
]


def clean(value: Any) -> Any:
    """No inf/NaN in outputs: non-finite floats become None (an empty CSV cell); dates become ISO strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _kinetics_row(result: PatientResponse, cfg: ResponseConfig) -> dict[str, Any]:
    """kinetics.csv row of one patient (the writer: records -> table)."""
    f = result.kinetics

    def tm(days: int | None) -> float | None:
        return None if days is None else days / cfg.month_days

    row = {
        "patient_id": f.patient_id,
        "ici_start_date": f.ici_start,
        "pre_baseline_date": f.pre_baseline_date,
        "baseline_date": f.baseline_date,
        "first_eval_date": f.first_eval_date,
        "n_targets": f.n_targets,
        "n_targets_not_measured_pre_baseline": f.n_targets_not_measured_pre_baseline,
        "n_targets_not_measured_first_eval": f.n_targets_not_measured_first_eval,
        "t_ref_days": f.t_ref_days,
        "t_exp_days": f.t_exp_days,
        "t_ref_months": tm(f.t_ref_days),
        "t_exp_months": tm(f.t_exp_days),
        "days_pre_baseline_to_ici": f.days_pre_baseline_to_ici,
        "days_ici_to_first_eval": f.days_ici_to_first_eval,
        "sld_pre_baseline_mm": f.sld_pre_baseline_mm,
        "sld_baseline_mm": f.sld_baseline_mm,
        "sld_first_eval_mm": f.sld_first_eval_mm,
        "sld_change_pct": f.sld_change_pct,
        "sld_change_mm": f.sld_change_mm,
        "kinetic_burden_pre_baseline": f.burden_pre,
        "kinetic_burden_baseline": f.burden_base,
        "kinetic_burden_first_eval": f.burden_first,
        "burden_change_pct": f.burden_change_pct,
        "volume_pre_baseline_mm3": f.volume_pre_baseline_mm3,
        "volume_baseline_mm3": f.volume_baseline_mm3,
        "volume_first_eval_mm3": f.volume_first_eval_mm3,
        "volume_change_pct": f.volume_change_pct,
        "sld_change_mdc_mm": f.sld_change_mdc_mm,
        "volume_change_mdc_mm3": f.volume_change_mdc_mm3,
        "tgr_ref_pct_per_month": f.tgr_ref,
        "tgr_exp_pct_per_month": f.tgr_exp,
        "tgr_ratio": f.tgr_ratio,
        "delta_tgr": f.delta_tgr,
        "tgk_ref_mm_per_month": f.tgk_ref,
        "tgk_exp_mm_per_month": f.tgk_exp,
        "tgk_ratio": f.tgk_ratio,
        "vol_tgr_ref_pct_per_month": f.vol_tgr_ref,
        "vol_tgr_exp_pct_per_month": f.vol_tgr_exp,
        "vol_tgr_ratio": f.vol_tgr_ratio,
        "vol_delta_tgr": f.vol_delta_tgr,
        "vol_tgk_ref_mm3_per_month": f.vol_tgk_ref,
        "vol_tgk_exp_mm3_per_month": f.vol_tgk_exp,
        "vol_tgk_ratio": f.vol_tgk_ratio,
        "pace_ref": f.pace_ref,
        "pace_exp": f.pace_exp,
        "pace_ratio": f.pace_ratio,
        "recist_first_eval": f.recist_first_eval,
        "irecist_first_eval": f.irecist_first_eval,
        "volumetric_response_first_eval": f.volumetric_response_first_eval,
        "pd1": f.pd1,
        "vol_pd1": f.vol_pd1,
        "n_new_lesions_first_eval": f.n_new_first_eval,
        "n_new_organs_first_eval": f.n_new_organs_first_eval,
        "max_new_lesions_in_involved_organ": f.max_new_in_involved_organ,
        "ttf_days": f.ttf_days,
        "ttf_event": f.ttf_event,
        "month_days": cfg.month_days,
        "exp_period_start": cfg.exp_period_start,
        "kinetic_basis": cfg.kinetic_basis,
        "burden_lesion_set": cfg.burden_lesion_set,
        "pd1_mode": cfg.pd1_mode,
        "nonpositive_reference_policy": cfg.nonpositive_reference_policy,
        "missing_target_at_prebaseline": cfg.missing_target_at_prebaseline,
        "missing_target_at_followup": cfg.missing_target_at_followup,
        "ttf_threshold_days": cfg.ttf_threshold_days,
    }
    for a in result.hpd:
        row[f"hpd_{a.definition}"] = a.label.value
        row[f"hpd_{a.definition}_reason"] = a.reason
    row.update(stability_columns(result.stability, [a.definition for a in result.hpd]))
    growth = dict(result.growth)
    row["growth_model"] = growth.get("model") or None
    row["growth_g_per_day"] = growth.get("g_per_day")
    row["growth_d_per_day"] = growth.get("d_per_day")
    for name, value in result.course.clinical.covariates:
        row.setdefault(name, value)
    return row


def target_records(course: PatientCourse) -> list[dict[str, Any]]:
    """targets.csv: one row per lesion with the role the course gives it and why."""
    patient = PatientData(course)
    base = patient.roles.baseline
    selection = "declared" if course.targets_declared else "automatic"
    rows = []
    for lesion in sorted(course.lesions, key=lambda x: x.lesion_id):
        size = patient.size(lesion.lesion_id, base) if base is not None else None
        rows.append(
            {
                "patient_id": course.patient_id,
                "lesion_id": lesion.lesion_id,
                "organ": lesion.organ,
                "is_lymph_node": lesion.is_lymph_node,
                "baseline_date": base,
                "baseline_diameter_mm": None
                if lesion.role is LesionRole.NEW
                else recist_diameter(lesion, size),
                "role": lesion.role.value,
                "reason": lesion.role_reason,
                "selection": selection,
            }
        )
    return rows


def assess_course(course: PatientCourse, cfg: ResponseConfig) -> PatientResponse:
    """The response stage on one course: RECIST/iRECIST per scan, irRC/irRECIST/imRECIST per on-treatment
    scan, growth kinetics, every HPD definition and the growth-model fit, as frozen records. A walk through
    the stage visits each module once, in one direction: patient -> recist -> immune -> kinetics -> hpd."""
    patient = PatientData(course)
    roles, selection = patient.roles, patient.selection
    recist = assess_recist(patient, roles, selection, cfg)
    immune = assess_immune(patient, roles, selection, recist, cfg)
    facts = compute_facts(patient, roles, selection, recist, cfg)
    series = [
        r
        for r in recist
        if r.sld_mm is not None
        and (cfg.growth_include_pre_baseline or roles.baseline is None or r.scan_date >= roles.baseline)
    ]
    fit = fit_growth(  # fit_growth reports too few scans itself (an empty series included)
        [float((r.scan_date - series[0].scan_date).days) for r in series],
        [float(r.sld_mm or 0.0) for r in series],
    )
    hpd = tuple(evaluate_all(facts, cfg))
    return PatientResponse(
        course=course,
        timepoints=tuple(TimepointResponse(r, immune.get(r.scan_date)) for r in recist),
        kinetics=facts,
        hpd=hpd,
        growth=(("patient_id", course.patient_id), *fit.items()),
        stability=assess_stability(course, cfg, hpd, facts),
    )


def tables_of(results: list[PatientResponse], cfg: ResponseConfig) -> ResponseResult:
    """The writer's first half: records -> the four tables (one row per patient / scan / lesion)."""

    def frame(rows: list[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
        df = pd.DataFrame([{k: clean(v) for k, v in r.items()} for r in rows])
        if columns is not None:
            df = df.reindex(columns=columns)
        return df.astype(object).where(df.notna(), None)

    ordered = sorted(results, key=lambda r: r.patient_id)
    return ResponseResult(
        frame([_kinetics_row(r, cfg) for r in ordered]),
        frame([tp.row() for r in ordered for tp in r.timepoints], RESPONSE_COLUMNS),
        frame([row for r in ordered for row in target_records(r.course)], TARGET_COLUMNS),
        frame([dict(r.growth) for r in ordered]),
        concordance_stable_only=cfg.stability.concordance_stable_only and cfg.stability.draws > 0,
    )


def assess_courses(courses: list[PatientCourse], cfg: ResponseConfig | None = None) -> ResponseResult:
    """The response stage on courses (each patient alone; the order of the courses does not matter)."""
    cfg = cfg if cfg is not None else load_response_config()
    workers = min(cfg.stability.workers, max(1, len(courses) // 20))
    if workers > 1 and cfg.stability.draws > 0:
        # the Monte Carlo dominates (response/stability.py): patients are independent, so a process pool
        # over chunks of them gives the same records as the loop below (each patient has its own seed)
        chunks = [courses[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_assess_chunk, chunks, [cfg] * workers))
        return tables_of([r for part in parts for r in part], cfg)
    return tables_of([assess_course(course, cfg) for course in courses], cfg)


def _assess_chunk(courses: list[PatientCourse], cfg: ResponseConfig) -> list[PatientResponse]:
    return [assess_course(course, cfg) for course in courses]


def run_response(
    measurements: pd.DataFrame,
    clinical: pd.DataFrame,
    config: ResponseConfig | None = None,
    *,
    measurements_source: str | None = None,
    clinical_source: str | None = None,
) -> ResponseResult:
    """Measurement + clinical tables -> courses (the table adapter) -> the response stage."""
    cfg = config if config is not None else load_response_config()
    courses = courses_from_tables(
        measurements,
        clinical,
        cfg,
        measurements_source=measurements_source or measurements.attrs.get("source", "measurements"),
        clinical_source=clinical_source or clinical.attrs.get("source", "clinical"),
    )
    return assess_courses(courses, cfg)


def response_tables(result: ResponseResult) -> dict[str, pd.DataFrame]:
    """The tables of the response stage as written (kinetics, response, targets, growth, concordance): no
    inf or NaN (empty cells), dates as ISO text. One writer for ``run`` and ``kinetics``: both write these
    tables with :func:`hpd_imaging.atomic.write_csv` (same float format, same concordance)."""
    tables = {
        "kinetics": result.kinetics,
        "response": result.response,
        "targets": result.targets,
        "growth": result.growth,
        "concordance": concordance_table(
            result.kinetics, list(DEFINITIONS), stable_only=result.concordance_stable_only
        ),
    }
    return {name: table.astype(object).map(clean) for name, table in tables.items()}


def write_outputs(
    result: ResponseResult,
    kinetics_path: Path,
    *,
    response_path: Path | None = None,
    concordance_path: Path | None = None,
    targets_path: Path | None = None,
    growth_path: Path | None = None,
) -> dict[str, Path]:
    """Write kinetics.csv and, next to it unless other paths are given, response.csv, targets.csv, growth.csv
    and concordance.csv (atomically, as ``run`` writes them). Returns the paths written."""
    kinetics_path = Path(kinetics_path)
    folder = kinetics_path.parent
    paths = {
        "kinetics": kinetics_path,
        "response": response_path or folder / "response.csv",
        "targets": targets_path or folder / "targets.csv",
        "growth": growth_path or folder / "growth.csv",
        "concordance": concordance_path or folder / "concordance.csv",
    }
    tables = response_tables(result)
    for name, path in paths.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_csv(Path(path), tables[name])
    return paths
