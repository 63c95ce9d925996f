"""Criterion builders of the HPD rules: PD at first evaluation, ratio (with the non-positive-reference
policy and the minimum-detectable-change guard), value thresholds, TTF and ECOG, each returning a
three-valued :class:`Criterion` with its sentence (split from response/hpd.py, issue 17)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from hpd_imaging.response.records import PatientFacts
from hpd_imaging.settings.hpd import ResponseConfig, Threshold, compare


class Criterion:
    """A three-valued criterion and its sentence. The sentence is lazy: a string, or a function that builds
    it when it is first read. Why: the stability Monte Carlo (response/stability.py) evaluates every rule a
    few hundred times per patient and needs only the values; formatting the reasons there cost about half of
    its time. The value is always computed eagerly by the same code, so a label never depends on whether
    its reason was read."""

    __slots__ = ("_text", "value")

    def __init__(self, value: bool | None, text: str | Callable[[], str]) -> None:
        self.value = value
        self._text = text

    @property
    def text(self) -> str:
        if not isinstance(self._text, str):
            self._text = self._text()
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Criterion) and (self.value, self.text) == (other.value, other.text)

    def __hash__(self) -> int:
        return hash((self.value, self.text))

    def __repr__(self) -> str:
        return f"Criterion(value={self.value!r}, text={self.text!r})"


Rule = Callable[[PatientFacts, ResponseConfig, str], list[Criterion]]


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "undefined"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


# --------------------------------------------------------------------------------------------------
# Criterion builders
# --------------------------------------------------------------------------------------------------


def pd1(f: PatientFacts, cfg: ResponseConfig, volumetric: bool = False) -> Criterion:
    value = f.vol_pd1 if volumetric else f.pd1
    what = "volumetric PD (x1.728)" if volumetric else f"RECIST PD ({cfg.pd1_mode})"
    resp = f.volumetric_response_first_eval if volumetric else f.recist_first_eval
    if value is None:
        return Criterion(None, f"{what} at first evaluation not evaluable")
    return Criterion(value, lambda: f"{what} at first evaluation {'met' if value else 'not met'} ({resp})")


def ratio_criterion(
    name: str,
    exp: float | None,
    ref: float | None,
    thr: Threshold,
    policy: str,
    growth: tuple[float | None, float | None] = (None, None),
) -> Criterion:
    """``exp/ref <comparator> threshold`` with the non-positive-reference policy of section 1.5.

    ``growth`` = (observed change of the burden over the experimental period, its minimum detectable change):
    under the inequality / infinite-acceleration forms a non-positive reference makes *any* growth count,
    so a growth within the measurement noise (change <= MDC) is not acceleration (the mdc_guard setting,
    docs/label_stability.md). (None, None): no guard."""
    if exp is None or ref is None:
        return Criterion(
            None, lambda: f"{name} ratio undefined ({name}_exp {_fmt(exp)}, {name}_ref {_fmt(ref)})"
        )
    # A rate within the comparison tolerance of 0 is 0: sums of floats that are mathematically equal (e.g.
    # 10.1 + 20.2 + 0.7 vs 10.2 + 20.1 + 0.7) must not become an "acceleration" of 1e-15 mm/month.
    if compare(ref, ">", 0.0):
        if math.isinf(ref):
            if math.isinf(exp):
                return Criterion(None, f"{name} ratio undefined (inf/inf)")
            r = 0.0
        else:
            r = exp / ref
        met = thr.holds(r)
        return Criterion(met, lambda: f"{name} ratio {_fmt(r)} {'meets' if met else 'fails'} {thr.text()}")
    if policy == "not_evaluable":
        return Criterion(
            None, lambda: f"{name}_ref {_fmt(ref)} <= 0: ratio not evaluable (policy not_evaluable)"
        )
    if policy == "strict_ratio":
        if compare(ref, ">=", 0.0):  # zero within tolerance
            return Criterion(None, f"{name}_ref = 0: ratio undefined (policy strict_ratio)")
        # Spec 1.5: with a negative reference the naive ratio's meaning is inverted (-30/-10 = 3 is faster
        # *shrinkage*; 73/-24 = -3 is growth after shrinkage), so the strict ratio form says "no" (spec 7:
        # strict_ratio -> no), never HPD.
        r = exp / ref
        return Criterion(
            False,
            lambda: (
                f"{name}_ref {_fmt(ref)} < 0: naive {name} ratio {_fmt(r)} is not an acceleration, "
                f"ratio form not met (policy strict_ratio)"
            ),
        )
    met = compare(exp, ">", 0.0)  # an experimental rate of exactly 0 is not acceleration
    form = "inequality form" if policy == "inequality_if_exp_positive" else "infinite acceleration"
    change, mdc = growth
    if met and change is not None and mdc is not None and mdc > 0 and change <= mdc:
        return Criterion(
            False,
            lambda: (
                f"{name}_ref {_fmt(ref)} <= 0 and {name}_exp {_fmt(exp)} > 0, but the growth "
                f"{_fmt(change)} is within the minimum detectable change {_fmt(mdc)}: not acceleration "
                f"({form}, mdc_guard)"
            ),
        )
    return Criterion(
        met,
        lambda: (
            f"{name}_ref {_fmt(ref)} <= 0 and {name}_exp {_fmt(exp)} {'> 0' if met else '<= 0'}: "
            + f"{form} {'met' if met else 'not met'} ({name}_exp {thr.comparator} "
            + f"{thr.value:g} x {name}_ref, policy {policy})"
        ),
    )


def value_criterion(label: str, value: float | None, thr: Threshold, unit: str = "") -> Criterion:
    if value is None:
        return Criterion(None, f"{label} undefined")
    met = (
        compare(value, thr.comparator, thr.value)
        if not math.isinf(value)
        else (thr.comparator in (">", ">=")) == (value > 0)
    )
    return Criterion(
        met, lambda: f"{label} {_fmt(value)}{unit} {'meets' if met else 'fails'} {thr.text()}{unit}"
    )


def ttf_criterion(f: PatientFacts, cfg: ResponseConfig) -> Criterion:
    limit = cfg.ttf_threshold_days
    if f.ttf_days is None:
        return Criterion(
            False, "no treatment stop or death date: on treatment, TTF censored (criterion not met)"
        )
    met = compare(float(f.ttf_days), "<", limit)
    return Criterion(met, lambda: f"TTF {f.ttf_days} d {'<' if met else '>='} {limit:g} d")


def ecog_criterion(f: PatientFacts, thr: Threshold) -> Criterion:
    if f.ecog_baseline is None or f.ecog_worst_first_2_months is None:
        return Criterion(None, "ECOG change in the first 2 months unknown")
    return value_criterion("ECOG worsening", float(f.ecog_worst_first_2_months - f.ecog_baseline), thr)


def _t(cfg: ResponseConfig, key: str, name: str) -> Threshold:
    return cfg.threshold(key, name)


def _any(items: Sequence[Criterion]) -> Criterion:
    values = [c.value for c in items]
    value = True if True in values else (False if all(v is False for v in values) else None)
    return Criterion(value, lambda: "any of (" + "; ".join(c.text for c in items) + ")")
