"""Per-lesion and per-organ growth kinetics, and the mixed-response flag (heterogeneous growth).

HPD definitions use the sum of target diameters; HPD papers also discuss lesions of one patient that behave
differently (some shrink while others grow: "mixed" or "dissociated" response, Tazdait et al. 2018, Humbert
et al. 2020). This module gives, for every lesion and for every organ (sum over its lesions), the same
kinetics as the patient-level stage (specs/hpd_kinetics.md sections 1.1-1.4) over the reference period
(pre-baseline -> baseline) and the experimental period (baseline -> first evaluation):

* ``tgr_*_pct_per_month`` = 100 (exp(3 ln(D_t/D_0)/dt) - 1) from the RECIST diameter (short axis for lymph
  nodes, longest axial diameter otherwise);
* ``vol_tgr_*_pct_per_month`` = 100 (exp(ln(V_t/V_0)/dt) - 1) from measured volumes (exponent 1, section 1.2);
* ``tgk_*_mm_per_month`` = (D_t - D_0)/dt.

The formulas are the response stage's (:func:`hpd_imaging.response.kinetics.tgr_pct_per_month` and
``tgk_per_month``), under the same conventions as the patient-level kinetics: dt in months of ``month_days``
days, and the experimental period starting at the baseline scan or at the first ICI dose
(``exp_period_start``; D_0 is the baseline scan's value either way). Each row of lesion_kinetics.csv states
the two values used (columns ``month_days``, ``exp_period_start``) and the intervals (``t_ref_days``,
``t_exp_days``).

Limits as the spec says: D_t = 0 -> TGR = -100; D_0 = 0 (a lesion not yet there) -> None here (the response
function's +inf, an empty CSV cell), 0/0 -> None. A lesion is classed at the first evaluation as
``shrinking`` (diameter change <= -30 %), ``growing`` (>= +20 %), ``stable`` or ``new`` (absent at baseline,
present at the first evaluation); the patient has a mixed response when at least one lesion shrinks while
another grows (new lesions count as growing unless ``new_lesions_count_as_growing`` is False). The per-lesion
-30 %/+20 % thresholds borrow RECIST's sum thresholds, as the mixed-response literature does.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from hpd_imaging.response.kinetics import tgk_per_month, tgr_pct_per_month
from hpd_imaging.settings.base import MONTH_DAYS

SHRINK_PCT = -30.0
GROW_PCT = 20.0
ExpPeriodStart = Literal["baseline_scan", "ici_start"]


@dataclass(frozen=True)
class LesionPoint:
    scan_date: dt.date
    diameter_mm: float | None  # RECIST diameter: short axis for nodes, long axis otherwise; 0 when gone
    volume_mm3: float | None = None


@dataclass(frozen=True)
class LesionSeries:
    patient_id: str
    lesion_id: str
    organ: str
    is_lymph_node: bool
    points: tuple[LesionPoint, ...]

    def at(self, date: dt.date | None) -> LesionPoint | None:
        return None if date is None else next((p for p in self.points if p.scan_date == date), None)


@dataclass(frozen=True)
class PatientDates:
    """A patient's scan dates and the kinetics conventions of the response stage (module docstring)."""

    pre_baseline: dt.date | None
    baseline: dt.date | None
    first_eval: dt.date | None
    ici_start: dt.date | None = None
    month_days: float = MONTH_DAYS
    exp_period_start: ExpPeriodStart = "baseline_scan"

    @property
    def t_ref_days(self) -> int | None:
        return _days(self.pre_baseline, self.baseline)

    @property
    def t_exp_days(self) -> int | None:
        start = self.baseline if self.exp_period_start == "baseline_scan" else self.ici_start
        return _days(start, self.first_eval) if self.baseline is not None else None


LESION_KINETICS_COLUMNS = [
    "patient_id",
    "level",
    "lesion_id",
    "organ",
    "is_lymph_node",
    "n_lesions",
    "diameter_pre_baseline_mm",
    "diameter_baseline_mm",
    "diameter_first_eval_mm",
    "volume_pre_baseline_mm3",
    "volume_baseline_mm3",
    "volume_first_eval_mm3",
    "change_first_eval_pct",
    "tgr_ref_pct_per_month",
    "tgr_exp_pct_per_month",
    "tgk_ref_mm_per_month",
    "tgk_exp_mm_per_month",
    "vol_tgr_ref_pct_per_month",
    "vol_tgr_exp_pct_per_month",
    "response_class",
    "t_ref_days",
    "t_exp_days",
    "month_days",
    "exp_period_start",
]


def _tgr(d0: float | None, d1: float | None, months: float | None, exponent: float) -> float | None:
    """The response stage's TGR; its +inf (a lesion not there at the start) is None here: no finite rate."""
    value = tgr_pct_per_month(d0, d1, months, exponent)
    return value if value is None or math.isfinite(value) else None


def _days(a: dt.date | None, b: dt.date | None) -> int | None:
    return None if a is None or b is None else (b - a).days


def _metrics(
    d: tuple[float | None, float | None, float | None],
    v: tuple[float | None, float | None, float | None],
    dates: PatientDates,
) -> dict[str, object]:
    ref, exp = dates.t_ref_days, dates.t_exp_days
    ref_m = None if ref is None else ref / dates.month_days
    exp_m = None if exp is None else exp / dates.month_days
    change = None if d[1] is None or d[2] is None or d[1] <= 0 else 100.0 * (d[2] - d[1]) / d[1]
    return {
        "diameter_pre_baseline_mm": d[0],
        "diameter_baseline_mm": d[1],
        "diameter_first_eval_mm": d[2],
        "volume_pre_baseline_mm3": v[0],
        "volume_baseline_mm3": v[1],
        "volume_first_eval_mm3": v[2],
        "change_first_eval_pct": change,
        "tgr_ref_pct_per_month": _tgr(d[0], d[1], ref_m, 3.0),
        "tgr_exp_pct_per_month": _tgr(d[1], d[2], exp_m, 3.0),
        "tgk_ref_mm_per_month": tgk_per_month(d[0], d[1], ref_m),
        "tgk_exp_mm_per_month": tgk_per_month(d[1], d[2], exp_m),
        "vol_tgr_ref_pct_per_month": _tgr(v[0], v[1], ref_m, 1.0),
        "vol_tgr_exp_pct_per_month": _tgr(v[1], v[2], exp_m, 1.0),
        "t_ref_days": ref,
        "t_exp_days": exp,
        "month_days": dates.month_days,
        "exp_period_start": dates.exp_period_start,
    }


def _classify(base: float | None, first: float | None, change: float | None) -> str | None:
    if first is None:
        return None
    if (base is None or base <= 0) and first > 0:
        return "new"
    if change is None:
        return None
    return "shrinking" if change <= SHRINK_PCT else "growing" if change >= GROW_PCT else "stable"


def lesion_kinetics(
    series: Iterable[LesionSeries], dates: dict[str, PatientDates]
) -> list[dict[str, object]]:
    """Rows of lesion_kinetics.csv: one per lesion (``level`` = lesion) and one per organ (``level`` =
    organ; sums over the organ's lesions measured at all three scans, new lesions excluded)."""
    rows: list[dict[str, object]] = []
    by_organ: dict[tuple[str, str], list[LesionSeries]] = defaultdict(list)
    for s in sorted(series, key=lambda s: (s.patient_id, s.lesion_id)):
        pd_ = dates.get(s.patient_id, PatientDates(None, None, None))
        pts = [s.at(pd_.pre_baseline), s.at(pd_.baseline), s.at(pd_.first_eval)]
        d = tuple(None if p is None else p.diameter_mm for p in pts)
        v = tuple(None if p is None else p.volume_mm3 for p in pts)
        m = _metrics(d, v, pd_)  # type: ignore[arg-type]
        rows.append(
            {
                "patient_id": s.patient_id,
                "level": "lesion",
                "lesion_id": s.lesion_id,
                "organ": s.organ,
                "is_lymph_node": s.is_lymph_node,
                "n_lesions": 1,
                **m,
                "response_class": _classify(d[1], d[2], m["change_first_eval_pct"]),  # type: ignore[arg-type]
            }
        )
        if d[1] is not None and d[1] > 0:
            by_organ[(s.patient_id, s.organ)].append(s)
    for (pid, organ), members in sorted(by_organ.items()):
        pd_ = dates[pid]
        sums_d: list[float | None] = []
        sums_v: list[float | None] = []
        for date in (pd_.pre_baseline, pd_.baseline, pd_.first_eval):
            pts = [m.at(date) for m in members]
            diam = [None if p is None else p.diameter_mm for p in pts]
            vol = [None if p is None else p.volume_mm3 for p in pts]
            sums_d.append(None if any(x is None for x in diam) else float(sum(diam)))  # type: ignore[arg-type]
            sums_v.append(None if any(x is None for x in vol) else float(sum(vol)))  # type: ignore[arg-type]
        m = _metrics(tuple(sums_d), tuple(sums_v), pd_)  # type: ignore[arg-type]
        rows.append(
            {
                "patient_id": pid,
                "level": "organ",
                "lesion_id": None,
                "organ": organ,
                "is_lymph_node": None,
                "n_lesions": len(members),
                **m,
                "response_class": _classify(sums_d[1], sums_d[2], m["change_first_eval_pct"]),  # type: ignore[arg-type]
            }
        )
    return rows


@dataclass(frozen=True)
class MixedResponse:
    mixed_response: bool | None  # None when fewer than two lesions could be classed
    n_lesions_shrinking: int
    n_lesions_growing: int
    n_lesions_new: int


def mixed_response(
    rows: Sequence[dict[str, object]], patient_id: str, new_lesions_count_as_growing: bool = True
) -> MixedResponse:
    """Mixed response of one patient from its lesion rows (module docstring)."""
    classes = [r["response_class"] for r in rows if r["patient_id"] == patient_id and r["level"] == "lesion"]
    shrink, grow, new = (sum(c == k for c in classes) for k in ("shrinking", "growing", "new"))
    growing = grow + (new if new_lesions_count_as_growing else 0)
    classed = sum(c is not None for c in classes)
    flag = None if classed < 2 else bool(shrink >= 1 and growing >= 1)
    return MixedResponse(flag, shrink, grow, new)
