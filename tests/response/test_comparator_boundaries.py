"""Every comparator boundary of every HPD definition, both ways (issue 14: mutation-tested gaps).

A threshold ``value`` with comparator ``>=`` must hold at the value and fail just below it; ``>`` must fail at
the value and hold just above; ``<=`` / ``<`` mirror them. A value that is mathematically on the boundary but
off by binary rounding (0.1 + 0.2 vs 0.3, 70/50 = 1.4) counts as on the boundary.
"""

from __future__ import annotations

import pytest

from hpd_imaging.response.hpd import DEFINITIONS, ratio_criterion, value_criterion
from hpd_imaging.settings.hpd import DEFINITION_THRESHOLDS, Threshold, compare

CASES = [
    (key, name, thr) for key, thresholds in DEFINITION_THRESHOLDS.items() for name, thr in thresholds.items()
]
STEP = 1e-6


@pytest.mark.parametrize(("key", "name", "thr"), CASES, ids=[f"{k}.{n}" for k, n, _ in CASES])
def test_every_default_threshold_boundary_both_ways(key: str, name: str, thr: Threshold) -> None:
    assert DEFINITIONS[key].default_thresholds[name] == thr
    v, step = thr.value, STEP * max(1.0, abs(thr.value))
    expected = {
        ">=": (True, True, False),
        ">": (False, True, False),
        "<=": (True, False, True),
        "<": (False, False, True),
    }[thr.comparator]
    assert (thr.holds(v), thr.holds(v + step), thr.holds(v - step)) == expected
    # the criterion built on it says the same
    assert value_criterion(name, v, thr).value is expected[0]
    assert value_criterion(name, v + step, thr).value is expected[1]


@pytest.mark.parametrize(
    ("comparator", "at", "above", "below"),
    [
        (">=", True, True, False),
        (">", False, True, False),
        ("<=", True, False, True),
        ("<", False, False, True),
    ],
)
def test_compare_treats_rounding_on_the_boundary_as_equal(comparator, at, above, below) -> None:
    assert compare(0.1 + 0.2, comparator, 0.3) is at  # 0.30000000000000004
    assert compare(100 * (70 / 50 - 1), comparator, 40.0) is at  # 40.00000000000001 (spec Example 2)
    assert compare(0.3 + 1e-6, comparator, 0.3) is above
    assert compare(0.3 - 1e-6, comparator, 0.3) is below


@pytest.mark.parametrize(("comparator", "at_two"), [(">=", True), (">", False)])
def test_ratio_exactly_two_both_comparators(comparator, at_two) -> None:
    thr = Threshold(value=2.0, comparator=comparator)
    assert ratio_criterion("TGK", 20.2917, 10.14585, thr, "inequality_if_exp_positive").value is at_two
    assert ratio_criterion("TGK", 20.3, 10.14585, thr, "inequality_if_exp_positive").value is True
    assert ratio_criterion("TGK", 20.28, 10.14585, thr, "inequality_if_exp_positive").value is False


@pytest.mark.parametrize(
    ("policy", "exp", "expected"),
    [
        ("inequality_if_exp_positive", 0.0, False),
        ("inequality_if_exp_positive", 1e-15, False),
        ("inequality_if_exp_positive", -1e-15, False),
        ("inequality_if_exp_positive", 0.5, True),
        ("infinite_acceleration", 0.0, False),
        ("infinite_acceleration", 0.5, True),
        ("strict_ratio", 0.5, False),
        ("not_evaluable", 0.5, None),
    ],
)
def test_nonpositive_reference_zero_experimental_rate_both_sides(policy, exp, expected) -> None:
    thr = Threshold(value=2.0)
    for ref in (-5.0, 0.0, 1e-15):  # a reference within rounding of 0 is 0, not a tiny positive rate
        crit = ratio_criterion("TGR", exp, ref, thr, policy)
        if policy == "strict_ratio" and ref != -5.0:
            assert crit.value is None, (ref, crit.text)
        else:
            assert crit.value is expected, (ref, crit.text)
