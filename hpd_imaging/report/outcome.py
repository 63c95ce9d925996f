"""Writers of the outcome stage's outputs: survival.csv (issue 19's columns), the ranking, the landmark table,
PFS tables when progression dates exist, one Kaplan-Meier PNG per definition and endpoint, best_response.csv
and lesion_kinetics.csv. The stage computes in :mod:`hpd_imaging.outcome.stage`; this module only writes."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.outcome.stage import EndpointResult, OutcomeResult, SurvivalResult
from hpd_imaging.outcome.survival import group_labels, survival_frame
from hpd_imaging.report import plots

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


def write_outcome_tables(result: OutcomeResult, out_dir: Path) -> dict[str, Path]:
    """lesion_kinetics.csv and best_response.csv, where the outcome stage computed them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if result.lesion_kinetics is not None:
        paths["lesion_kinetics"] = atomic.write_csv(out_dir / "lesion_kinetics.csv", result.lesion_kinetics)
    if result.best_response is not None:
        paths["best_response"] = atomic.write_csv(out_dir / "best_response.csv", result.best_response)
    return paths


def write_outcome(result: OutcomeResult, kinetics: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Every output of the outcome stage (:func:`hpd_imaging.outcome.stage.run_outcome`) under ``out_dir``."""
    paths = write_outcome_tables(result, out_dir)
    if result.survival is not None:
        paths.update(write_survival(result.survival, kinetics, out_dir))
    return paths
