"""Issue 17: the stability draws re-run the course's automatic RECIST target selection (measurability limits,
top 5, 2 per organ), the sequential stop's bounds, and parallel = serial.

Truth is independent of the package: normal tail probabilities (math.erf) for a lesion at a measurability
limit, exact binomial sums (math.comb) for the stop bounds, and tables computed with one process.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hpd_imaging.course import courses_from_tables
from hpd_imaging.response import run_response
from hpd_imaging.response.run import assess_course
from hpd_imaging.response.stability import stop_bounds
from hpd_imaging.settings.hpd import ResponseConfig
from hpd_imaging.synth.measurement_cohort import measurement_cohort

DATES = ("2024-01-01", "2024-03-01", "2024-04-20")  # pre-baseline, baseline, first evaluation
CLIN = pd.DataFrame([{"patient_id": "p", "ici_start_date": "2024-03-02"}])


def _lesion(lid: str, organ: str, sizes: tuple[float, float, float], sd: float, node: bool = False) -> list:
    """Rows of one lesion over the three scans with a table SD (``sd``) on both diameters."""
    return [
        {
            "patient_id": "p",
            "scan_date": date,
            "lesion_id": lid,
            "organ": organ,
            "is_lymph_node": node,
            "longest_axial_diameter_mm": d * 1.3 if node else d,
            "short_axis_mm": d if node else 0.7 * d,
            "longest_axial_diameter_sd_mm": sd,
            "short_axis_sd_mm": sd,
        }
        for date, d in zip(DATES, sizes, strict=True)
    ]


def _stability(rows: list, **stability):
    cfg = ResponseConfig(stability=stability)
    (course,) = courses_from_tables(pd.DataFrame(rows), CLIN, cfg)
    result = assess_course(course, cfg)
    return result, result.stability


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_a_lesion_at_the_measurability_limit_makes_the_labels_not_evaluable_in_its_share_of_draws():
    """The only lesion measures 10.5 mm at baseline (SD 0.5): in P(LD < 10) = Phi(-1) = 15.9 % of draws it
    is not measurable, the patient has no target and every kinetic label is not evaluable there. A huge
    growth makes every evaluable draw hpd: probability 1, agreement ~0.84, fragile."""
    result, st = _stability(_lesion("L1", "liver", (10.0, 10.5, 30.0), 0.5), draws=1000, early_stop_draws=0)
    assert result.assessment("champiat2017").label.value == "hpd"
    item = st.label("champiat2017")
    assert item.probability == 1.0
    assert item.agreement == pytest.approx(1 - _phi(-1.0), abs=3 * math.sqrt(0.16 * 0.84 / 1000))
    assert item.stable is False and st.target_selection_stable is False
    # the same lesion at 13 mm (6 SD above the limit): the selection and the label are stable
    _, st = _stability(_lesion("L1", "liver", (12.4, 13.0, 37.0), 0.5))
    assert st.target_selection_stable is True and st.label("champiat2017").stable is True


def test_a_node_at_15_mm_short_axis_is_a_target_in_its_share_of_draws():
    """A lung target plus a node at 15.3 mm short axis (SD 0.3): the node is a target in P(SA >= 15) =
    Phi(1) = 84 % of draws, a pathological non-target otherwise. The node shrinks while the lung lesion
    doubles, so the target-sum labels depend on it."""
    rows = _lesion("L1", "lung", (20.0, 20.0, 30.0), 0.2) + _lesion(
        "N1", "mediastinum", (15.3, 15.3, 9.0), 0.3, True
    )
    _, st = _stability(rows, draws=1000, early_stop_draws=0)
    assert st.target_selection_stable is False
    # RECIST PD at first evaluation (+20 % and +5 mm on the sum) holds without the node (20 -> 30 mm) but not
    # with it (35.3 -> 39 mm, +10 %): Matos' label follows the node's selection
    item = st.label("matos2020")
    assert item.probability == pytest.approx(1 - _phi(1.0), abs=0.04)


def test_ranking_beyond_five_targets_changes_the_selection_but_not_a_label_that_does_not_depend_on_it():
    """Six measurable lesions in six organs; the 5th and 6th are 30.0 and 30.1 mm (SD 0.3) and grow alike,
    so which one is the 5th target changes from draw to draw (selection not stable), while the labels,
    far from their thresholds either way, stay stable: the selection is not a blanket veto any more."""
    rows = []
    for i, (organ, d) in enumerate(
        zip(
            ("lung", "liver", "adrenal", "bone", "kidney", "spleen"),
            (50, 45, 40, 35, 30.0, 30.1),
            strict=True,
        )
    ):
        rows += _lesion(f"L{i}", organ, (d * 0.98, d, d * 2.5), 0.3)
    result, st = _stability(rows)
    assert st.target_selection_stable is False
    assert result.assessment("champiat2017").label.value == "hpd"
    assert st.label("champiat2017").stable is True and st.label("champiat2017").probability == 1.0


def test_two_per_organ_is_honoured_in_the_draws():
    """Three liver lesions 40, 20.0 and 20.1 mm: only two may be targets, and the second changes between
    draws; one grows fast and one shrinks, so the labels that read the sum depend on which is chosen."""
    rows = (
        _lesion("L1", "liver", (39.0, 40.0, 40.0), 0.3)
        + _lesion("L2", "liver", (20.0, 20.0, 45.0), 0.3)
        + _lesion("L3", "liver", (20.1, 20.1, 10.0), 0.3)
    )
    result, st = _stability(rows, draws=600, early_stop_draws=0)
    assert st.target_selection_stable is False
    # reported: L3 (20.1) is the second target; L2 is chosen in P(L2 > L3) = Phi(-0.1 / (0.3 sqrt 2)) = 40.6 %
    # of draws. RECIST PD (sum +20 %, +5 mm): with L2 60 -> 85 mm (+42 %), with L3 60.1 -> 50 mm (no)
    share_l2 = _phi(-0.1 / (0.3 * math.sqrt(2.0)))
    assert result.assessment("matos2020").label.value == "no_hpd"
    assert st.label("matos2020").probability == pytest.approx(share_l2, abs=0.06)
    assert st.label("matos2020").stable is False


def test_declared_targets_are_never_reselected():
    rows = [dict(r, is_target=True) for r in _lesion("L1", "liver", (10.0, 10.5, 30.0), 0.5)]
    _, st = _stability(rows)
    assert st.target_selection_stable is True and st.label("champiat2017").stable is True


def _binom_cdf(d: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(d + 1))


def test_stop_bounds_are_the_exact_binomial_tests():
    bounds = stop_bounds(200, 60, 10, 0.95, 0.05)
    assert sorted(bounds) == list(range(60, 200, 10))
    for k, (stable_max, fragile_min) in bounds.items():
        # stable: the largest d with P(X <= d | k, 5 %) <= 5 % (-1 when even d = 0 is too likely)
        assert _binom_cdf(stable_max, k, 0.05) <= 0.05 < _binom_cdf(stable_max + 1, k, 0.05)
        # fragile: P(X >= d) <= 5 %, or more than 10 disagreements (then 200 draws cannot be 95 % agreed)
        tail = 1 - _binom_cdf(fragile_min - 1, k, 0.05)
        assert tail <= 0.05 or fragile_min == 11
        assert fragile_min == 11 or 1 - _binom_cdf(fragile_min - 2, k, 0.05) > 0.05
    assert bounds[60] == (0, 7)  # 0.95^60 = 4.6 %: "unanimous after 60 draws" is the first look


def test_sequential_stop_agrees_with_all_draws_and_parallel_equals_serial():
    cohort = measurement_cohort(40, seed=5)
    full = run_response(cohort.measured, cohort.clinical, ResponseConfig(stability={"early_stop_draws": 0}))
    seq = run_response(cohort.measured, cohort.clinical, ResponseConfig())
    par = run_response(cohort.measured, cohort.clinical, ResponseConfig(stability={"workers": 2}))
    pd.testing.assert_frame_equal(seq.kinetics, par.kinetics)
    assert (seq.kinetics["stability_draws"].astype(int) < 200).mean() > 0.3  # the stop does stop
    stable = [c for c in seq.kinetics.columns if c.endswith("_stable") and c.startswith("hpd_")]
    a, b = seq.kinetics[stable].to_numpy().ravel(), full.kinetics[stable].to_numpy().ravel()
    assert (a != b).sum() <= 0.01 * a.size  # the stop's calls = the calls of all 200 draws (rare exceptions)
    labels = [c for c in seq.kinetics.columns if c.startswith("hpd_") and c.count("_") == 1]
    pd.testing.assert_frame_equal(seq.kinetics[labels], full.kinetics[labels])
