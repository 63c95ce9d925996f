"""Agreement between HPD definitions across a cohort (as in Kas B et al., JAMA Oncol 2020, Table 3).

For every pair of definitions (every registry key, registry order), over the patients evaluable under both:
counts of patients labelled HPD by both, by only one, by neither, and the Jaccard index
``n_both / (n_both + n_a_only + n_b_only)`` (empty when no patient is HPD under either), and Cohen's kappa
(agreement beyond chance over the same patients, counting agreement on "no HPD" too, which Jaccard ignores).

Kappa is ``sklearn.metrics.cohen_kappa_score`` (Cohen 1960: ``(p_o - p_e)/(1 - p_e)``) over the patients
evaluable under both; empty (None) where it is undefined: no such patient, or both definitions give every
patient the same single label (``p_e = 1``; scikit-learn then returns NaN with a warning).
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import pandas as pd
from sklearn.metrics import cohen_kappa_score

from hpd_imaging.response.hpd import DEFINITIONS

COLUMNS = [
    "definition_a",
    "definition_b",
    "n_evaluable_both",
    "n_both_hpd",
    "n_a_only",
    "n_b_only",
    "n_neither",
    "jaccard",
    "cohen_kappa",
]


def cohen_kappa(a: int, b: int, c: int, d: int) -> float | None:
    """Cohen's kappa of a 2x2 agreement table (a = both HPD, b = first only, c = second only, d = neither),
    by scikit-learn; None when undefined (module docstring)."""
    if a + b + c + d == 0:
        return None
    first = [1] * (a + b) + [0] * (c + d)
    second = [1] * a + [0] * b + [1] * c + [0] * d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # p_e = 1 (one label only): undefined, NaN, None below
        kappa = float(cohen_kappa_score(first, second))
    return kappa if math.isfinite(kappa) else None


def concordance_table(
    kinetics: pd.DataFrame, keys: list[str] | None = None, *, stable_only: bool = False
) -> pd.DataFrame:
    """The pairwise table; ``stable_only``: a label not called stable under measurement error
    (``hpd_<key>_stable`` is not true, response/stability.py) counts as not evaluable, so only labels that
    the measurement noise cannot flip are compared (needs the stability columns)."""
    keys = list(keys or DEFINITIONS)
    if not len(kinetics):  # no patient labelled (e.g. all withheld): every pair counts 0, nothing undefined
        wanted = [f"hpd_{k}" for k in keys] + ([f"hpd_{k}_stable" for k in keys] if stable_only else [])
        kinetics = kinetics.reindex(columns=list(dict.fromkeys([*kinetics.columns, *wanted])))
    missing = [k for k in keys if f"hpd_{k}" not in kinetics.columns]
    if stable_only:
        missing += [f"{k}_stable" for k in keys if f"hpd_{k}_stable" not in kinetics.columns]
    if missing:
        raise KeyError(
            f"kinetics table lacks column(s) {', '.join('hpd_' + k for k in missing)}"
            + (" (stable_only needs the stability analysis: stability.draws > 0)" if stable_only else "")
        )

    def labels(key: str) -> pd.Series:
        out = kinetics[f"hpd_{key}"].astype(str)
        if stable_only:
            out = out.where(kinetics[f"hpd_{key}_stable"].map(lambda v: v is True or v == "True"), "fragile")
        return out

    rows = []
    for a, b in combinations(keys, 2):
        la, lb = labels(a), labels(b)
        both_eval = la.isin(["hpd", "no_hpd"]) & lb.isin(["hpd", "no_hpd"])
        ha, hb = (la == "hpd") & both_eval, (lb == "hpd") & both_eval
        n_both, n_a, n_b = int((ha & hb).sum()), int((ha & ~hb).sum()), int((~ha & hb & both_eval).sum())
        n_neither = int((both_eval & ~ha & ~hb).sum())
        union = n_both + n_a + n_b
        rows.append(
            {
                "definition_a": a,
                "definition_b": b,
                "n_evaluable_both": int(both_eval.sum()),
                "n_both_hpd": n_both,
                "n_a_only": n_a,
                "n_b_only": n_b,
                "n_neither": n_neither,
                "jaccard": n_both / union if union else None,
                "cohen_kappa": cohen_kappa(n_both, n_a, n_b, n_neither),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS).astype(object)
    return df.where(df.notna(), None)  # an undefined Jaccard is an empty cell, not NaN
