"""Best overall response (RECIST 1.1 section 4.4 / Table 3; iRECIST), per-lesion kinetics, mixed response,
Cohen's kappa: each against cases worked by hand."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from hpd_imaging.outcome.best_response import BorSettings, TimepointResponse, best_overall_response
from hpd_imaging.outcome.lesion_kinetics import (
    LesionPoint,
    LesionSeries,
    PatientDates,
    lesion_kinetics,
    mixed_response,
)
from hpd_imaging.outcome.tables import best_response_table
from hpd_imaging.response.concordance import cohen_kappa, concordance_table

ICI = dt.date(2024, 1, 1)


def _tps(*items: tuple[int, str | None]) -> list[TimepointResponse]:
    return [TimepointResponse(ICI + dt.timedelta(days=d), r) for d, r in items]


CONFIRM = BorSettings(confirmation_required=True)


@pytest.mark.parametrize(
    ("seq", "settings", "expected", "confirmed"),
    [
        ([(56, "PR"), (112, "PR")], CONFIRM, "PR", True),  # PR confirmed 56 days later
        ([(56, "PR"), (70, "PR")], CONFIRM, "SD", None),  # 14 days < 28: unconfirmed -> SD (day 56 >= 42)
        ([(56, "PR"), (84, "PR")], CONFIRM, "PR", True),  # exactly 28 days: confirmed
        ([(56, "CR"), (112, "PR")], CONFIRM, "PR", True),  # CR then PR: confirmed PR
        ([(56, "CR"), (112, "CR")], CONFIRM, "CR", True),
        ([(56, "PR"), (112, "PD")], CONFIRM, "SD", None),  # unconfirmed PR, SD duration met
        ([(56, "PR"), (112, "PD")], BorSettings(), "PR", False),  # no confirmation required: best recorded
        ([(35, "SD"), (84, "PD")], BorSettings(), "PD", None),  # SD before day 42, then PD -> PD
        ([(42, "SD"), (84, "PD")], BorSettings(), "SD", None),  # SD on day 42 exactly: counts
        ([(35, "SD")], BorSettings(), "NE", None),  # SD too early and no PD -> NE
        ([(56, "PD"), (112, "PR")], BorSettings(), "PD", None),  # RECIST stops at PD
        ([(56, "NE"), (112, "SD")], BorSettings(), "SD", None),
        ([(-5, "PR")], BorSettings(), "NE", None),  # before ICI start: not on treatment
    ],
)
def test_recist_bor(seq, settings, expected, confirmed):
    res = best_overall_response(_tps(*seq), ICI, "recist", settings)
    assert res.best_response == expected
    assert res.confirmed is confirmed


@pytest.mark.parametrize(
    ("seq", "expected"),
    [
        ([(56, "iUPD"), (112, "iSD")], "iSD"),  # iUPD not confirmed, later iSD resets
        ([(56, "iUPD"), (112, "iCPD")], "iCPD"),  # confirmed progression
        ([(56, "iUPD")], "iUPD"),  # never confirmed
        ([(56, "iUPD"), (112, "iPR"), (168, "iPR")], "iPR"),  # pseudoprogression then response
        ([(56, "iCPD"), (112, "iPR")], "iCPD"),  # iCPD ends the record
    ],
)
def test_irecist_bor(seq, expected):
    assert best_overall_response(_tps(*seq), ICI, "irecist").best_response == expected


@pytest.mark.parametrize(
    ("seq", "criteria", "expected", "date_day"),
    [
        # RECIST 1.1 Table 2/3: non-target disease only, "Non-CR/Non-PD" ranks with SD for the best response
        ([(56, "NON_CR_NON_PD"), (112, "NON_CR_NON_PD")], "recist", "NON_CR_NON_PD", 56),
        ([(42, "NON_CR_NON_PD")], "recist", "NON_CR_NON_PD", 42),  # on the SD minimum exactly: counts
        ([(41, "NON_CR_NON_PD")], "recist", "NE", None),  # one day before it, no progression: NE
        ([(41, "NON_CR_NON_PD"), (84, "PD")], "recist", "PD", 84),  # too early, then progression: PD
        ([(56, "NON_CR_NON_PD"), (112, "PD")], "recist", "NON_CR_NON_PD", 56),
        ([(56, "NON_CR_NON_PD"), (112, "CR")], "recist", "CR", 112),  # better than SD rank
        ([(56, "iNON_CR_NON_PD"), (112, "iNON_CR_NON_PD")], "irecist", "iNON_CR_NON_PD", 56),
        ([(41, "iNON_CR_NON_PD"), (84, "iUPD")], "irecist", "iUPD", 84),
        ([(42, "iNON_CR_NON_PD"), (84, "iUPD"), (140, "iCPD")], "irecist", "iNON_CR_NON_PD", 42),
        ([(56, "iUPD"), (112, "iNON_CR_NON_PD")], "irecist", "iNON_CR_NON_PD", 112),  # iUPD reset
    ],
)
def test_non_cr_non_pd_ranks_as_sd(seq, criteria, expected, date_day):
    res = best_overall_response(_tps(*seq), ICI, criteria)
    assert res.best_response == expected
    assert res.date == (None if date_day is None else ICI + dt.timedelta(days=date_day))
    assert res.confirmed is (False if expected == "CR" else None)  # CR with no later scan: not confirmed


def test_non_cr_non_pd_unconfirmed_pr_still_sd_label():
    # an unconfirmed PR counts as SD (confirmation required); a Non-CR/Non-PD before it keeps its own label
    res = best_overall_response(_tps((56, "NON_CR_NON_PD"), (84, "PR")), ICI, "recist", CONFIRM)
    assert (res.best_response, res.date) == ("NON_CR_NON_PD", ICI + dt.timedelta(days=56))


def test_best_response_table_from_response_csv_rows():
    response = pd.DataFrame(
        {
            "patient_id": ["A", "A", "A", "B"],
            "scan_date": ["2023-12-20", "2024-02-26", "2024-04-22", "2024-02-26"],
            "recist_response": [None, "PR", "PR", "PD"],
            "irecist_response": [None, "iPR", "iPR", "iUPD"],
        }
    )
    kinetics = pd.DataFrame({"patient_id": ["A", "B", "C"], "ici_start_date": ["2024-01-01"] * 3})
    table = best_response_table(response, kinetics).set_index("patient_id")
    assert table.loc["A", "bor_recist"] == "PR" and table.loc["A", "bor_recist_date"] == "2024-02-26"
    assert table.loc["B", "bor_irecist"] == "iUPD"
    assert table.loc["C", "bor_recist"] == "NE"
    assert table.loc["A", "mixed_response"] is None  # no lesion table given


def test_lesion_tgr_matches_spec_example_7_lesion_a():
    # specs/hpd_kinetics.md Example 7, lesion A alone: LD 30 -> 32 -> 34 mm, volumes 10/12/24 mL,
    # pre 2024-01-08, baseline 2024-03-04 (56 d), eval 2024-05-06 (63 d)
    pre, base, ev = dt.date(2024, 1, 8), dt.date(2024, 3, 4), dt.date(2024, 5, 6)
    s = LesionSeries(
        "P",
        "A",
        "liver",
        False,
        (LesionPoint(pre, 30.0, 10000.0), LesionPoint(base, 32.0, 12000.0), LesionPoint(ev, 34.0, 24000.0)),
    )
    (row, organ) = lesion_kinetics([s], {"P": PatientDates(pre, base, ev)})
    # hand: 100*(exp(3 ln(32/30)/(56/30.4375)) - 1) = 11.100; ln(32/30) = 0.0645385, x3 / 1.839836 = 0.105235
    assert row["tgr_ref_pct_per_month"] == pytest.approx(100 * (math.exp(0.105235) - 1), abs=1e-3)
    # volume, exponent 1: ln(24/12) / (63/30.4375) = 0.693147 / 2.069815 = 0.334883 -> 39.78 %/month
    assert row["vol_tgr_exp_pct_per_month"] == pytest.approx(39.783, abs=1e-2)
    assert row["tgk_exp_mm_per_month"] == pytest.approx(2.0 / (63 / 30.4375), abs=1e-9)
    assert row["change_first_eval_pct"] == pytest.approx(6.25)
    assert row["response_class"] == "stable"
    assert organ["level"] == "organ" and organ["diameter_baseline_mm"] == 32.0


def test_lesion_tgr_limits():
    base, ev = dt.date(2024, 1, 1), dt.date(2024, 1, 31)

    def row(d0: float, d1: float, ev_date: dt.date = ev) -> dict:
        s = LesionSeries("P", "a", "lung", False, (LesionPoint(base, d0), LesionPoint(ev_date, d1)))
        return lesion_kinetics([s], {"P": PatientDates(None, base, ev_date)})[0]

    assert row(10.0, 0.0)["tgr_exp_pct_per_month"] == -100.0  # vanished
    assert row(0.0, 5.0)["tgr_exp_pct_per_month"] is None  # appeared: infinite, an empty cell
    assert row(0.0, 0.0)["tgr_exp_pct_per_month"] is None  # 0/0
    assert row(10.0, 12.0, base)["tgr_exp_pct_per_month"] is None  # no interval


def _conventions_case() -> tuple[LesionSeries, dt.date, dt.date, dt.date]:
    # baseline scan 10 days before the first ICI dose; first evaluation 60 days after it (70 after baseline)
    base, ici, ev = dt.date(2024, 1, 1), dt.date(2024, 1, 11), dt.date(2024, 3, 11)
    s = LesionSeries(
        "P", "A", "lung", False, (LesionPoint(base, 20.0, 8000.0), LesionPoint(ev, 30.0, 27000.0))
    )
    return s, base, ici, ev


def test_lesion_kinetics_follows_response_conventions():
    s, base, ici, ev = _conventions_case()
    dates = PatientDates(None, base, ev, ici_start=ici, month_days=30.0, exp_period_start="ici_start")
    row = lesion_kinetics([s], {"P": dates})[0]
    # experimental period from the ICI start: 60 days = 2 months of 30 days
    assert row["tgr_exp_pct_per_month"] == pytest.approx(100 * (1.5**1.5 - 1), rel=1e-12)  # 3 ln 1.5 / 2
    assert row["tgk_exp_mm_per_month"] == pytest.approx(5.0, rel=1e-12)  # 10 mm / 2 months
    assert row["vol_tgr_exp_pct_per_month"] == pytest.approx(100 * (3.375**0.5 - 1), rel=1e-12)
    assert (row["month_days"], row["exp_period_start"], row["t_exp_days"]) == (30.0, "ici_start", 60)
    # the defaults: from the baseline scan, months of 365.25/12 days
    row = lesion_kinetics([s], {"P": PatientDates(None, base, ev)})[0]
    assert row["tgk_exp_mm_per_month"] == pytest.approx(10.0 / (70 / 30.4375), rel=1e-12)
    assert (row["month_days"], row["exp_period_start"], row["t_exp_days"]) == (30.4375, "baseline_scan", 70)


def test_lesion_kinetics_table_takes_conventions_from_kinetics_csv_or_config():
    from hpd_imaging.outcome.tables import lesion_kinetics_table
    from hpd_imaging.response import ResponseConfig

    meas = pd.DataFrame(
        {
            "patient_id": ["P", "P"],
            "lesion_id": ["A", "A"],
            "scan_date": ["2024-01-01", "2024-03-11"],
            "organ": ["lung", "lung"],
            "is_lymph_node": ["False", "False"],
            "longest_axial_diameter_mm": ["20", "30"],
            "short_axis_mm": ["12", "18"],
            "volume_mm3": ["8000", "27000"],
        }
    )
    dates = {"patient_id": ["P"], "ici_start_date": ["2024-01-11"], "baseline_date": ["2024-01-01"]}
    dates["first_eval_date"] = ["2024-03-11"]
    # kinetics.csv as the response stage writes it: the conventions it ran with, per patient
    kin = pd.DataFrame({**dates, "month_days": ["30.0"], "exp_period_start": ["ici_start"]})
    row = lesion_kinetics_table(meas, kin).iloc[0]
    assert row["tgk_exp_mm_per_month"] == pytest.approx(5.0, rel=1e-12)
    assert (row["month_days"], row["exp_period_start"]) == (30.0, "ici_start")
    # a user's kinetics table without those columns: the response settings given
    cfg = ResponseConfig(month_days=30.0, exp_period_start="ici_start")
    row = lesion_kinetics_table(meas, pd.DataFrame(dates), cfg).iloc[0]
    assert row["tgk_exp_mm_per_month"] == pytest.approx(5.0, rel=1e-12)
    row = lesion_kinetics_table(meas, pd.DataFrame(dates)).iloc[0]  # neither: the response defaults
    assert row["tgk_exp_mm_per_month"] == pytest.approx(10.0 / (70 / 30.4375), rel=1e-12)


def test_one_month_constant():
    import hpd_imaging.outcome.followup as followup
    import hpd_imaging.report.plots as plots
    import hpd_imaging.synth.clinical as synth_clinical
    from hpd_imaging.response import ResponseConfig
    from hpd_imaging.settings.base import MONTH_DAYS

    assert MONTH_DAYS == 365.25 / 12 == ResponseConfig().month_days
    assert followup.MONTH_DAYS is plots.MONTH_DAYS is synth_clinical.MONTH_DAYS is MONTH_DAYS


def test_mixed_response_flag():
    base, ev = dt.date(2024, 1, 1), dt.date(2024, 3, 1)

    def series(lid: str, d0: float, d1: float) -> LesionSeries:
        return LesionSeries("P", lid, "lung", False, (LesionPoint(base, d0), LesionPoint(ev, d1)))

    dates = {"P": PatientDates(None, base, ev)}
    # -30 % exactly shrinks, +20 % exactly grows: both at their boundary
    rows = lesion_kinetics([series("a", 20.0, 14.0), series("b", 20.0, 24.0)], dates)
    assert [r["response_class"] for r in rows if r["level"] == "lesion"] == ["shrinking", "growing"]
    assert mixed_response(rows, "P").mixed_response is True
    rows = lesion_kinetics([series("a", 20.0, 14.2), series("b", 20.0, 23.8)], dates)  # just inside
    assert mixed_response(rows, "P").mixed_response is False
    rows = lesion_kinetics([series("a", 20.0, 10.0), series("n", 0.0, 8.0)], dates)  # shrink + new lesion
    assert mixed_response(rows, "P").mixed_response is True
    assert mixed_response(rows, "P", new_lesions_count_as_growing=False).mixed_response is False


def _kappa_by_hand(a: int, b: int, c: int, d: int) -> float:
    n = a + b + c + d
    p_o = (a + d) / n
    p_e = ((a + b) * (a + c) + (c + d) * (b + d)) / (n * n)
    return (p_o - p_e) / (1.0 - p_e)


@pytest.mark.parametrize("counts", [(3, 1, 2, 4), (5, 0, 0, 5), (0, 3, 2, 0), (2, 2, 2, 2), (0, 2, 0, 0)])
def test_cohen_kappa_equals_hand_formula(counts):
    # Cohen 1960 from the 2x2 table, worked here independently of the library the module calls
    assert cohen_kappa(*counts) == pytest.approx(_kappa_by_hand(*counts), abs=1e-12)


@pytest.mark.parametrize("counts", [(0, 0, 0, 0), (4, 0, 0, 0), (0, 0, 0, 3)])
def test_cohen_kappa_undefined_is_none(counts):
    # no pair, or one single category for both definitions (p_e = 1): None, never NaN
    assert cohen_kappa(*counts) is None


def test_cohen_kappa_is_scikit_learns(monkeypatch):
    import hpd_imaging.response.concordance as concordance

    calls = []

    def spy(x, y):
        calls.append((list(x), list(y)))
        return cohen_kappa_score(x, y)

    monkeypatch.setattr(concordance, "cohen_kappa_score", spy)
    assert concordance.cohen_kappa(1, 1, 0, 1) == pytest.approx(0.4)  # p_o 2/3, p_e 4/9
    assert calls == [([1, 1, 0], [1, 0, 0])]


def test_concordance_kappa_none_without_evaluable_pair():
    kin = pd.DataFrame({"patient_id": ["a", "b"], "hpd_x": ["hpd", "not_evaluable"], "hpd_y": [None, "hpd"]})
    row = concordance_table(kin, ["x", "y"]).iloc[0]
    assert row["n_evaluable_both"] == 0 and row["cohen_kappa"] is None and row["jaccard"] is None


def test_kappa_by_hand_and_in_concordance_csv():
    # a=3 b=1 c=2 d=4, n=10: p_o = 0.7, p_e = (4*5 + 6*5)/100 = 0.5 -> kappa = 0.4
    assert cohen_kappa(3, 1, 2, 4) == pytest.approx(0.4)
    labels_a = ["hpd"] * 4 + ["no_hpd"] * 6
    labels_b = ["hpd"] * 3 + ["no_hpd"] + ["hpd"] * 2 + ["no_hpd"] * 4
    kin = pd.DataFrame({"patient_id": list("abcdefghij"), "hpd_x": labels_a, "hpd_y": labels_b})
    row = concordance_table(kin, ["x", "y"]).iloc[0]
    assert row["cohen_kappa"] == pytest.approx(0.4) and row["jaccard"] == pytest.approx(0.5)
