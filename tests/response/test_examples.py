"""Every worked example of specs/hpd_kinetics.md section 4, asserting every metric and label it states."""

from __future__ import annotations

import pytest
from hpd_examples import labels, lesion, one

from hpd_imaging.response import ResponseConfig

A = pytest.approx


def ex1(cfg: ResponseConfig | None = None) -> dict:
    rows = lesion("ex1", "T1", {"2024-01-02": 50, "2024-03-01": 55, "2024-05-03": 80})
    return one(
        rows,
        [{"patient_id": "ex1", "ici_start_date": "2024-03-08", "treatment_stop_date": "2024-05-03"}],
        cfg,
    )


def test_example1_classic_acceleration():
    r = ex1()
    assert r["t_ref_months"] == A(1.93840, abs=1e-5)
    assert r["t_exp_months"] == A(2.06982, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(15.894, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(72.130, abs=1e-3)
    assert r["tgr_ratio"] == A(4.538, abs=1e-3)
    assert r["delta_tgr"] == A(56.236, abs=1e-3)
    assert r["tgk_ref_mm_per_month"] == A(2.5794, abs=1e-4)
    assert r["tgk_exp_mm_per_month"] == A(12.0784, abs=1e-4)
    assert r["tgk_ratio"] == A(4.683, abs=1e-3)
    assert r["sld_change_pct"] == A(45.4545, abs=1e-4) and r["sld_change_mm"] == 25
    assert r["recist_first_eval"] == "PD" and r["pd1"] is True
    assert r["ttf_days"] == 56 and r["ttf_days"] / 30.4375 == A(1.840, abs=1e-3)
    assert r["pace_exp"] == A(21.96, abs=1e-2) and r["pace_ref"] == A(5.16, abs=1e-2)
    assert r["pace_ratio"] == A(4.26, abs=1e-2)
    assert r["days_pre_baseline_to_ici"] == 66 and r["days_ici_to_first_eval"] == 56
    lab = labels(r)
    assert lab["champiat2017"] == "hpd"
    assert lab["saada_bouzid2017"] == "hpd"
    assert lab["ferrara2018"] == "hpd"
    assert lab["kas2020"] == "no_hpd"
    assert lab["kato2017"] == "no_hpd" and "45.455 % fails > 50 %" in r["hpd_kato2017_reason"]
    assert lab["kim2019"] == "hpd"
    assert lab["lo_russo2019"] == "no_hpd" and r["hpd_lo_russo2019_reason"].startswith("1 of 5")
    assert lab["matos2020"] == "hpd" and "day 56 within" in r["hpd_matos2020_reason"]
    assert lab["gandara2021"] == "no_hpd"


def test_example1_matos_window_boundary_day56_vs_55():
    """Day 56 is exactly 8 weeks: inside a <= 56 d window, outside a <= 55 d (or < 56 d) window."""
    from hpd_imaging.response.config import DefinitionParams, Threshold

    for comparator, value, expected in (("<=", 56, "hpd"), ("<", 56, "no_hpd"), ("<=", 55, "no_hpd")):
        cfg = ResponseConfig(
            definitions={
                "matos2020": DefinitionParams(
                    thresholds={"window_days": Threshold(value=value, comparator=comparator)}
                )
            }
        )
        assert labels(ex1(cfg))["matos2020"] == expected


def ex2(cfg: ResponseConfig | None = None) -> dict:
    rows = lesion("ex2", "T1", {"2024-01-10": 60, "2024-03-10": 50, "2024-05-05": 70})
    return one(rows, [{"patient_id": "ex2", "ici_start_date": "2024-03-15"}], cfg)


def test_example2_negative_reference():
    r = ex2()
    assert r["t_ref_months"] == A(1.97125, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(-24.230, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(73.091, abs=1e-3)
    assert r["tgr_ratio"] == A(-3.017, abs=1e-3)
    assert r["delta_tgr"] == A(97.321, abs=1e-3)
    assert r["tgk_ref_mm_per_month"] == A(-5.0729, abs=1e-4)
    assert r["tgk_exp_mm_per_month"] == A(10.8705, abs=1e-4)
    assert r["tgk_ratio"] == A(-2.143, abs=1e-3)
    assert r["sld_change_pct"] == A(40.0) and r["sld_change_mm"] == 20 and r["pd1"] is True
    lab = labels(r)
    assert lab["champiat2017"] == "hpd" and "inequality form met" in r["hpd_champiat2017_reason"]
    assert lab["saada_bouzid2017"] == "hpd"
    assert lab["ferrara2018"] == "hpd"
    assert lab["kas2020"] == "no_hpd"
    assert lab["kato2017"] == "no_hpd"  # +40 % is not > 50 %
    assert lab["matos2020"] == "hpd"  # exactly +40.0 % meets ">= 40 %", eval on day 51


def test_example2_strict_ratio_policy_says_no():
    r = ex2(ResponseConfig(nonpositive_reference_policy="strict_ratio"))
    lab = labels(r)
    assert lab["champiat2017"] == "no_hpd" and "strict_ratio" in r["hpd_champiat2017_reason"]
    assert lab["saada_bouzid2017"] == "no_hpd"
    assert lab["ferrara2018"] == "hpd"  # ΔTGR is well defined whatever the policy


def test_example2_exactly_40_pct_both_ways():
    from hpd_imaging.response.config import DefinitionParams, Threshold

    strict = ResponseConfig(
        definitions={"matos2020": DefinitionParams(thresholds={"pct_a": Threshold(value=40, comparator=">")})}
    )
    assert labels(ex2(strict))["matos2020"] == "no_hpd"
    assert labels(ex2())["matos2020"] == "hpd"


def ex3(cfg: ResponseConfig | None = None) -> dict:
    rows = lesion("ex3", "T1", {"2024-02-01": 40, "2024-04-01": 40, "2024-06-03": 52})
    return one(rows, [{"patient_id": "ex3", "ici_start_date": "2024-04-03"}], cfg)


def test_example3_zero_reference_growth():
    r = ex3()
    assert r["tgr_ref_pct_per_month"] == 0.0 and r["tgk_ref_mm_per_month"] == 0.0
    assert r["t_exp_months"] == A(2.06982, abs=1e-5)
    assert r["tgr_exp_pct_per_month"] == A(46.268, abs=1e-3)
    assert r["delta_tgr"] == A(46.268, abs=1e-3)
    assert r["tgk_exp_mm_per_month"] == A(5.7976, abs=1e-4)
    assert r["tgr_ratio"] is None and r["tgk_ratio"] is None  # ÷0: empty cells
    assert r["sld_change_pct"] == A(30.0) and r["sld_change_mm"] == 12 and r["pd1"] is True
    lab = labels(r)
    assert lab["champiat2017"] == "hpd" and lab["saada_bouzid2017"] == "hpd"
    assert lab["ferrara2018"] == "no_hpd" and lab["kas2020"] == "no_hpd" and lab["kato2017"] == "no_hpd"


def test_example3_strict_ratio_not_evaluable():
    lab = labels(ex3(ResponseConfig(nonpositive_reference_policy="strict_ratio")))
    assert lab["champiat2017"] == "not_evaluable" and lab["saada_bouzid2017"] == "not_evaluable"


def ex4(cfg: ResponseConfig | None = None) -> dict:
    rows = lesion("ex4", "T1", {"2024-01-01": 20, "2024-03-01": 40, "2024-04-30": 80})
    return one(
        rows,
        [{"patient_id": "ex4", "ici_start_date": "2024-03-04", "treatment_stop_date": "2024-04-30"}],
        cfg,
    )


def test_example4_tgk_artefact_ratio_exactly_two():
    r = ex4()
    assert r["t_ref_months"] == A(1.97125, abs=1e-5) and r["t_exp_months"] == A(1.97125, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(187.164, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(187.164, abs=1e-3)
    assert r["tgr_ratio"] == A(1.0) and r["delta_tgr"] == A(0.0, abs=1e-9)
    assert r["tgk_ref_mm_per_month"] == A(10.1458, abs=1e-4)
    assert r["tgk_exp_mm_per_month"] == A(20.2917, abs=1e-4)
    assert r["tgk_ratio"] == 2.0  # exactly
    assert r["ttf_days"] == 57
    assert r["pace_exp"] == A(50.73, abs=1e-2) and r["pace_ref"] == A(50.73, abs=1e-2)
    lab = labels(r)
    assert lab["saada_bouzid2017"] == "hpd"
    assert lab["champiat2017"] == "no_hpd" and lab["ferrara2018"] == "no_hpd"
    assert lab["kato2017"] == "no_hpd" and "pace ratio 1.000 fails > 2" in r["hpd_kato2017_reason"]
    assert lab["matos2020"] == "no_hpd" and "day 57 outside" in r["hpd_matos2020_reason"]
    assert lab["gandara2021"] == "no_hpd"


def test_example4_boundary_ratio_two_both_ways():
    from hpd_imaging.response.config import DefinitionParams, Threshold

    strict = ResponseConfig(
        definitions={
            "saada_bouzid2017": DefinitionParams(thresholds={"tgk_ratio": Threshold(value=2, comparator=">")})
        }
    )
    assert labels(ex4(strict))["saada_bouzid2017"] == "no_hpd"
    mm = ResponseConfig(kato_pace_basis="absolute")
    r = ex4(mm)
    assert r["pace_ratio"] == 2.0 and labels(r)["kato2017"] == "no_hpd"  # 2.0 is not > 2


def test_example4_matos_window_day57():
    from hpd_imaging.response.config import DefinitionParams, Threshold

    wide = ResponseConfig(
        definitions={
            "matos2020": DefinitionParams(
                thresholds={"window_days": Threshold(value=60.875, comparator="<=")}
            )
        }
    )
    assert labels(ex4(wide))["matos2020"] == "hpd"
    assert labels(ex4())["matos2020"] == "no_hpd"
