"""Regression-growth models over every on-treatment scan (tumgr-style; Wilkerson J et al., CRAN package tumgr;
Stein WD et al., Clin Cancer Res 2008;14:7402 / Oncologist 2011;16:1090).

The tumour-burden series f(t) = S(t)/S(t_0) (t in days from the baseline scan) is fitted with

    g  : f = exp(g t)                      growth only
    d  : f = exp(-d t)                     regression only
    gd : f = exp(-d t) + exp(g t) - 1      a regressing and a growing fraction

with g, d >= 0 by nonlinear least squares (scipy.optimize.curve_fit), and the model with the smallest AIC is
kept (AIC = n ln(RSS/n) + 2(k+1), the Gaussian least-squares form that R's nls/AIC uses). Unlike the two-point
metrics (TGR, TGK) this uses every scan. Standard errors come from the covariance of the fit; 95 % intervals
use Student's t with n - k degrees of freedom. tumgr's ``gdphi`` model and its significance filter are not
implemented; the chosen model's parameters are reported with their intervals instead so users can filter.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize, stats

log = logging.getLogger(__name__)


def _g(t: np.ndarray, g: float) -> np.ndarray:
    return np.exp(g * t)


def _d(t: np.ndarray, d: float) -> np.ndarray:
    return np.exp(-d * t)


def _gd(t: np.ndarray, g: float, d: float) -> np.ndarray:
    return np.exp(-d * t) + np.exp(g * t) - 1.0


MODELS: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    "g": (_g, ("g",)),
    "d": (_d, ("d",)),
    "gd": (_gd, ("g", "d")),
}


def _aic(rss: float, n: int, k: int) -> float:
    rss = max(rss, 1e-12 * n)  # a perfect fit would give -inf
    return n * math.log(rss / n) + 2 * (k + 1)


def fit_growth(days: list[float], burden: list[float]) -> dict[str, Any]:
    """Fit g, d and gd to one patient's series; ``days[0]`` must be the reference scan (burden[0] > 0)."""
    out: dict[str, Any] = {"n_scans": len(days), "model": "", "note": ""}
    for name in ("g", "d"):
        for suffix in ("per_day", "se", "ci_low", "ci_high"):
            out[f"{name}_{suffix}"] = None
    for name in MODELS:
        out[f"aic_{name}"] = None
    if len(days) < 2 or burden[0] is None or burden[0] <= 0:
        out["note"] = "needs a positive reference burden and at least 2 scans"
        return out
    t = np.asarray(days, dtype=float) - float(days[0])
    y = np.asarray(burden, dtype=float) / float(burden[0])
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None
    for name, (fn, params) in MODELS.items():
        k = len(params)
        if len(t) <= k:
            continue
        last = max(float(y[-1]), 1e-3)
        slope = abs(math.log(last)) / max(float(t[-1]), 1.0)
        p0 = [max(slope, 1e-4)] * k
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                popt, pcov = optimize.curve_fit(fn, t, y, p0=p0, bounds=(0.0, 1.0), maxfev=10000)
        except (RuntimeError, ValueError) as exc:
            log.debug("growth model %s did not converge: %s", name, exc)
            continue
        rss = float(np.sum((fn(t, *popt) - y) ** 2))
        aic = _aic(rss, len(t), k)
        out[f"aic_{name}"] = aic
        if best is None or aic < best[0] - 1e-9:
            best = (aic, name, popt, pcov)
    if best is None:
        out["note"] = "no model converged"
        return out
    _, name, popt, pcov = best
    out["model"] = name
    dof = len(t) - len(popt)
    tq = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.nan
    for i, param in enumerate(MODELS[name][1]):
        value = float(popt[i])
        se = float(math.sqrt(pcov[i, i])) if np.isfinite(pcov[i, i]) and pcov[i, i] >= 0 else None
        out[f"{param}_per_day"] = value
        out[f"{param}_se"] = se
        if se is not None and math.isfinite(tq):
            out[f"{param}_ci_low"], out[f"{param}_ci_high"] = max(0.0, value - tq * se), value + tq * se
    g = out["g_per_day"]
    out["doubling_time_days"] = math.log(2) / g if g else None
    return out
