"""Each knob of pipelines/hpd_definitions.yaml changes behaviour (spec section 7): one test per knob, each
showing the default and the alternative on a hand-computed patient."""

from __future__ import annotations

import datetime as dt

import pytest
from hpd_examples import labels, lesion, one, run

from hpd_imaging.response import ResponseConfig
from hpd_imaging.settings.hpd import DefinitionParams

A = pytest.approx
PRE, BASE, EVAL = "2024-01-02", "2024-03-01", "2024-05-03"  # Example 1 dates; ICI 2024-03-08, eval day 56
CLIN = {"patient_id": "p", "ici_start_date": "2024-03-08", "treatment_stop_date": "2024-05-03"}


def ex1_rows(**kw) -> list[dict]:
    return lesion("p", "T1", {PRE: 50, BASE: 55, EVAL: 80}, **kw)


def new_lesions(n: int, organ: str, d: float = 12, prefix: str = "N") -> list[dict]:
    rows: list[dict] = []
    for i in range(n):
        rows += lesion("p", f"{prefix}{organ}{i}", {EVAL: d}, organ=organ)
    return rows


def test_pd1_mode_targets_only_ignores_new_lesions():
    # Example 6 pattern: target +2 %, new lesions -> PD overall, not PD by targets only
    rows = lesion("p", "T1", {PRE: 45, BASE: 48, EVAL: 49}) + new_lesions(2, "liver")
    assert one(rows, [CLIN])["pd1"] is True
    r = one(rows, [CLIN], ResponseConfig(pd1_mode="targets_only"))
    assert r["pd1"] is False and r["recist_first_eval"] == "PD"
    r = one(rows, [CLIN], ResponseConfig(pd1_mode="irecist_iupd"))
    assert r["pd1"] is True and r["irecist_first_eval"] == "iUPD"


def test_burden_lesion_set_adds_new_measurable_lesions():
    rows = ex1_rows() + new_lesions(1, "liver", d=20)
    assert one(rows, [CLIN])["burden_change_pct"] == A(100 * 25 / 55)
    r = one(rows, [CLIN], ResponseConfig(burden_lesion_set="targets_plus_new"))
    assert r["kinetic_burden_first_eval"] == 100 and r["burden_change_pct"] == A(100 * 45 / 55)
    assert r["sld_first_eval_mm"] == 80  # the RECIST sum is unchanged
    assert labels(r)["kato2017"] == "hpd"  # +81.8 % > 50 %, pace ratio > 2, TTF 56 d


def test_kinetic_basis_sphere_equivalent_diameter():
    import math

    vols = {d: math.pi / 6 * x**3 for d, x in ((PRE, 40.0), (BASE, 44.0), (EVAL, 70.0))}
    rows = ex1_rows(volumes=vols)
    r = one(rows, [CLIN], ResponseConfig(kinetic_basis="sphere_equiv_diameter_from_volume"))
    assert r["kinetic_burden_baseline"] == A(44.0) and r["kinetic_burden_first_eval"] == A(70.0)
    assert r["tgr_exp_pct_per_month"] == A(100 * ((70 / 44) ** (3 / (63 / 30.4375)) - 1))
    assert one(rows, [CLIN])["kinetic_burden_baseline"] == 55


def test_matos_new_lesion_rules_differ():
    # +25 % with 2 new lesions, both in the liver (a new organ): rule 1 and any_multiple yes, 'two organs' no
    rows = lesion("p", "T1", {BASE: 60, EVAL: 75}) + new_lesions(2, "liver")
    clin = [{"patient_id": "p", "ici_start_date": "2024-03-08"}]
    got = {
        rule: labels(one(rows, clin, ResponseConfig(matos_new_lesion_rule=rule)))["matos2020"]
        for rule in ("two_in_involved_or_new_organ", "new_lesions_in_two_organs", "any_multiple")
    }
    assert got == {
        "two_in_involved_or_new_organ": "hpd",
        "new_lesions_in_two_organs": "no_hpd",
        "any_multiple": "hpd",
    }
    # one new lesion in a new organ: 'spread to a new organ' only
    rows = lesion("p", "T1", {BASE: 60, EVAL: 75}) + new_lesions(1, "liver")
    # (issue 14: the default reading is now 'new lesions in >= 2 organs'; the 'new organ' reading is named)
    legacy = ResponseConfig(matos_new_lesion_rule="two_in_involved_or_new_organ")
    assert labels(one(rows, clin, legacy))["matos2020"] == "hpd"
    assert labels(one(rows, clin))["matos2020"] == "no_hpd"
    assert (
        labels(one(rows, clin, ResponseConfig(matos_new_lesion_rule="any_multiple")))["matos2020"] == "no_hpd"
    )


def test_matos_require_ttf():
    clin = dict(CLIN, treatment_stop_date="")  # on treatment: TTF censored
    assert labels(one(ex1_rows(), [clin]))["matos2020"] == "hpd"
    assert labels(one(ex1_rows(), [clin], ResponseConfig(matos_require_ttf=True)))["matos2020"] == "no_hpd"
    assert labels(one(ex1_rows(), [CLIN], ResponseConfig(matos_require_ttf=True)))["matos2020"] == "hpd"


def test_kim_composite():
    # Example 1 without a stop date: both ratios >= 2, PD, TTF censored
    clin = [dict(CLIN, treatment_stop_date="")]
    assert labels(one(ex1_rows(), clin))["kim2019"] == "no_hpd"  # reconstruction needs TTF < 2 mo
    assert labels(one(ex1_rows(), clin, ResponseConfig(kim_composite="any_of")))["kim2019"] == "hpd"
    assert labels(one(ex1_rows(), clin, ResponseConfig(kim_composite="all_of")))["kim2019"] == "no_hpd"
    assert labels(one(ex1_rows(), [CLIN], ResponseConfig(kim_composite="all_of")))["kim2019"] == "hpd"


def test_kim_y_tgk_basis():
    # diameters: TGKR 4.683; volumes 1000 -> 1000 -> 2000: volumetric TGK_ref = 0 -> inequality form met
    # volumes 1000 -> 1500 -> 2000: volumetric TGKR = (500/2.0698)/(500/1.9384) = 0.937 -> fails
    vols = {
        PRE: 1000.0,
        BASE: 1500.0,
        EVAL: 2400.0,
    }  # +60 % volume; TGKR_V = (900/2.0698)/(500/1.9384) = 1.69
    rows = ex1_rows(volumes=vols)
    r = one(rows, [CLIN])
    assert r["vol_tgk_ratio"] == A(1.6857, abs=1e-3) and labels(r)["kim_y2019_volumetric"] == "no_hpd"
    r = one(rows, [CLIN], ResponseConfig(kim_y_tgk_basis="diameter"))
    assert labels(r)["kim_y2019_volumetric"] == "hpd"


def test_min_abs_volume_increase():
    vols = {PRE: 1000.0, BASE: 1000.0, EVAL: 1800.0}  # x1.8 >= 1.728, +800 mm3
    rows = ex1_rows(volumes=vols)
    assert one(rows, [CLIN])["vol_pd1"] is True
    assert one(rows, [CLIN], ResponseConfig(min_abs_volume_increase_mm3=800))["vol_pd1"] is True
    assert one(rows, [CLIN], ResponseConfig(min_abs_volume_increase_mm3=801))["vol_pd1"] is False


def test_volumetric_pd_and_pr_ratios():
    rows = ex1_rows(volumes={PRE: 1000.0, BASE: 1000.0, EVAL: 1600.0})
    assert one(rows, [CLIN])["vol_pd1"] is False
    assert one(rows, [CLIN], ResponseConfig(volumetric_pd_ratio=1.6))["vol_pd1"] is True
    rows = ex1_rows(volumes={PRE: 1000.0, BASE: 1000.0, EVAL: 400.0})
    assert one(rows, [CLIN])["volumetric_response_first_eval"] == "SD"
    assert (
        one(rows, [CLIN], ResponseConfig(volumetric_pr_ratio=0.4))["volumetric_response_first_eval"] == "PR"
    )


def test_per_definition_require_pd1_and_policy():
    # Example 7 pattern: TGK ratio >= 2 without RECIST PD (+8 %)
    rows = lesion("p", "T1", {PRE: 50, BASE: 51, EVAL: 55})
    r = one(rows, [CLIN])
    assert r["pd1"] is False and labels(r)["saada_bouzid2017"] == "hpd"
    cfg = ResponseConfig(definitions={"saada_bouzid2017": DefinitionParams(require_pd1=True)})
    assert labels(one(rows, [CLIN], cfg))["saada_bouzid2017"] == "no_hpd"
    # Example 2 (negative reference): a per-key policy overrides the global one for that key only
    rows = lesion("p", "T1", {"2024-01-10": 60, "2024-03-10": 50, "2024-05-05": 70})
    clin = [{"patient_id": "p", "ici_start_date": "2024-03-15"}]
    cfg = ResponseConfig(
        definitions={"champiat2017": DefinitionParams(nonpositive_reference_policy="not_evaluable")}
    )
    lab = labels(one(rows, clin, cfg))
    assert lab["champiat2017"] == "not_evaluable" and lab["kanjanapan2019"] == "hpd"
    lab = labels(one(rows, clin, ResponseConfig(nonpositive_reference_policy="infinite_acceleration")))
    assert lab["champiat2017"] == "hpd"


@pytest.mark.parametrize(
    ("cfg", "final", "expected"),
    [
        (ResponseConfig(), 60.0, "PD"),
        (ResponseConfig(pd_pct=25), 60.0, "SD"),
        (ResponseConfig(pd_min_abs_mm=11), 60.0, "SD"),
        (ResponseConfig(), 36.0, "SD"),  # -28 %
        (ResponseConfig(pr_pct=28), 36.0, "PR"),
    ],
)
def test_recist_pd_pr_constants(cfg, final, expected):
    r = one(lesion("p", "T1", {PRE: 50, BASE: 50, EVAL: final}), [CLIN], cfg)
    assert r["recist_first_eval"] == expected


def test_target_selection_constants():
    rows = lesion("p", "L1", {BASE: 12, EVAL: 12}, organ="lung") + lesion(
        "p", "L2", {BASE: 11, EVAL: 11}, organ="lung"
    )
    rows += lesion("p", "L3", {BASE: 9, EVAL: 9}, organ="liver")
    rows += lesion("p", "N1", {BASE: 14, EVAL: 14}, organ="node", node=True)
    clin = [{"patient_id": "p", "ici_start_date": "2024-03-08"}]

    def targets(cfg: ResponseConfig) -> set[str]:
        t = run(rows, clin, cfg).targets
        return set(t.loc[t["role"] == "target", "lesion_id"])

    assert targets(ResponseConfig()) == {"L1", "L2"}
    assert targets(ResponseConfig(measurable_min_mm=9)) == {"L1", "L2", "L3"}
    assert targets(ResponseConfig(node_measurable_min_sa_mm=14)) == {"L1", "L2", "N1"}
    assert targets(ResponseConfig(max_targets_per_organ=1)) == {"L1"}
    assert targets(ResponseConfig(max_targets_total=1)) == {"L1"}
    t = run(rows, clin, ResponseConfig(node_pathological_min_sa_mm=14.5)).targets.set_index("lesion_id")
    assert t.loc["N1", "role"] == "normal_node"


def test_non_target_progression_constants():
    rows = lesion("p", "T1", {BASE: 50, EVAL: 50}) + lesion("p", "NT", {BASE: 8, EVAL: 12}, organ="liver")
    clin = [{"patient_id": "p", "ici_start_date": "2024-03-08"}]
    assert one(rows, clin)["recist_first_eval"] == "SD"  # x3.4 volume but only +4 mm
    assert one(rows, clin, ResponseConfig(non_target_pd_min_abs_mm=4))["recist_first_eval"] == "PD"
    assert (
        one(rows, clin, ResponseConfig(non_target_pd_min_abs_mm=4, non_target_pd_volume_ratio=3.5))[
            "recist_first_eval"
        ]
        == "SD"
    )


def _day(n: int) -> str:
    return (dt.date(2024, 1, 1) + dt.timedelta(days=n)).isoformat()


def _on_treatment(values: dict[int, float], cfg: ResponseConfig):
    res = run(
        lesion("p", "T1", {_day(k): v for k, v in values.items()}),
        [{"patient_id": "p", "ici_start_date": _day(1)}],
        cfg,
    )
    return res.response[res.response["role"].isin(["first_eval", "follow_up"])].reset_index(drop=True)


def test_confirmation_windows():
    on = _on_treatment({0: 50, 56: 60, 80: 70}, ResponseConfig())  # 24 d later: too early
    assert (
        list(on["irecist_response"]) == ["iUPD", "iUPD"] and on.loc[0, "irrecist_confirmation"] == "pending"
    )
    on = _on_treatment({0: 50, 56: 60, 80: 70}, ResponseConfig(confirmation_min_days=21))
    assert (
        list(on["irecist_response"]) == ["iUPD", "iCPD"] and on.loc[0, "irrecist_confirmation"] == "confirmed"
    )
    on = _on_treatment({0: 50, 56: 60, 126: 70}, ResponseConfig())  # 70 d later: inside 4-12 weeks
    assert on.loc[0, "irrecist_confirmation"] == "confirmed"
    on = _on_treatment({0: 50, 56: 60, 126: 70}, ResponseConfig(irrecist_confirmation_max_days=60))
    assert on.loc[0, "irrecist_confirmation"] == "not_confirmed_outside_window"
    # iRECIST: the next assessment is due 4-8 weeks after iUPD; a later confirming scan still confirms, and
    # says it was outside the window
    on = _on_treatment({0: 50, 56: 60, 126: 70}, ResponseConfig())
    assert (
        on.loc[1, "irecist_response"] == "iCPD"
        and "70 d after iUPD > 56 d" in on.loc[1, "irecist_confirmation"]
    )
    on = _on_treatment({0: 50, 56: 60, 126: 70}, ResponseConfig(irecist_confirmation_max_days=84))
    assert "after iUPD" not in on.loc[1, "irecist_confirmation"]


def test_irrc_constants():
    # LD x SA: 20 x 12 = 240 -> 25 x 12 = 300 = +25 %
    rows = lesion("p", "T1", {_day(0): 20, _day(56): 25}, sa={_day(0): 12, _day(56): 12})
    clin = [{"patient_id": "p", "ici_start_date": _day(1)}]

    def irrc(cfg: ResponseConfig) -> str:
        res = run(rows, clin, cfg).response
        return res.loc[res["role"] == "first_eval", "irrc_response"].iloc[0]

    assert irrc(ResponseConfig()) == "irPD"
    assert irrc(ResponseConfig(irrc_pd_pct=26)) == "irSD"
    assert irrc(ResponseConfig(irrc_min_lesion_mm=13)) == "NE"  # no index lesion >= 13 x 13 mm
    rows2 = lesion("p", "T1", {_day(0): 20, _day(56): 14}, sa={_day(0): 12, _day(56): 12})  # 168 = -30 %
    res = run(rows2, clin, ResponseConfig(irrc_pr_pct=30)).response
    assert res.loc[res["role"] == "first_eval", "irrc_response"].iloc[0] == "irPR"
    rows3 = rows + lesion("p", "T2", {_day(0): 30, _day(56): 30}, sa={_day(0): 30, _day(56): 30})
    for cfg in (ResponseConfig(irrc_max_index_total=1), ResponseConfig(irrc_max_index_per_organ=1)):
        res = run(rows3, clin, cfg).response  # only T2 (900 mm2) is an index lesion
        assert res.loc[res["role"] == "first_eval", "irrc_burden_mm2"].iloc[0] == 900


def test_irrc_index_lesion_not_measured_is_ne():
    rows = lesion("p", "T1", {_day(0): 20, _day(56): 25}, sa={_day(0): 12, _day(56): 12})
    rows += lesion("p", "T2", {_day(0): 20}, organ="liver", sa={_day(0): 12})  # no row on day 56
    res = run(rows, [{"patient_id": "p", "ici_start_date": _day(1)}]).response
    assert res.loc[res["role"] == "first_eval", "irrc_response"].iloc[0] == "NE"


def test_growth_include_pre_baseline():
    rows = ex1_rows() + lesion("p", "T1", {"2024-06-01": 90, "2024-07-01": 100})
    g0 = run(rows, [CLIN]).growth.iloc[0]
    g1 = run(rows, [CLIN], ResponseConfig(growth_include_pre_baseline=True)).growth.iloc[0]
    assert g0["n_scans"] == 4 and g1["n_scans"] == 5
