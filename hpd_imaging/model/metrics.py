"""Performance metrics, their confidence intervals, calibration and decision curves.

CI methods (``ModelSettings.ci_method``):

* ``corrected_t`` (default, as WORC): one value per outer test fold (R repeats x K folds = J values); the
  estimate is their mean and the CI is mean ± t_{J-1} · sqrt((1/J + n_test/n_train) · s²), the corrected
  resampled t-test of Nadeau & Bengio (Machine Learning 2003;52:239-281), which widens the naive variance for
  the overlap between training sets. Folds where a metric is undefined (PPV with no predicted positives)
  are left out of that metric, and the count used is reported.
* ``bootstrap``: percentile bootstrap over patients of the out-of-fold predictions: each resample recomputes
  the metric on the pooled OOF predictions of every repeat and averages over repeats.

Calibration slope and intercept are always computed on pooled out-of-fold predictions per repeat (averaged
over repeats) with a percentile-bootstrap CI: per-fold fits on ~10 patients with 1-3 positives are degenerate
(separation, infinite slopes). ``metrics.json`` records the method of every metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

THRESHOLD_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "ppv", "npv")
FOLD_METRICS = ("auc", *THRESHOLD_METRICS, "brier")
CALIBRATION_METRICS = ("calibration_slope", "calibration_intercept")
ALL_METRICS = (*FOLD_METRICS, *CALIBRATION_METRICS)
_BOUNDED = set(FOLD_METRICS)  # metrics that live in [0, 1]


def auc_score(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank formula (ties count 1/2); nan when a class is absent.

    Same value as sklearn.metrics.roc_auc_score; hand-written because the bootstrap calls it thousands of
    times and roc_auc_score's input validation dominates at these sizes.
    """
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, balanced accuracy, PPV, NPV at ``risk >= threshold`` (nan when undefined)."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(p) >= threshold
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    tn = float(np.sum(~pred & ~y))

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    sens = ratio(tp, tp + fn)
    spec = ratio(tn, tn + fp)
    return {
        "balanced_accuracy": (sens + spec) / 2,
        "sensitivity": sens,
        "specificity": spec,
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def fold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    return {
        "auc": auc_score(y, p),
        **threshold_metrics(y, p, threshold),
        "brier": float(np.mean((p - y) ** 2)),
    }


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _newton_logistic(design: np.ndarray, y: np.ndarray, offset: np.ndarray, n_iter: int = 50) -> np.ndarray:
    """Maximum-likelihood logistic regression with an offset (Newton-Raphson); nan when it does not converge.

    Hand-written because sklearn's LogisticRegression has no offset term (needed for the calibration
    intercept) and always regularises or warns; separation (a common event in small folds) shows as nan.
    """
    beta = np.zeros(design.shape[1])
    for _ in range(n_iter):
        eta = offset + design @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = mu * (1 - mu)
        grad = design.T @ (y - mu)
        hess = design.T @ (design * w[:, None])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return np.full(design.shape[1], np.nan)
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e3:
            return np.full(design.shape[1], np.nan)
        if np.max(np.abs(step)) < 1e-8:
            return beta
    return np.full(design.shape[1], np.nan)


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration slope (y ~ a + b·logit(p)) and intercept-in-the-large (y ~ a + offset logit(p)).

    Ideal: slope 1, intercept 0. Slope < 1 means risks too extreme (overfitting); intercept > 0 means risks
    too low on average. As recommended by Van Calster et al. (J Clin Epidemiol 2016;74:167-176).
    """
    y = np.asarray(y, dtype=float)
    if y.min() == y.max():
        return float("nan"), float("nan")
    lp = _logit(p)
    ones = np.ones((y.size, 1))
    slope = _newton_logistic(np.column_stack([ones, lp]), y, np.zeros_like(lp))[1]
    intercept = _newton_logistic(ones, y, lp)[0]
    return float(slope), float(intercept)


def corrected_t_ci(values: np.ndarray, test_train_ratio: float, level: float) -> dict[str, float | int]:
    """Nadeau-Bengio corrected resampled t-test CI of the mean of per-fold values (see module docstring)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    j = v.size
    if j == 0:
        return {"estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_values": 0}
    mean = float(v.mean())
    if j == 1:
        return {"estimate": mean, "ci_low": float("nan"), "ci_high": float("nan"), "n_values": 1}
    var = (1.0 / j + test_train_ratio) * float(v.var(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, j - 1)) * np.sqrt(var)
    return {"estimate": mean, "ci_low": mean - half, "ci_high": mean + half, "n_values": j}


def pooled_metric(name: str, y: np.ndarray, risk: np.ndarray, pred: np.ndarray) -> float:
    """One metric on pooled OOF predictions of one repeat (``pred``: class at each fold's threshold)."""
    if name == "auc":
        return auc_score(y, risk)
    if name == "brier":
        return float(np.mean((risk - y) ** 2))
    if name in THRESHOLD_METRICS:
        return threshold_metrics(y, pred.astype(float), 0.5)[name]
    slope, intercept = calibration_slope_intercept(y, risk)
    return slope if name == "calibration_slope" else intercept


def bootstrap_ci(
    name: str, oof: pd.DataFrame, *, n_boot: int, level: float, seed: int
) -> dict[str, float | int]:
    """Percentile bootstrap over patients of a metric on pooled OOF predictions (averaged over repeats).

    ``oof`` has one row per patient per repeat: patient_id, repeat, y_true, hpd_risk, predicted_hpd.
    """
    wide_risk = oof.pivot(index="patient_id", columns="repeat", values="hpd_risk")
    wide_pred = oof.pivot(index="patient_id", columns="repeat", values="predicted_hpd").reindex(
        wide_risk.index
    )
    y = oof.groupby("patient_id")["y_true"].first().reindex(wide_risk.index).to_numpy(dtype=float)
    risk = wide_risk.to_numpy(dtype=float)
    pred = wide_pred.to_numpy(dtype=float)

    def stat(idx: np.ndarray) -> float:
        vals = [pooled_metric(name, y[idx], risk[idx, r], pred[idx, r]) for r in range(risk.shape[1])]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    n = y.size
    estimate = stat(np.arange(n))
    rng = np.random.default_rng(seed)
    boots = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    finite = boots[np.isfinite(boots)]
    if finite.size < 0.5 * n_boot:
        lo = hi = float("nan")
    else:
        lo, hi = (float(x) for x in np.percentile(finite, [50 * (1 - level), 50 * (1 + level)]))
    return {"estimate": estimate, "ci_low": lo, "ci_high": hi, "n_values": int(finite.size)}


def format_estimate(entry: dict[str, Any] | None, digits: int = 2, missing: str = "") -> str:
    """A summarise() entry as text: ``0.73 [0.60, 0.85]``; the CI only when both ends are there.

    One formatter for the plot legends and the command's console summary, so the two read alike.
    """
    if not entry or entry.get("estimate") is None:
        return missing
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{entry['estimate']:.{digits}f}{ci}"


def summarise(
    fold_table: pd.DataFrame, oof: pd.DataFrame, *, method: str, level: float, n_boot: int, seed: int
) -> dict[str, dict[str, object]]:
    """metrics.json entries {"estimate", "ci_low", "ci_high", "method", "n_values"} for every metric."""
    out: dict[str, dict[str, object]] = {}
    ratio = float((fold_table["n_test"] / fold_table["n_train"]).mean())
    for name in ALL_METRICS:
        if method == "corrected_t" and name in FOLD_METRICS:
            res = corrected_t_ci(fold_table[name].to_numpy(), ratio, level)
            how = "corrected_resampled_t (Nadeau & Bengio 2003) over outer folds"
        else:
            res = bootstrap_ci(name, oof, n_boot=n_boot, level=level, seed=seed)
            how = "percentile bootstrap over patients of pooled out-of-fold predictions, mean over repeats"
        if name in _BOUNDED:
            res["ci_low"] = (
                float(np.clip(res["ci_low"], 0.0, 1.0)) if np.isfinite(res["ci_low"]) else res["ci_low"]
            )
            res["ci_high"] = (
                float(np.clip(res["ci_high"], 0.0, 1.0)) if np.isfinite(res["ci_high"]) else res["ci_high"]
            )
        out[name] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in res.items()}
        out[name]["method"] = how
    return out


def net_benefit(y: np.ndarray, risk: np.ndarray, threshold: float) -> float:
    """Net benefit of treating patients with risk >= threshold (Vickers & Elkin, Med Decis Making 2006)."""
    y = np.asarray(y, dtype=bool)
    pred = np.asarray(risk) >= threshold
    n = y.size
    tp = np.sum(pred & y) / n
    fp = np.sum(pred & ~y) / n
    return float(tp - fp * threshold / (1 - threshold))


def decision_curve(oof: pd.DataFrame, thresholds: list[float]) -> pd.DataFrame:
    """Net benefit per threshold of each model (mean over repeats of pooled OOF risks) vs treat-all / none.

    ``oof`` rows: model, repeat, y_true, hpd_risk.
    """
    rows = []
    first = oof[oof["model"] == oof["model"].iloc[0]]
    prev = float(first.groupby("patient_id")["y_true"].first().mean())
    for t in thresholds:
        row: dict[str, float] = {
            "threshold": t,
            "net_benefit_treat_all": prev - (1 - prev) * t / (1 - t),
            "net_benefit_treat_none": 0.0,
        }
        for model, part in oof.groupby("model", sort=False):
            vals = [
                net_benefit(g["y_true"].to_numpy(), g["hpd_risk"].to_numpy(), t)
                for _, g in part.groupby("repeat")
            ]
            row[f"net_benefit_{model}"] = float(np.mean(vals))
        rows.append(row)
    return pd.DataFrame(rows)
