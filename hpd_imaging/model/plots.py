"""ROC, precision-recall and calibration plots of out-of-fold predictions (matplotlib, Agg backend, PNG).

Curves are drawn from each patient's mean out-of-fold risk over the repeats, one line per model (main model
and baselines); legends quote the metrics.json estimate and CI so that figure and table agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpd_imaging.model.metrics import format_estimate


def _per_patient(oof: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {
        str(m): g.groupby("patient_id").agg(y=("y_true", "first"), risk=("hpd_risk", "mean"))
        for m, g in oof.groupby("model", sort=False)
    }


def _metric(metrics: dict[str, Any], model: str, name: str) -> dict[str, Any] | None:
    if model == "model":
        return metrics.get(name)
    return metrics.get("baselines", {}).get(model, {}).get(name)


def write_plots(oof: pd.DataFrame, metrics: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    groups = _per_patient(oof)
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for model, g in groups.items():
        fpr, tpr, _ = roc_curve(g["y"], g["risk"])
        ax.plot(fpr, tpr, label=f"{model} AUC {format_estimate(_metric(metrics, model, 'auc'))}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (mean out-of-fold risk)")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(out_dir / "roc.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    prevalence = float(next(iter(groups.values()))["y"].mean())
    for model, g in groups.items():
        precision, recall, _ = precision_recall_curve(g["y"], g["risk"])
        ax.plot(recall, precision, label=model)
    ax.axhline(prevalence, ls="--", c="grey", lw=1, label=f"prevalence {prevalence:.2f}")
    ax.set(
        xlabel="recall (sensitivity)",
        ylabel="precision (PPV)",
        title="Precision-recall (out-of-fold)",
        ylim=(0, 1.05),
    )
    ax.legend(loc="upper right", fontsize=8)
    paths.append(out_dir / "pr.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for model, g in groups.items():
        n_bins = int(max(2, min(5, g["y"].sum())))
        frac_pos, mean_pred = calibration_curve(g["y"], g["risk"], n_bins=n_bins, strategy="quantile")
        slope = _metric(metrics, model, "calibration_slope")
        ax.plot(mean_pred, frac_pos, marker="o", label=f"{model} slope {format_estimate(slope)}")
    lim = float(max(0.05, np.nanmax(oof["hpd_risk"])))
    ax.plot([0, lim], [0, lim], ls="--", c="grey", lw=1, label="ideal")
    ax.set(
        xlabel="predicted HPD risk (quantile bins)",
        ylabel="observed HPD fraction",
        title="Calibration (mean out-of-fold risk)",
    )
    ax.legend(loc="upper left", fontsize=8)
    paths.append(out_dir / "calibration.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths
