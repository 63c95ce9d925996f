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
    from hpd_imaging.settings.hpd import DefinitionParams, Threshold

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
    assert r["t_ref_months"] == A(1.97125, abs=1e-5) and r["t_exp_months"] == A(1.83984, abs=1e-5)
    assert r["days_ici_to_first_eval"] == 51
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
    from hpd_imaging.settings.hpd import DefinitionParams, Threshold

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
    from hpd_imaging.settings.hpd import DefinitionParams, Threshold

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
    from hpd_imaging.settings.hpd import DefinitionParams, Threshold

    wide = ResponseConfig(
        definitions={
            "matos2020": DefinitionParams(
                thresholds={"window_days": Threshold(value=60.875, comparator="<=")}
            )
        }
    )
    assert labels(ex4(wide))["matos2020"] == "hpd"
    assert labels(ex4())["matos2020"] == "no_hpd"


# ---- Example 5: lesion disappearance ----------------------------------------------------------------------


def test_example5a_all_nonnodal_targets_gone():
    rows = lesion("ex5", "T1", {"2024-01-05": 30, "2024-03-05": 36, "2024-05-06": 0})
    r = one(rows, [{"patient_id": "ex5", "ici_start_date": "2024-03-06"}])
    assert r["t_ref_months"] == A(1.97125, abs=1e-5) and r["t_exp_months"] == A(2.03696, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(31.979, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == -100.0  # the limit, no log(0) error
    assert r["delta_tgr"] == A(-131.979, abs=1e-3)
    assert r["tgk_exp_mm_per_month"] == A(-17.673, abs=1e-3)
    assert r["tgr_ratio"] == A(-3.127, abs=1e-3)
    assert r["recist_first_eval"] == "CR" and r["pd1"] is False
    assert "hpd" not in labels(r).values()


def test_example5b_node_below_10mm_is_cr():
    rows = lesion("ex5b", "L1", {"2024-01-05": 16, "2024-03-05": 20, "2024-05-06": 0}, organ="liver")
    rows += lesion(
        "ex5b", "N1", {"2024-01-05": 14, "2024-03-05": 16, "2024-05-06": 8}, organ="lymph_node", node=True
    )
    r = one(rows, [{"patient_id": "ex5b", "ici_start_date": "2024-03-06"}])
    assert r["n_targets"] == 2 and r["sld_baseline_mm"] == 36 and r["sld_first_eval_mm"] == 8
    assert r["t_exp_months"] == A(2.03696, abs=1e-5)
    assert r["tgr_exp_pct_per_month"] == A(-89.087, abs=1e-3)
    assert r["recist_first_eval"] == "CR"  # the sum is 8 mm > 0 but the node is < 10 mm
    assert "hpd" not in labels(r).values()


# ---- Example 6: progression by new lesions only -----------------------------------------------------------


def ex6_rows() -> list[dict]:
    rows = lesion("ex6", "T1", {"2024-01-15": 45, "2024-03-15": 48, "2024-05-06": 49}, organ="lung")
    for i in range(2):
        rows += lesion("ex6", f"NL{i}", {"2024-05-06": 8}, organ="lung")
    for i in range(3):
        rows += lesion("ex6", f"NH{i}", {"2024-05-06": 12}, organ="liver")
    return rows


def ex6(**clin) -> dict:
    c = {
        "patient_id": "ex6",
        "ici_start_date": "2024-03-18",
        "treatment_stop_date": "2024-05-07",
        "ecog_baseline": 1,
        "ecog_worst_first_2_months": 3,
    }
    c.update(clin)
    return one(ex6_rows(), [c])


def test_example6_new_lesions_only():
    r = ex6()
    assert r["tgr_ref_pct_per_month"] == A(10.320, abs=1e-3)
    assert r["t_exp_months"] == A(1.70842, abs=1e-5)
    assert r["tgr_exp_pct_per_month"] == A(3.687, abs=1e-3)
    assert r["tgr_ratio"] == A(0.357, abs=1e-3)
    assert r["delta_tgr"] == A(-6.633, abs=1e-3)
    assert r["tgk_ref_mm_per_month"] == A(1.5219, abs=1e-4) and r["tgk_exp_mm_per_month"] == A(
        0.5853, abs=1e-4
    )
    assert r["tgk_ratio"] == A(0.385, abs=1e-3)
    assert r["sld_change_pct"] == A(2.083, abs=1e-3)
    assert r["recist_first_eval"] == "PD" and r["pd1"] is True and r["n_new_lesions_first_eval"] == 5
    assert r["ttf_days"] == 50
    lab = labels(r)
    for key in (
        "champiat2017",
        "ferrara2018",
        "kas2020",
        "saada_bouzid2017",
        "kato2017",
        "matos2020",
        "gandara2021",
    ):
        assert lab[key] == "no_hpd", key
    assert lab["lo_russo2019"] == "hpd" and r["hpd_lo_russo2019_reason"].startswith("RECIST PD")
    assert "4 of 5 criteria met" in r["hpd_lo_russo2019_reason"]


def test_example6_lo_russo_just_misses_without_ecog_change():
    r = ex6(ecog_worst_first_2_months=2)  # worsening 1 < 2: 3 of 5 still (TTF, new in lung, new organ)
    assert labels(r)["lo_russo2019"] == "hpd" and "3 of 5" in r["hpd_lo_russo2019_reason"]
    r = ex6(ecog_worst_first_2_months=2, treatment_stop_date="")  # censored TTF: 2 of 5 -> no
    assert labels(r)["lo_russo2019"] == "no_hpd" and "2 of 5" in r["hpd_lo_russo2019_reason"]


# ---- Example 7: diameters vs measured volumes -------------------------------------------------------------


def ex7(cfg: ResponseConfig | None = None) -> dict:
    d = ("2024-01-08", "2024-03-04", "2024-05-06")
    rows = lesion(
        "ex7",
        "A",
        dict(zip(d, (30, 32, 34), strict=True)),
        volumes=dict(zip(d, (10000.0, 12000.0, 24000.0), strict=True)),
    )
    rows += lesion(
        "ex7",
        "B",
        dict(zip(d, (20, 22, 24), strict=True)),
        volumes=dict(zip(d, (3000.0, 3600.0, 4200.0), strict=True)),
    )
    return one(rows, [{"patient_id": "ex7", "ici_start_date": "2024-03-11"}], cfg)


def test_example7_diameters_vs_volumes():
    r = ex7()
    assert (r["sld_pre_baseline_mm"], r["sld_baseline_mm"], r["sld_first_eval_mm"]) == (50, 54, 58)
    assert r["volume_baseline_mm3"] == 15600.0 and r["volume_first_eval_mm3"] == 28200.0
    assert r["t_ref_months"] == A(1.83984, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(13.371, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(10.913, abs=1e-3)
    assert r["tgr_ratio"] == A(0.816, abs=1e-3)
    assert r["delta_tgr"] == A(-2.458, abs=1e-3)
    assert r["tgk_ratio"] == A(0.889, abs=1e-3)
    assert r["recist_first_eval"] == "SD" and r["pd1"] is False
    assert r["vol_tgr_ref_pct_per_month"] == A(10.417, abs=1e-3)
    assert r["vol_tgr_exp_pct_per_month"] == A(33.115, abs=1e-3)
    assert r["vol_tgr_ratio"] == A(3.179, abs=1e-3)
    assert r["vol_delta_tgr"] == A(22.697, abs=1e-3)
    assert r["volume_change_pct"] == A(80.769, abs=1e-3)
    assert r["vol_tgk_ref_mm3_per_month"] == A(1413.2, abs=0.1)
    assert r["vol_tgk_exp_mm3_per_month"] == A(6087.5, abs=0.1)
    assert r["vol_tgk_ratio"] == A(4.308, abs=1e-3)
    assert r["volumetric_response_first_eval"] == "PD" and r["vol_pd1"] is True
    lab = labels(r)
    assert lab["champiat2017_vol"] == "hpd"
    assert lab["ferrara2018_vol"] == "no_hpd"
    assert lab["saada_bouzid2017_vol"] == "hpd"
    for key in (
        "champiat2017",
        "saada_bouzid2017",
        "ferrara2018",
        "kas2020",
        "kato2017",
        "matos2020",
        "lahmar2016",
        "sasaki2019",
        "ji2019",
        "refae2020",
        "tunali2019",
        "kim2019",
    ):
        assert lab[key] == "no_hpd", key


def test_example7_sum_of_cubed_diameters():
    r = ex7(ResponseConfig(kinetic_basis="sum_ld_cubed"))
    assert (
        r["kinetic_burden_pre_baseline"],
        r["kinetic_burden_baseline"],
        r["kinetic_burden_first_eval"],
    ) == (35000.0, 43416.0, 53128.0)
    assert r["tgr_ref_pct_per_month"] == A(12.43, abs=1e-2)
    assert r["tgr_exp_pct_per_month"] == A(10.24, abs=1e-2)
    assert r["tgr_ratio"] == A(0.825, abs=1e-3)


def test_example7_volume_basis_equals_vol_columns():
    r = ex7(ResponseConfig(kinetic_basis="volume_power1"))
    assert r["tgr_ref_pct_per_month"] == A(10.417, abs=1e-3) and r["tgr_ratio"] == A(3.179, abs=1e-3)


# ---- Example 8: Kato-positive -----------------------------------------------------------------------------


def ex8(**clin) -> dict:
    rows = lesion("ex8", "T1", {"2023-11-01": 40, "2024-01-02": 44, "2024-02-27": 70})
    c = {
        "patient_id": "ex8",
        "ici_start_date": "2024-01-05",
        "treatment_stop_date": "2024-02-28",
        "ecog_baseline": 1,
        "ecog_worst_first_2_months": 1,
    }
    c.update(clin)
    return one(rows, [c])


def test_example8_kato_positive():
    r = ex8()
    assert r["t_ref_months"] == A(2.03696, abs=1e-5) and r["t_exp_months"] == A(1.83984, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(15.070, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(113.206, abs=1e-3)
    assert r["tgr_ratio"] == A(7.512, abs=1e-3)
    assert r["delta_tgr"] == A(98.136, abs=1e-3)
    assert r["tgk_exp_mm_per_month"] == A(14.1317, abs=1e-4) and r["tgk_ref_mm_per_month"] == A(
        1.9637, abs=1e-4
    )
    assert r["tgk_ratio"] == A(7.196, abs=1e-3)
    assert r["sld_change_pct"] == A(59.091, abs=1e-3) and r["sld_change_mm"] == 26 and r["pd1"] is True
    assert r["ttf_days"] == 54
    assert r["pace_exp"] == A(32.117, abs=1e-3) and r["pace_ref"] == A(4.909, abs=1e-3)
    assert r["pace_ratio"] == A(6.54, abs=1e-2)
    assert r["days_pre_baseline_to_ici"] == 65 and r["days_ici_to_first_eval"] == 53
    assert r["ttf_days"] / 30.4375 == A(1.774, abs=1e-3)
    lab = labels(r)
    for key in ("kato2017", "champiat2017", "ferrara2018", "saada_bouzid2017", "kim2019", "matos2020"):
        assert lab[key] == "hpd", key
    for key in ("kas2020", "lo_russo2019", "gandara2021"):
        assert lab[key] == "no_hpd", key
    assert "2 of 5" in r["hpd_lo_russo2019_reason"]
    assert "first on day 53" in r["hpd_gandara2021_reason"]


def test_example8_lo_russo_unknown_ecog_is_not_evaluable():
    """With ECOG unknown, 2 met + 1 unknown could still reach 3: not evaluable, not a silent 'no'."""
    r = ex8(ecog_baseline="", ecog_worst_first_2_months="")
    assert labels(r)["lo_russo2019"] == "not_evaluable"


def test_example8_kim_window_boundary_84_days():
    """Kim CG windows: pre-baseline >= -84 d before ICI; a later ICI start puts it at 84 / 85 d."""
    rows = lesion("k", "T1", {"2023-11-01": 40, "2024-01-02": 44, "2024-02-27": 70})
    inside = one(
        rows, [{"patient_id": "k", "ici_start_date": "2024-01-24", "treatment_stop_date": "2024-02-28"}]
    )
    outside = one(
        rows, [{"patient_id": "k", "ici_start_date": "2024-01-25", "treatment_stop_date": "2024-02-28"}]
    )
    assert inside["days_pre_baseline_to_ici"] == 84 and labels(inside)["kim2019_tgr"] == "hpd"
    assert outside["days_pre_baseline_to_ici"] == 85 and labels(outside)["kim2019_tgr"] == "not_evaluable"


# ---- Example 9: Matos without a pre-baseline scan ---------------------------------------------------------


def ex9(cfg: ResponseConfig | None = None) -> dict:
    rows = lesion("ex9", "T1", {"2024-02-01": 60, "2024-03-29": 75}, organ="lung")
    rows += lesion("ex9", "NA1", {"2024-03-29": 11}, organ="adrenal")
    rows += lesion("ex9", "NB1", {"2024-03-29": 14}, organ="bone")
    return one(rows, [{"patient_id": "ex9", "ici_start_date": "2024-02-05"}], cfg)


@pytest.mark.parametrize(
    "rule", ["two_in_involved_or_new_organ", "new_lesions_in_two_organs", "any_multiple"]
)
def test_example9_matos_without_prebaseline(rule):
    r = ex9(ResponseConfig(matos_new_lesion_rule=rule))
    assert r["days_ici_to_first_eval"] == 53 and r["sld_change_pct"] == A(25.0) and r["sld_change_mm"] == 15
    assert r["pd1"] is True and r["n_new_organs_first_eval"] == 2
    assert r["tgr_ratio"] is None and r["delta_tgr"] is None and r["tgk_ratio"] is None
    lab = labels(r)
    assert lab["matos2020"] == "hpd"
    for key in ("champiat2017", "saada_bouzid2017", "ferrara2018", "kas2020", "kato2017"):
        assert lab[key] == "not_evaluable" and "no pre-baseline scan" in r[f"hpd_{key}_reason"], key
    assert lab["lo_russo2019"] == "no_hpd" and lab["gandara2021"] == "no_hpd"


def test_example9_matos_10mm_variant():
    from hpd_imaging.settings.hpd import DefinitionParams, Threshold

    def cfg(mm: float) -> ResponseConfig:
        return ResponseConfig(
            definitions={
                "matos2020": DefinitionParams(
                    thresholds={"min_abs_increase_mm": Threshold(value=mm, comparator=">=")}
                )
            }
        )

    assert labels(ex9(cfg(10)))["matos2020"] == "hpd"
    assert labels(ex9(cfg(15)))["matos2020"] == "hpd"  # +15 mm exactly on the boundary
    assert labels(ex9(cfg(15.5)))["matos2020"] == "no_hpd"


# ---- Example 10: convention sensitivity at the Ferrara threshold ------------------------------------------


def ex10(cfg: ResponseConfig | None = None) -> dict:
    rows = lesion("ex10", "T1", {"2024-02-05": 40, "2024-04-01": 42, "2024-05-27": 55.5})
    return one(rows, [{"patient_id": "ex10", "ici_start_date": "2024-04-15"}], cfg)


def test_example10_experimental_period_from_baseline_scan():
    r = ex10()
    assert r["t_ref_months"] == A(1.83984, abs=1e-5) and r["t_exp_months"] == A(1.83984, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(8.281, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(57.533, abs=1e-3)
    assert r["delta_tgr"] == A(49.252, abs=1e-3)
    assert r["tgr_ratio"] == A(6.948, abs=1e-3)
    assert r["tgk_ratio"] == A(6.750, abs=1e-3)
    assert r["sld_change_pct"] == A(32.143, abs=1e-3) and r["sld_change_mm"] == 13.5 and r["pd1"] is True
    lab = labels(r)
    assert (
        lab["ferrara2018"] == "no_hpd" and lab["champiat2017"] == "hpd" and lab["saada_bouzid2017"] == "hpd"
    )
    assert lab["kas2020"] == "no_hpd" and lab["kato2017"] == "no_hpd" and lab["matos2020"] == "no_hpd"


def test_example10_experimental_period_from_ici_start():
    r = ex10(ResponseConfig(exp_period_start="ici_start"))
    assert r["t_exp_days"] == 42 and r["t_exp_months"] == A(1.37988, abs=1e-5)
    assert r["tgr_ref_pct_per_month"] == A(8.281, abs=1e-3)  # the reference period does not move
    assert r["tgr_exp_pct_per_month"] == A(83.300, abs=1e-3)
    assert r["delta_tgr"] == A(75.019, abs=1e-3)
    lab = labels(r)
    assert lab["ferrara2018"] == "hpd" and lab["champiat2017"] == "hpd"


def test_example10_thirty_day_months():
    r = ex10(ResponseConfig(month_days=30.0))
    assert r["tgr_ref_pct_per_month"] == A(8.157, abs=1e-3)
    assert r["tgr_exp_pct_per_month"] == A(56.507, abs=1e-3)
    assert r["delta_tgr"] == A(48.35, abs=1e-2)
    assert r["tgr_ratio"] == A(6.927, abs=1e-3)
    assert labels(r)["ferrara2018"] == "no_hpd" and labels(r)["champiat2017"] == "hpd"


# ---- Example 11: Gandara fast progression -----------------------------------------------------------------


def test_example11_gandara_fast_progression():
    rows = lesion("ex11", "T1", {"2024-01-02": 50, "2024-02-13": 78})
    r = one(rows, [{"patient_id": "ex11", "ici_start_date": "2024-01-04"}])
    assert r["days_ici_to_first_eval"] == 40 and r["sld_change_pct"] == A(56.0) and r["pd1"] is True
    lab = labels(r)
    assert lab["gandara2021"] == "hpd" and "day 40" in r["hpd_gandara2021_reason"]
    assert lab["matos2020"] == "hpd"  # branch A, day 40
    for key in ("champiat2017", "saada_bouzid2017", "ferrara2018", "kas2020"):
        assert lab[key] == "not_evaluable", key
    # The summary table of the spec shows "-" for Kato here but NE for Example 9: we follow the spec's rule
    # (section 8: a missing input -> NE) consistently, so Kato, which needs a pre-baseline scan, is NE.
    assert lab["kato2017"] == "not_evaluable"
    assert lab["lo_russo2019"] == "no_hpd"


@pytest.mark.parametrize(
    ("death", "expected"),
    [("2024-03-14", "hpd"), ("2024-03-28", "hpd"), ("2024-03-29", "no_hpd"), ("2024-04-03", "no_hpd")],
)
def test_example11_death_without_post_baseline_scan(death, expected):
    """ICI 2024-01-04: day 70 and day 84 (boundary) -> FP; day 85 and day 90 -> not FP."""
    rows = lesion("ex11v", "T1", {"2024-01-02": 50})
    r = one(
        rows,
        [
            {
                "patient_id": "ex11v",
                "ici_start_date": "2024-01-04",
                "death_date": death,
                "death_from_progression": True,
            }
        ],
    )
    assert labels(r)["gandara2021"] == expected
    assert labels(r)["champiat2017"] == "not_evaluable"


def test_example11_gandara_scan_day_42_vs_43():
    for date, expected in (("2024-02-15", "hpd"), ("2024-02-16", "no_hpd")):
        r = one(
            lesion("g", "T1", {"2024-01-02": 50, date: 78}),
            [{"patient_id": "g", "ici_start_date": "2024-01-04"}],
        )
        assert labels(r)["gandara2021"] == expected, date


def test_early_death_policy():
    rows = lesion("d", "T1", {"2023-11-01": 40, "2024-01-02": 44})
    clin = [
        {
            "patient_id": "d",
            "ici_start_date": "2024-01-05",
            "death_date": "2024-02-10",
            "death_from_progression": True,
        }
    ]
    assert labels(one(rows, clin))["ferrara2018"] == "not_evaluable"
    assert labels(one(rows, clin, ResponseConfig(early_death_policy="hpd")))["ferrara2018"] == "hpd"
