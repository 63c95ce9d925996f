"""Writers of the outcome stage's outputs: survival.csv (issue 19's columns), the ranking, the landmark table,
PFS tables when progression dates exist, one Kaplan-Meier PNG per definition and endpoint,
best_response.csv and lesion_kinetics.csv."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.outcome.stage import EndpointResult, SurvivalResult
from hpd_imaging.outcome.survival import group_labels, survival_frame
from hpd_imaging.report import plots
from hpd_imaging.settings.outcome import OutcomeSettings

logger = logging.getLogger(__name__)

PLOT_DIR = "survival_plots"


def km_png_name(endpoint: str, key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key)
    return f"km_{endpoint}_{safe}.png"


def km_images(result: EndpointResult, kinetics: pd.DataFrame) -> dict[str, bytes]:
    """Definition key -> KM PNG (definitions with no patient in either group have none)."""
    images: dict[str, bytes] = {}
    for d in result.definitions:
        labels = {k: v for k, v in group_labels(kinetics, d.definition).items() if v is not None}
        title = f"{d.definition}: HPD vs no HPD"
        if d.hr is not None:
            title += f" (HR {d.hr:.2f}, 95 % CI {d.hr_ci_low:.2f}-{d.hr_ci_high:.2f})"
        png = plots.km_plot(result.landmark, labels, title, result.endpoint)
        if png is not None:
            images[d.definition] = png
    return images


def write_survival(result: SurvivalResult, kinetics: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write every survival table and plot under ``out_dir``; returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for res in (result.os, result.pfs):
        if res is None:
            continue
        suffix = "" if res.endpoint == "os" else "_pfs"
        paths[f"survival{suffix}"] = atomic.write_csv(
            out_dir / f"survival{suffix}.csv", survival_frame(res.definitions, res.endpoint)
        )
        paths[f"survival{suffix}_ranking"] = atomic.write_csv(
            out_dir / f"survival{suffix}_ranking.csv", res.ranking
        )
        landmark = res.landmark.copy()
        for col in ("first_eval_date", "end_date"):
            landmark[col] = [None if v is None else v.isoformat() for v in landmark[col]]
        paths[f"survival{suffix}_landmark"] = atomic.write_csv(
            out_dir / f"survival{suffix}_landmark.csv", landmark
        )
        plot_dir = out_dir / PLOT_DIR
        plot_dir.mkdir(exist_ok=True)
        for key, png in km_images(res, kinetics).items():
            path = plot_dir / km_png_name(res.endpoint, key)
            paths[f"km_{res.endpoint}_{key}"] = atomic.write_bytes(path, png)
    n_plots = sum(k.startswith("km_") for k in paths)
    logger.info("wrote survival tables and %d Kaplan-Meier plots to %s", n_plots, out_dir)
    return paths


def write_outcome_tables(
    out_dir: Path,
    kinetics: pd.DataFrame,
    response: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    measurements: pd.DataFrame | None,
    settings: OutcomeSettings | None = None,
) -> dict[str, Path]:
    """lesion_kinetics.csv (from a measurement table) and best_response.csv (from response.csv)."""
    from hpd_imaging.outcome.tables import best_response_table, lesion_kinetics_table

    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    lesion_rows = None
    if measurements is not None and len(measurements):
        lesion_rows = lesion_kinetics_table(measurements, kinetics)
        paths["lesion_kinetics"] = atomic.write_csv(out_dir / "lesion_kinetics.csv", lesion_rows)
    if response is not None:
        table = best_response_table(response, kinetics, clinical, lesion_rows, settings)
        paths["best_response"] = atomic.write_csv(out_dir / "best_response.csv", table)
    return paths


def outcome_stage(
    out_dir: Path,
    kinetics: pd.DataFrame,
    response: pd.DataFrame | None,
    clinical: pd.DataFrame | None,
    lesions: pd.DataFrame | None,
    settings: OutcomeSettings | None = None,
    on_error: Callable[[str, ClinicalDataError], None] | None = None,
) -> dict[str, Path]:
    """The outcome stage inside ``run``: lesion_kinetics.csv, best_response.csv and, when clinical.csv has
    follow-up columns (death_date / last_followup_date), the survival tables and plots (else logged, skipped).
    A patient with impossible follow-up dates is passed to ``on_error`` and left out (without ``on_error``:
    ClinicalDataError)."""
    from hpd_imaging.outcome.stage import run_survival

    paths = write_outcome_tables(out_dir, kinetics, response, clinical, lesions, settings)
    if clinical is None or not {"death_date", "last_followup_date"} & set(clinical.columns):
        logger.warning("clinical.csv has no death_date/last_followup_date: survival analysis skipped")
        return paths
    result = run_survival(kinetics, clinical, lesions, on_error=on_error)
    paths.update(write_survival(result, kinetics, out_dir))
    return paths
