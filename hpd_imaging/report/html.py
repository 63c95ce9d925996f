"""Render the report: ``report.html`` (the cohort page) plus one page per patient in ``report_patients/``.

Why pages (issue 21): one file holding every patient's figures grows by ~50-150 KiB per patient (base64 PNGs),
so a 500-patient cohort made a file of tens of MB that a browser takes long to open; the cohort page now holds
tables and the cohort figures only (its size grows by a table row per patient, under 1 KiB), and each patient
page its own figures. Every page is self-contained (inline CSS, images as base64 PNG data URIs, no scripts,
no network links), so the report opens offline and is safe to open from a PACS export; pages link to each
other with relative links, so the file and its folder move together.

Pages are assembled with jinja2 templates shipped inside the package (``templates/``) with autoescaping on:
patient IDs and free-text reasons come from user files and must not become markup. Patient pages are
rendered and written one at a time, so memory does not grow with the cohort.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import multiprocessing
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
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
PATIENT_PAGES_DIR = "report_patients"  # one page per patient, next to report.html

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


def page_names(patients: list[str]) -> dict[str, str]:
    """File name of each patient's page: the ID itself when it is a plain, unique name (also without case,
    for case-insensitive filesystems), else a sanitised ID plus 8 hex digits of its SHA-256 (never a path
    from user text, never two patients on one page)."""
    plain = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
    lower_counts: dict[str, int] = defaultdict(int)
    for pid in patients:
        lower_counts[pid.lower()] += 1
    names = {}
    for pid in patients:
        if plain.match(pid) and lower_counts[pid.lower()] == 1:
            names[pid] = f"{pid}.html"
        else:
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", pid)[:60].lstrip(".") or "patient"
            names[pid] = f"{safe}-{hashlib.sha256(pid.encode('utf-8')).hexdigest()[:8]}.html"
    return names


def _cohort_context(
    inputs: ReportInputs,
    out_dir: Path | None,
    issues: pd.DataFrame | None,
    not_produced: dict[str, str] | None,
) -> dict[str, Any]:
    _, run_issues = _issue_context(issues, list(inputs.patients), not_produced)
    pages = page_names(list(inputs.patients))
    lesions = inputs.lesions
    n_scans = lesions[["patient_id", "scan_date"]].drop_duplicates().shape[0] if len(lesions) else 0
    label_table = []
    for pid in inputs.patients:
        risk = risk_of(inputs, pid)
        label_table.append(
            {
                "patient_id": pid,
                "page": pages[pid],
                "labels": {x["definition"]: x["label"] for x in patient_labels(inputs, pid)},
                "risk": None if risk is None else {"hpd_risk": to_float(risk.get("hpd_risk"))},
            }
        )
    return {
        "title": inputs.title,
        "version": __version__,
        "n_patients": len(inputs.patients),
        "n_scans": int(n_scans),
        "n_lesions": int(lesions[["patient_id", "lesion_id"]].drop_duplicates().shape[0])
        if len(lesions)
        else 0,
        "definitions": inputs.definitions,
        "primary": inputs.primary,
        "summary": label_summary(inputs).to_dict("records"),
        "label_table": label_table,
        "pages_dir": PATIENT_PAGES_DIR,
        "has_predictions": inputs.predictions is not None,
        "short_label": {"hpd": "HPD", "no_hpd": "no", "not_evaluable": "NE"},
        "spider_png": _data_uri(plots.spider_plot(inputs)),
        "waterfall_png": _data_uri(plots.waterfall_plot(inputs)),
        "heatmap_png": _data_uri(plots.concordance_heatmap(inputs.concordance)),
        "concordance": inputs.concordance.to_dict("records"),
        "provenance": json.dumps(inputs.provenance, indent=2, sort_keys=True, default=str),
        "survival": survival_context(out_dir),  # issue 19: KM per definition and the ranking
        **run_issues,  # issue 16: rows of errors.csv of no shown patient, outputs not produced
        "stability": stability_context(inputs.kinetics, list(inputs.definitions)),  # issue 17: fragile labels
    }


def render_report(
    inputs: ReportInputs,
    progress: Callable[[str], None] | None = None,
    out_dir: Path | None = None,
    *,
    issues: pd.DataFrame | None = None,
    not_produced: dict[str, str] | None = None,
) -> str:
    """The cohort page (report.html) as an HTML string (see :func:`write_report`); ``out_dir``: where the
    outcome stage wrote its survival tables and plots (the survival section is left out without them).
    ``progress`` is accepted for compatibility and not called: patient sections are on their own pages."""
    context = _cohort_context(inputs, out_dir, issues, not_produced)
    return _environment().get_template("report.html.j2").render(**context)


def render_patient_pages(
    inputs: ReportInputs,
    *,
    issues: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
    only: Sequence[int] | None = None,
) -> Iterator[tuple[str, str]]:
    """(file name, HTML) of each patient's page, one at a time, in the cohort's patient order (``only``: the
    positions in that order to render, default all)."""
    patients = list(inputs.patients)
    issues_by_patient, _ = _issue_context(issues, patients, None)
    pages = page_names(patients)
    snaps_by_patient: dict[str, list[LesionSnapshot]] = defaultdict(list)
    for snap in inputs.snapshots:
        snaps_by_patient[snap.patient_id].append(snap)
    stability = stability_context(inputs.kinetics, list(inputs.definitions))
    template = _environment().get_template("patient.html.j2")
    for n in range(len(patients)) if only is None else only:
        pid = patients[n]
        if progress is not None:
            progress(pid)
        section = _patient_section(inputs, pid, snaps_by_patient.get(pid, []))
        section["issues"] = issues_by_patient.get(pid, [])
        neighbour = lambda k: (  # noqa: E731
            {"patient_id": patients[k], "page": pages[patients[k]]} if 0 <= k < len(patients) else None
        )
        html = template.render(
            p=section,
            title=inputs.title,
            version=__version__,
            index=n + 1,
            n_patients=len(patients),
            report_file=REPORT_FILENAME,
            prev=neighbour(n - 1),
            next=neighbour(n + 1),
            stability=stability,
        )
        yield pages[pid], html


def _write_pages(
    out_dir: Path,
    inputs: ReportInputs,
    issues: pd.DataFrame | None,
    only: Sequence[int],
    progress: Callable[[str], None] | None = None,
) -> list[tuple[str, str, int]]:
    """Render and write the pages at positions ``only``: [(patient, file name, bytes)] (also a pool task)."""
    pids = list(inputs.patients)
    done = []
    for (name, html), n in zip(render_patient_pages(inputs, issues=issues, only=only), only, strict=True):
        atomic.write_text(out_dir / PATIENT_PAGES_DIR / name, html)
        done.append((pids[n], name, len(html.encode("utf-8"))))
        if progress is not None:
            progress(pids[n])
    return done


def _page_tasks(inputs: ReportInputs, workers: int) -> list[tuple[ReportInputs, list[int]]]:
    """Contiguous chunks of patients (4 per worker, for balance), each with only its own snapshots."""
    pids = list(inputs.patients)
    size = max(1, -(-len(pids) // (4 * workers)))
    tasks = []
    for start in range(0, len(pids), size):
        only = list(range(start, min(start + size, len(pids))))
        mine = {pids[n] for n in only}
        chunk = copy.copy(inputs)
        object.__setattr__(chunk, "snapshots", [x for x in inputs.snapshots if x.patient_id in mine])
        tasks.append((chunk, only))
    return tasks


def write_report(
    out_dir: Path,
    inputs: ReportInputs,
    *,
    progress: Callable[[str], None] | None = None,
    issues: pd.DataFrame | None = None,
    not_produced: dict[str, str] | None = None,
    workers: int = 1,
) -> Path:
    """Write ``out_dir/report.html`` and ``out_dir/report_patients/<patient>.html`` atomically (temporary
    file + rename) and return the path of report.html.

    A run killed while writing leaves each page either as before or complete, never half-written; pages of
    patients no longer in the cohort are removed (they would look current). ``progress`` is called with each
    patient ID once its page is written. ``issues`` (errors.csv rows) are shown on the page of the patient
    they concern (the rest, and the ``not_produced`` outputs with their reasons, in a section of the cohort
    page). ``workers`` > 1: patient pages are rendered by that many processes (matplotlib draws one figure
    at a time, ~0.3-1 s per patient: a 500-patient cohort otherwise waits minutes for its report).
    """
    out_dir = Path(out_dir)
    pages_dir = out_dir / PATIENT_PAGES_DIR
    n = len(inputs.patients)
    written: list[tuple[str, str, int]] = []
    # at least 8 pages per process (each process imports matplotlib, ~2 s): 200 patients on 32 workers are
    # rendered by 25 processes rather than, as before, all in this one
    workers = min(workers, n // 8)
    if workers > 1:
        # spawn, not fork: the driver has threads (Dask client, progress display) that fork would copy
        # mid-lock; each process imports matplotlib once (~2 s), so this pays from a few dozen patients
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(_write_pages, out_dir, chunk, issues, only)
                for chunk, only in _page_tasks(inputs, workers)
            ]
            for future in futures:
                chunk = future.result()
                written += chunk
                for pid, _, _ in chunk if progress is not None else []:
                    progress(pid)  # type: ignore[misc]
    else:
        written = _write_pages(out_dir, inputs, issues, range(n), progress)
    names = {name for _, name, _ in written}
    if pages_dir.is_dir():
        for old in pages_dir.glob("*.html"):
            if old.name not in names:
                old.unlink()
    html = render_report(inputs, out_dir=out_dir, issues=issues, not_produced=not_produced)
    path = atomic.write_text(out_dir / REPORT_FILENAME, html)
    logger.info(
        "wrote %s (%d patients, %.0f kB) and %d patient pages in %s (%.0f kB each on average)",
        path,
        n,
        len(html) / 1024,
        len(written),
        pages_dir,
        sum(b for _, _, b in written) / 1024 / max(1, len(written)),
    )
    return path


def patient_pages(out_dir: Path) -> list[Path]:
    """The patient pages of the report in ``out_dir`` (for run.json's manifest)."""
    pages_dir = Path(out_dir) / PATIENT_PAGES_DIR
    return sorted(pages_dir.glob("*.html")) if pages_dir.is_dir() else []


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


__all__ = [
    "LABEL_PREFIX",
    "PATIENT_PAGES_DIR",
    "REPORT_FILENAME",
    "page_names",
    "patient_pages",
    "read_report_inputs",
    "render_patient_pages",
    "render_report",
    "write_report",
]
