"""Growth kinetics by phenotype: exponential growth with a pre- and a post-treatment rate.

Volume of a lesion: ``V(t) = V_ref * exp(G(t) - G(t_ref))`` with ``G`` the integral of the piecewise-constant
log-volume rate ``k(t)`` (per month, month = 30.4375 days as in the kinetics spec): ``k_pre`` before the first
ICI dose, ``k_post`` after it, and for pseudoprogression ``k_late`` (shrinkage) after ``switch_days``.
TGR = 100 (e^k - 1) %/month. Growth stops at ``v_cap_mm3`` (equivalent diameter 90 mm), recorded in the truth.

Rates per phenotype (per month; per-lesion jitter x U(0.85, 1.15)) are chosen so that the common HPD
definitions separate the phenotypes clearly: a hyperprogressor has TGR_exp/TGR_ref well over 2 (k_post >= 0.6
vs k_pre <= 0.10 gives ratios > 5 and Delta-TGR > 50) and RECIST PD at the first evaluation; the other
phenotypes have TGR ratios < 2 (progressor k_post/k_pre <= 1.3). TGK-ratio definitions can still call a fast
*progressor* HPD, the known bias of absolute slopes (specs/hpd_kinetics.md section 1.4).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

MONTH_DAYS = 30.4375
V_CAP_MM3 = 4.0 / 3.0 * math.pi * 45.0**3  # equivalent diameter 90 mm

#: phenotype -> (k_pre range, k_post range, k_late range or None), per month on volume
PHENOTYPE_RATES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float] | None]] = {
    "hyperprogressor": ((0.02, 0.10), (0.60, 1.00), None),
    "progressor": ((0.08, 0.20), (0.90, 1.30), None),  # k_post = k_pre x this range
    "stable": ((0.00, 0.08), (-0.03, 0.03), None),
    "responder": ((0.05, 0.20), (-1.10, -0.60), None),
    "pseudoprogression": ((0.05, 0.15), (1.00, 1.50), (-0.60, -0.30)),  # growth (x k_pre), then shrinkage
}

#: probability that a patient of this phenotype develops new lesion(s) after ICI start
NEW_LESION_PROBABILITY: dict[str, float] = {
    "hyperprogressor": 0.7,
    "progressor": 0.3,
    "stable": 0.0,
    "responder": 0.0,
    "pseudoprogression": 0.0,
}


@dataclass(frozen=True)
class Growth:
    """Log-volume trajectory of one lesion."""

    ici_start: dt.date
    k_pre: float
    k_post: float
    k_late: float | None = None
    switch_days: float | None = None  # days after ICI start when k_late takes over (pseudoprogression)
    ref_date: dt.date | None = None  # date of V_ref; None = ici_start
    appear_date: dt.date | None = None  # new lesions: absent before this date

    def _g(self, date: dt.date) -> float:
        """Integral of k from the ICI start to ``date`` (months x per month)."""
        t = (date - self.ici_start).days / MONTH_DAYS
        if t <= 0:
            return self.k_pre * t
        if self.k_late is None or self.switch_days is None:
            return self.k_post * t
        ts = self.switch_days / MONTH_DAYS
        return self.k_post * min(t, ts) + self.k_late * max(0.0, t - ts)

    def log_volume_ratio(self, date: dt.date, v_ref_mm3: float) -> float:
        """ln(V(date) / V_ref), with growth capped at V_CAP_MM3."""
        ref = self.ref_date or self.ici_start
        return min(self._g(date) - self._g(ref), math.log(V_CAP_MM3 / v_ref_mm3))

    def is_present(self, date: dt.date) -> bool:
        return self.appear_date is None or date >= self.appear_date


def draw_patient_rates(rng: np.random.Generator, phenotype: str) -> tuple[float, float, float | None]:
    """Patient-level (k_pre, k_post, k_late) for a phenotype."""
    pre_rng, post_rng, late_rng = PHENOTYPE_RATES[phenotype]
    k_pre = float(rng.uniform(*pre_rng))
    if phenotype in ("progressor", "pseudoprogression"):
        k_post = k_pre * float(rng.uniform(*post_rng))
    else:
        k_post = float(rng.uniform(*post_rng))
    k_late = float(rng.uniform(*late_rng)) if late_rng is not None else None
    return k_pre, k_post, k_late


def jitter_rate(rng: np.random.Generator, k: float) -> float:
    """Per-lesion variation of a patient's rate (keeps the sign)."""
    return float(k * rng.uniform(0.85, 1.15))


def tgr_pct_per_month(k_per_month: float) -> float:
    return 100.0 * math.expm1(k_per_month)
