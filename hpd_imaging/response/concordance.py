"""Agreement between HPD definitions across a cohort (as in Kas B et al., JAMA Oncol 2020, Table 3).

For every pair of definitions (every registry key, registry order), over the patients evaluable under both:
counts of patients labelled HPD by both, by only one, by neither, and the Jaccard index
``n_both / (n_both + n_a_only + n_b_only)`` (empty when no patient is HPD under either), and Cohen's kappa
(agreement beyond chance over the same patients, counting agreement on "no HPD" too, which Jaccard ignores).

Kappa from the 2x2 table (a = both HPD, b = a only, c = b only, d = neither, n = a + b + c + d):
``p_o = (a + d)/n``, ``p_e = ((a + b)(a + c) + (c + d)(b + d))/n^2``, ``kappa = (p_o - p_e)/(1 - p_e)``
(Cohen 1960); empty when ``p_e = 1`` (both definitions give every patient the same single label) or n = 0.
Written out because it is four counts already at hand; tests check it against
``sklearn.metrics.cohen_kappa_score``.
"""

from __future__ import annotations

from itertools import combinations

import pandas as pd

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
    """Cohen's kappa of a 2x2 agreement table (module docstring); None when undefined."""
    n = a + b + c + d
    if n == 0:
        return None
    p_o = (a + d) / n
    p_e = ((a + b) * (a + c) + (c + d) * (b + d)) / (n * n)
    return None if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


def concordance_table(kinetics: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    keys = list(keys or DEFINITIONS)
    missing = [k for k in keys if f"hpd_{k}" not in kinetics.columns]
    if missing:
        raise KeyError(f"kinetics table lacks column(s) {', '.join('hpd_' + k for k in missing)}")
    rows = []
    for a, b in combinations(keys, 2):
        la, lb = kinetics[f"hpd_{a}"].astype(str), kinetics[f"hpd_{b}"].astype(str)
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
