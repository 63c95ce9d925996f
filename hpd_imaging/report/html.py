"""Render report.html: one self-contained file (inline CSS, images as base64 PNG data URIs, no scripts or
links to the network) so it opens offline, can be mailed or archived, and is safe to open from a PACS export.

The page is assembled with a jinja2 template shipped inside the package (``templates/report.html.j2``) with
autoescaping on: patient IDs and free-text reasons come from user files and must not become markup.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hpd_imaging import __version__, atomic
from hpd_imaging.report import plots
from hpd_imaging.report.inputs import (
    LABEL_PREFIX,
    LesionSnapshot,
    ReportInputs,
    ici_start,
    kinetics_row,
    label_summary,
    patient_labels,
    risk_of,
    to_float,
)
from hpd_imaging.report.stability_section import stability_context
from hpd_imaging.report.survival_section import survival_context

logger = logging.getLogger(__name__)

REPORT_FILENAME = "report.html"

_KINETICS_SHOWN = (
    ("pre_baseline_date", "Pre-baseline scan"),
    ("baseline_date", "Baseline scan"),
    ("first_eval_date", "First evaluation"),
    ("sld_pre_baseline_mm", "SLD pre-baseline (mm)"),
    ("sld_baseline_mm", "SLD baseline (mm)"),
    ("sld_first_eval_mm", "SLD first evaluation (mm)"),
    ("tgr_ref_pct_per_month", "TGR pre-ICI (%/month)"),
    ("tgr_exp_pct_per_month", "TGR on ICI (%/month)"),
    ("tgr_ratio", "TGR ratio"),
    ("delta_tgr", "ΔTGR"),
    ("tgk_ref_mm_per_month", "TGK pre-ICI (mm/month)"),
    ("tgk_exp_mm_per_month", "TGK on ICI (mm/month)"),
    ("vol_tgr_ref_pct_per_month", "Volumetric TGR pre-ICI (%/month)"),
    ("vol_tgr_exp_pct_per_month", "Volumetric TGR on ICI (%/month)"),
    ("recist_first_eval", "RECIST 1.1 at first evaluation"),
    ("ttf_days", "Time to treatment failure (days)"),
)


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any) -> str:
    f = to_float(value)
    if f is not None and not isinstance(value, bool | str):
        return f"{f:.4g}" if abs(f) < 1e5 else f"{f:.0f}"
    if value is None or (isinstance(value, float)) or str(value) in ("nan", "NaT", "None", "<NA>"):
        return "–"
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hpd_imaging.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    return env


def _patient_section(inputs: ReportInputs, pid: str, snaps: list[LesionSnapshot]) -> dict[str, Any]:
    kin = kinetics_row(inputs, pid)
    ici = ici_start(inputs, pid)
    by_lesion: dict[str, list[LesionSnapshot]] = defaultdict(list)
    for snap in snaps:
        by_lesion[snap.lesion_id].append(snap)
    risk = risk_of(inputs, pid)
    return {
        "patient_id": pid,
        "ici_start": ici.isoformat() if ici else None,
        "labels": patient_labels(inputs, pid),
        "risk": None
        if risk is None
        else {
            "hpd_risk": to_float(risk.get("hpd_risk")),
            "predicted": str(risk.get("predicted_hpd", "")),
            "definition": str(risk.get("definition", "")),
            "threshold": to_float(risk.get("threshold")),
        },
        "kinetics": [(title, _fmt(kin.get(col))) for col, title in _KINETICS_SHOWN if col in kin],
        "burden_png": _data_uri(plots.burden_curves(inputs, pid)),
        "lesions": [
            {"lesion_id": lid, "png": _data_uri(plots.lesion_strip(items)), "n": len(items)}
            for lid, items in sorted(by_lesion.items())
        ],
    }


def _issue_context(
    issues: pd.DataFrame | None, patients: list[str], not_produced: dict[str, str] | None
) -> tuple[dict[str, list[dict[str, str]]], dict[str, Any]]:
    """errors.csv rows per shown patient, and the rest (cohort rows, patients not shown, not produced)."""
    rows: list[dict[str, str]] = []
    if issues is not None and len(issues):
        keep = [c for c in ("patient_id", "severity", "stage", "rule", "file", "message") if c in issues]
        rows = issues[keep].fillna("").astype(str).to_dict("records")
    shown = set(patients)
    by_patient: dict[str, list[dict[str, str]]] = defaultdict(list)
    other: list[dict[str, str]] = []
    for row in rows:
        row.setdefault("rule", "")
        (by_patient[row["patient_id"]] if row["patient_id"] in shown else other).append(row)
    return dict(by_patient), {
        "other_issues": other,
        "not_produced": sorted((not_produced or {}).items()),
    }


def render_report(
    inputs: ReportInputs,
    progress: Callable[[str], None] | None = None,
    out_dir: Path | None = None,
    *,
    issues: pd.DataFrame | None = None,
    not_produced: dict[str, str] | None = None,
) -> str:
    """The report as an HTML string (see :func:`write_report`); ``out_dir``: where the outcome stage wrote its
    survival tables and plots (the survival section is left out without them)."""
    issues_by_patient, run_issues = _issue_context(issues, list(inputs.patients), not_produced)
    summary = label_summary(inputs)
    snaps_by_patient: dict[str, list[LesionSnapshot]] = defaultdict(list)
    for snap in inputs.snapshots:
        snaps_by_patient[snap.patient_id].append(snap)
    patients = []
    for pid in inputs.patients:
        if progress is not None:
            progress(pid)
        patients.append(_patient_section(inputs, pid, snaps_by_patient.get(pid, [])))
        patients[-1]["issues"] = issues_by_patient.get(pid, [])
    lesions = inputs.lesions
    n_scans = lesions[["patient_id", "scan_date"]].drop_duplicates().shape[0] if len(lesions) else 0
    label_table = [
        {
            "patient_id": pid,
            "labels": {d: lab for d, lab in ((x["definition"], x["label"]) for x in p["labels"])},
            "risk": p["risk"],
        }
        for pid, p in zip(inputs.patients, patients, strict=True)
    ]
    context = {
        "title": inputs.title,
        "version": __version__,
        "n_patients": len(inputs.patients),
        "n_scans": int(n_scans),
        "n_lesions": int(lesions[["patient_id", "lesion_id"]].drop_duplicates().shape[0])
        if len(lesions)
        else 0,
        "definitions": inputs.definitions,
        "primary": inputs.primary,
        "summary": summary.to_dict("records"),
        "label_table": label_table,
        "has_predictions": inputs.predictions is not None,
        "short_label": {"hpd": "HPD", "no_hpd": "no", "not_evaluable": "NE"},
        "spider_png": _data_uri(plots.spider_plot(inputs)),
        "waterfall_png": _data_uri(plots.waterfall_plot(inputs)),
        "heatmap_png": _data_uri(plots.concordance_heatmap(inputs.concordance)),
        "concordance": inputs.concordance.to_dict("records"),
        "patients": patients,
        "provenance": json.dumps(inputs.provenance, indent=2, sort_keys=True, default=str),
        "survival": survival_context(out_dir),  # issue 19: KM per definition and the ranking
        **run_issues,  # issue 16: rows of errors.csv not shown in a patient's section, outputs not produced
        "stability": stability_context(inputs.kinetics, list(inputs.definitions)),  # issue 17: fragile labels
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    out_dir: Path,
    inputs: ReportInputs,
    *,
    progress: Callable[[str], None] | None = None,
    issues: pd.DataFrame | None = None,
    not_produced: dict[str, str] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` atomically (temporary file + rename) and return its path.

    A run killed while writing leaves either the previous report or none, never a half-written one.
    ``progress`` is called with each patient ID as its section is rendered. ``issues`` (errors.csv rows) are
    shown in the section of the patient they concern (the rest, and the ``not_produced`` outputs with their
    reasons, in a section of their own).
    """
    html = render_report(inputs, progress, out_dir=Path(out_dir), issues=issues, not_produced=not_produced)
    path = atomic.write_text(Path(out_dir) / REPORT_FILENAME, html)
    logger.info("wrote %s (%d patients, %.0f kB)", path, len(inputs.patients), len(html) / 1024)
    return path


def read_report_inputs(out_dir: Path, **kwargs: Any) -> ReportInputs:
    """Build ReportInputs from a pipeline output folder's CSVs (no snapshots unless passed in ``kwargs``)."""
    out_dir = Path(out_dir)

    def read(name: str, required: bool = True) -> pd.DataFrame | None:
        path = out_dir / name
        if not path.exists():
            if required:
                from hpd_imaging.errors import ClinicalDataError

                raise ClinicalDataError(
                    f"{path}: expected the table for the report, got no such file", path=str(path)
                )
            return None
        return pd.read_csv(path, dtype={"patient_id": str})

    frames = {
        "lesions": read("lesions.csv"),
        "kinetics": read("kinetics.csv"),
        "response": read("response.csv"),
        "concordance": read("concordance.csv"),
        "predictions": read("predictions.csv", required=False),
        "clinical": read("clinical.csv", required=False),
    }
    return ReportInputs(**{**frames, **kwargs})  # type: ignore[arg-type]


__all__ = ["LABEL_PREFIX", "REPORT_FILENAME", "read_report_inputs", "render_report", "write_report"]
