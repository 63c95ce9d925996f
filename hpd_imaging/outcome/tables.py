"""Tables of the outcome stage built from the response stage's CSV-shaped tables.

* best_response.csv, one row per patient: RECIST 1.1 and iRECIST best overall response (from response.csv's
  per-timepoint ``recist_response`` / ``irecist_response``), the settings used, and the mixed-response flag.
  It is a table of its own rather than columns of response.csv (one row per scan), so the response stage's
  writer is untouched.
* lesion_kinetics.csv: per-lesion and per-organ TGR/TGK (outcome/lesion_kinetics.py) from a measurement table
  (lesions.csv or a user's MEASUREMENTS.csv), the scan dates of kinetics.csv and the response stage's kinetics
  conventions (month length, start of the experimental period).
"""

from __future__ import annotations

import math

import pandas as pd

from hpd_imaging.outcome.best_response import BorSettings, TimepointResponse, best_overall_response
from hpd_imaging.outcome.followup import to_date
from hpd_imaging.outcome.lesion_kinetics import (
    LESION_KINETICS_COLUMNS,
    LesionPoint,
    LesionSeries,
    PatientDates,
    lesion_kinetics,
    mixed_response,
)
from hpd_imaging.settings.hpd import ResponseConfig
from hpd_imaging.settings.outcome import OutcomeSettings

BEST_RESPONSE_COLUMNS = [
    "patient_id",
    "bor_recist",
    "bor_recist_date",
    "bor_recist_confirmed",
    "bor_recist_reason",
    "bor_irecist",
    "bor_irecist_date",
    "bor_irecist_confirmed",
    "bor_irecist_reason",
    "confirmation_required",
    "confirmation_days",
    "sd_min_days",
    "mixed_response",
    "n_lesions_shrinking",
    "n_lesions_growing",
    "n_lesions_new",
]


def _num(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _bool(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "y", "t")


def lesion_series(measurements: pd.DataFrame) -> list[LesionSeries]:
    """Per-lesion series from a measurement table (RECIST diameter: short axis for nodes)."""
    out = []
    cols = set(measurements.columns)
    for (pid, lid), part in measurements.groupby(["patient_id", "lesion_id"], sort=True):
        first = part.iloc[0]
        node = _bool(first.get("is_lymph_node"))
        points = []
        for rec in part.to_dict("records"):
            date = to_date(rec["scan_date"])
            if date is None:
                continue
            diam = _num(rec.get("short_axis_mm") if node else rec.get("longest_axial_diameter_mm"))
            vol = _num(rec.get("volume_mm3")) if "volume_mm3" in cols else None
            points.append(LesionPoint(date, diam, vol))
        out.append(LesionSeries(str(pid), str(lid), str(first.get("organ") or ""), node, tuple(points)))
    return out


def patient_dates(
    kinetics: pd.DataFrame, response_config: ResponseConfig | None = None
) -> dict[str, PatientDates]:
    """Scan dates and kinetics conventions per patient. Conventions: the response settings given (``run``
    passes the ones its response stage used), else the ``month_days`` / ``exp_period_start`` columns that
    the response stage writes into kinetics.csv, else the response stage's defaults; so that per-lesion
    rates are on the same footing as the patient-level ones."""
    default = response_config or ResponseConfig()
    out = {}
    for r in kinetics.to_dict("records"):
        month_days, start = default.month_days, default.exp_period_start
        if response_config is None:
            month_days = _num(r.get("month_days")) or month_days
            if r.get("exp_period_start") in ("baseline_scan", "ici_start"):
                start = r["exp_period_start"]
        out[str(r["patient_id"])] = PatientDates(
            to_date(r.get("pre_baseline_date")),
            to_date(r.get("baseline_date")),
            to_date(r.get("first_eval_date")),
            ici_start=to_date(r.get("ici_start_date")),
            month_days=month_days,
            exp_period_start=start,
        )
    return out


def lesion_kinetics_table(
    measurements: pd.DataFrame, kinetics: pd.DataFrame, response_config: ResponseConfig | None = None
) -> pd.DataFrame:
    """lesion_kinetics.csv; conventions as :func:`patient_dates` says."""
    rows = lesion_kinetics(lesion_series(measurements), patient_dates(kinetics, response_config))
    frame = pd.DataFrame(rows, columns=LESION_KINETICS_COLUMNS).astype(object)
    return frame.where(frame.notna(), None)


def best_response_table(
    response: pd.DataFrame,
    kinetics: pd.DataFrame,
    clinical: pd.DataFrame | None = None,
    lesion_rows: pd.DataFrame | None = None,
    settings: OutcomeSettings | None = None,
) -> pd.DataFrame:
    """best_response.csv (module docstring); the ICI start comes from kinetics.csv, else clinical.csv."""
    cfg = settings or OutcomeSettings()
    bor = BorSettings(cfg.confirmation_required, cfg.confirmation_days, cfg.sd_min_days)
    starts = {}
    for table in (clinical, kinetics):
        if table is not None and "ici_start_date" in table.columns:
            for pid, d in zip(table["patient_id"].astype(str), table["ici_start_date"], strict=True):
                if to_date(d) is not None:
                    starts[pid] = to_date(d)
    lesion_records = [] if lesion_rows is None else lesion_rows.to_dict("records")
    by_patient = {str(k): v for k, v in response.groupby(response["patient_id"].astype(str))}
    rows = []
    for pid in kinetics["patient_id"].astype(str):
        part = by_patient.get(pid)
        start = starts.get(pid)
        row: dict[str, object] = {
            "patient_id": pid,
            "confirmation_required": cfg.confirmation_required,
            "confirmation_days": cfg.confirmation_days,
            "sd_min_days": cfg.sd_min_days,
        }
        for criteria, column in (("recist", "recist_response"), ("irecist", "irecist_response")):
            if part is None or start is None or column not in part.columns:
                why = "no ici_start_date" if start is None else f"no {column} in response.csv"
                row.update({f"bor_{criteria}": "NE", f"bor_{criteria}_reason": why})
                continue
            tps = [
                TimepointResponse(
                    d, None if r is None or (isinstance(r, float) and math.isnan(r)) else str(r)
                )
                for d, r in zip((to_date(x) for x in part["scan_date"]), part[column], strict=True)
                if d is not None
            ]
            res = best_overall_response(tps, start, criteria, bor)  # type: ignore[arg-type]
            row.update(
                {
                    f"bor_{criteria}": res.best_response,
                    f"bor_{criteria}_date": res.date.isoformat() if res.date else None,
                    f"bor_{criteria}_confirmed": res.confirmed,
                    f"bor_{criteria}_reason": res.reason,
                }
            )
        mixed = mixed_response(lesion_records, pid, cfg.new_lesions_count_as_growing)
        row.update(
            {
                "mixed_response": mixed.mixed_response if lesion_records else None,
                "n_lesions_shrinking": mixed.n_lesions_shrinking if lesion_records else None,
                "n_lesions_growing": mixed.n_lesions_growing if lesion_records else None,
                "n_lesions_new": mixed.n_lesions_new if lesion_records else None,
            }
        )
        rows.append(row)
    frame = pd.DataFrame(rows, columns=BEST_RESPONSE_COLUMNS).astype(object)
    return frame.where(frame.notna(), None)
