"""Defects of the response stage fixed in issue 14, each with a case that failed before the fix.

* iRECIST confirmation per Seymour et al. 2017 (Lancet Oncol 18:e143, Table 2): after iUPD, iCPD needs a
  further increase *in a category that was iUPD*, or RECIST progression newly met in a category that was not;
  a not-evaluable assessment after iUPD does not reset the bar.
* irRC (Wolchok 2009): new measurable lesions capped like index lesions (5 per organ, 10 in all); irCR and
  irPR confirmed by a scan >= 4 weeks later.
* Matos 2020 "multiple new lesions": default = new lesions in >= 2 different organs.
* RECIST 1.1 fragments (``fragment_of``): long axes summed into the parent, not a new lesion.
* Non-positive reference rate, inequality form: an experimental rate of exactly 0 is not acceleration.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hpd_examples import labels, lesion, one, run

from hpd_imaging.response import ResponseConfig

BASE = dt.date(2024, 1, 1)
CLIN = [{"patient_id": "p", "ici_start_date": "2024-01-02"}]


def day(n: int) -> str:
    return (BASE + dt.timedelta(days=n)).isoformat()


def series(values: dict[int, float], lid: str = "T1", **kw) -> list[dict]:
    return lesion("p", lid, {day(k): v for k, v in values.items()}, **kw)


def on_treatment(rows: list[dict], cfg: ResponseConfig | None = None):
    res = run(rows, CLIN, cfg)
    on = res.response[res.response["role"].isin(["first_eval", "follow_up"])]
    return on.reset_index(drop=True)


# ---- iRECIST, Seymour 2017 Table 2 ------------------------------------------------------------------


def test_irecist_small_non_target_increase_does_not_confirm_target_iupd():
    # iUPD by targets (+20 %); 4 weeks later targets +2 mm only and the non-target +1 mm (not unequivocal):
    # non-targets were not iUPD, so only unequivocal non-target progression could confirm -> still iUPD
    node = {"organ": "mediastinum", "node": True}  # short axis 12 mm: pathological, a non-target
    rows = series({0: 50, 56: 60, 84: 62}) + series({0: 12, 56: 12, 84: 13}, "NT", **node)
    on = on_treatment(rows)
    assert list(on["non_target_response"]) == ["NON_CR_NON_PD", "NON_CR_NON_PD"]
    assert list(on["irecist_response"]) == ["iUPD", "iUPD"]
    # the same target series with a further +5 mm confirms (the category that was iUPD)
    rows = series({0: 50, 56: 60, 84: 65}) + series({0: 12, 56: 12, 84: 13}, "NT", **node)
    assert list(on_treatment(rows)["irecist_response"]) == ["iUPD", "iCPD"]


def test_irecist_target_increase_after_new_lesion_iupd_needs_recist_target_progression():
    # iUPD by a new lesion only (targets -10 %); then targets +6 mm vs the iUPD scan but only +2 % vs nadir:
    # targets were not iUPD, so they confirm only when RECIST target PD is newly met
    new = series({56: 8, 84: 8}, "NEW", organ="adrenal")
    on = on_treatment(series({0: 50, 56: 45, 84: 51}) + new)
    assert list(on["target_response"]) == ["SD", "SD"]
    assert list(on["irecist_response"]) == ["iUPD", "iUPD"]
    # ... and a target sum that newly meets RECIST PD (>= 20 % and >= 5 mm vs nadir 45) confirms
    on = on_treatment(series({0: 50, 56: 45, 84: 54}) + new)
    assert list(on["target_response"]) == ["SD", "PD"]
    assert list(on["irecist_response"]) == ["iUPD", "iCPD"]
    assert "target progression newly met" in on.loc[1, "irecist_confirmation"]


def test_irecist_not_evaluable_scan_after_iupd_does_not_reset():
    # iUPD at day 56; day 84 a target is not measured (NE); day 112 the sum is +5 mm over the iUPD scan
    rows = series({0: 30, 56: 36, 112: 39}) + series({0: 20, 56: 24, 84: 24, 112: 26}, "T2", organ="liver")
    on = on_treatment(rows)
    assert list(on["recist_response"]) == ["PD", "NE", "PD"]
    assert list(on["irecist_response"]) == ["iUPD", "NE", "iCPD"]


# ---- irRC, Wolchok 2009 -----------------------------------------------------------------------------


def test_irrc_new_measurable_lesions_capped_5_per_organ_and_10_in_all():
    # index lesion 20 x 20 = 400 mm2; 14 new measurable lesions of 10 x 10 = 100 mm2: 6 in the liver,
    # 6 in bone, 2 in the lung -> at most 5 per organ and 10 in all count: 10 x 100 = 1000 added
    rows = series({0: 20, 56: 20, 84: 20}, sa={day(0): 20, day(56): 20, day(84): 20})
    n = 0
    for organ, count in (("liver", 6), ("bone", 6), ("lung_new", 2)):
        for _ in range(count):
            n += 1
            rows += series({56: 10, 84: 10}, f"N{n:02d}", organ=organ, sa={day(56): 10, day(84): 10})
    on = on_treatment(rows)
    assert on.loc[0, "irrc_burden_mm2"] == pytest.approx(400 + 1000)


def test_irrc_pr_and_cr_need_confirmation_4_weeks_later():
    rows = series({0: 20, 56: 10, 84: 10}, sa={day(0): 20, day(56): 20, day(84): 20})  # 200 = -50 %: irPR
    on = on_treatment(rows)
    assert list(on["irrc_response"]) == ["irPR", "irPR"]
    assert on.loc[0, "irrc_confirmation"] == "confirmed"
    rows = series({0: 20, 56: 10, 83: 10}, sa={day(0): 20, day(56): 20, day(83): 20})  # 27 days later only
    assert on_treatment(rows).loc[0, "irrc_confirmation"] == "pending"
    rows = series({0: 20, 56: 10, 84: 14}, sa={day(0): 20, day(56): 20, day(84): 20})  # 280 = -30 %: irSD
    assert on_treatment(rows).loc[0, "irrc_confirmation"] == "not_confirmed"
    rows = series({0: 20, 56: 0, 84: 0}, sa={day(0): 20, day(56): 0, day(84): 0})  # irCR, confirmed
    on = on_treatment(rows)
    assert list(on["irrc_response"]) == ["irCR", "irCR"] and on.loc[0, "irrc_confirmation"] == "confirmed"


# ---- Matos 2020 multiple new lesions ------------------------------------------------------------------

ICI = [{"patient_id": "p", "ici_start_date": "2024-02-05"}]


def _matos(new_organs: tuple[str, ...]) -> str:
    # Example 9 geometry: baseline 60 mm, day 53: 75 mm (+25 %, branch B needs multiple new lesions)
    rows = lesion("p", "T1", {"2024-02-01": 60, "2024-03-29": 75}, organ="lung")
    for i, organ in enumerate(new_organs):
        rows += lesion("p", f"N{i}", {"2024-03-29": 12}, organ=organ)
    return labels(one(rows, ICI))["matos2020"]


def test_matos_default_multiple_new_lesions_means_two_different_organs():
    assert ResponseConfig().matos_new_lesion_rule == "new_lesions_in_two_organs"
    assert _matos(("adrenal", "bone")) == "hpd"  # spec Example 9: two organs
    assert _matos(("liver", "liver", "liver")) == "no_hpd"  # three new lesions, one (new) organ
    assert _matos(("adrenal",)) == "no_hpd"
    legacy = ResponseConfig(matos_new_lesion_rule="two_in_involved_or_new_organ")
    rows = lesion("p", "T1", {"2024-02-01": 60, "2024-03-29": 75}, organ="lung")
    rows += lesion("p", "N0", {"2024-03-29": 12}, organ="liver")
    assert labels(one(rows, ICI, legacy))["matos2020"] == "hpd"  # a new organ is enough in that reading


# ---- RECIST 1.1 fragments -----------------------------------------------------------------------------


def test_fragment_of_sums_long_axes_into_the_parent():
    rows = series({0: 30, 56: 16}) + series({56: 15}, "T1b")
    for r in rows:
        r["fragment_of"] = "T1" if r["lesion_id"] == "T1b" else ""
    import pandas as pd

    from hpd_imaging.response import run_response

    res = run_response(pd.DataFrame(rows), pd.DataFrame(CLIN), ResponseConfig())
    on = res.response[res.response["role"] == "first_eval"].iloc[0]
    assert on["sld_mm"] == 31 and on["n_new_lesions"] == 0 and on["recist_response"] == "SD"
    targets = res.targets.set_index("lesion_id")
    assert targets.loc["T1b", "role"] == "fragment" and "T1" in targets.loc["T1b", "reason"]
    # without the column the piece is a new lesion: PD
    plain = run_response(pd.DataFrame(rows).drop(columns="fragment_of"), pd.DataFrame(CLIN), ResponseConfig())
    assert plain.response[plain.response["role"] == "first_eval"].iloc[0]["recist_response"] == "PD"


# ---- non-positive reference, inequality form ------------------------------------------------------------


def _tgk_patient(first_eval: tuple[float, float, float]) -> dict:
    """Shrinking before ICI (TGK_ref < 0); three declared targets whose sum on the first evaluation is
    mathematically the baseline sum (31 mm) when ``first_eval`` is (10.2, 20.1, 0.7)."""
    dates = ("2024-01-01", "2024-03-01", "2024-05-01")
    rows = []
    for lid, pre, base, first in zip(
        ("A", "B", "C"), (12.0, 25.0, 3.0), (10.1, 20.2, 0.7), first_eval, strict=True
    ):
        for date, value in zip(dates, (pre, base, first), strict=True):
            rows += lesion("p", lid, {date: value})
    for r in rows:
        r["is_target"] = True
    import pandas as pd

    from hpd_imaging.response import run_response

    clin = pd.DataFrame([{"patient_id": "p", "ici_start_date": "2024-03-02"}])
    # the minimum-detectable-change guard (issue 17) is off: this checks float tolerance at exactly zero
    cfg = ResponseConfig(stability={"mdc_guard": False})
    return run_response(pd.DataFrame(rows), clin, cfg).kinetics.iloc[0].to_dict()


def test_experimental_rate_of_zero_is_not_acceleration():
    row = _tgk_patient((10.2, 20.1, 0.7))  # 10.1 + 20.2 + 0.7 vs 10.2 + 20.1 + 0.7: unchanged burden
    assert row["tgk_ref_mm_per_month"] < 0
    assert abs(row["tgk_exp_mm_per_month"]) < 1e-12
    assert row["hpd_saada_bouzid2017"] == "no_hpd"
    assert "<= 0" in row["hpd_saada_bouzid2017_reason"]
    # the other side of the boundary: a real increase with a shrinking reference is acceleration
    row = _tgk_patient((10.7, 20.1, 0.7))
    assert row["tgk_exp_mm_per_month"] > 0 and row["hpd_saada_bouzid2017"] == "hpd"
