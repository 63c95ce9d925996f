"""Landmark survival by definition: numbers against a table computed by hand (not lifelines against itself).

Hand table (days after the first evaluation; e = death, c = censored)::

    hpd    (n=4): 30e  60e  90e  120c
    no_hpd (n=5): 60e  90c  150e 240e 300c

Kaplan-Meier: hpd 3/4 after day 30, 2/4 = 0.5 after day 60 -> median 60 d = 1.97125 months;
no_hpd 4/5 after 60, x 2/3 = 0.5333 after 150, x 1/2 = 0.2667 after 240 -> median 240 d = 7.88501 months.

Log-rank (hpd group; censored at t are at risk at t):
    t=30  n=9 (4 hpd) d=1: E = 4/9,  V = 1*(4/9)(5/9)       = 20/81
    t=60  n=8 (3 hpd) d=2: E = 6/8,  V = 2*(3/8)(5/8)(6/7)  = 180/448
    t=90  n=6 (2 hpd) d=1: E = 2/6,  V = 1*(2/6)(4/6)       = 8/36
    t=150, 240: no hpd patient at risk: E = V = 0
    O = 3, E = 55/36, V = 7901/9072 -> chi2 = (O-E)^2/V = 2.488672, p = erfc(sqrt(chi2/2)) = 0.114668.

Harrell's C of the label (hpd = higher risk; ties in the label count 1/2; a censored time equal to an event
time counts as longer): 28 comparable pairs, 13 concordant, 2 discordant, 13 tied -> (13 + 6.5)/28 = 0.696429.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.outcome.followup import FollowUp, followups
from hpd_imaging.outcome.survival import (
    SURVIVAL_COLUMNS,
    definition_keys,
    landmark_table,
    ranking,
    survival_by_definition,
    survival_frame,
)

START = dt.date(2023, 11, 1)
EVAL = dt.date(2024, 1, 1)
HAND = [  # patient, label, days after first evaluation, death?
    ("h1", "hpd", 30, True),
    ("h2", "hpd", 60, True),
    ("h3", "hpd", 90, True),
    ("h4", "hpd", 120, False),
    ("n1", "no_hpd", 60, True),
    ("n2", "no_hpd", 90, False),
    ("n3", "no_hpd", 150, True),
    ("n4", "no_hpd", 240, True),
    ("n5", "no_hpd", 300, False),
]


def _tables(rows=HAND, extra_label=None):
    kin, clin = [], []
    for pid, label, days, death in rows:
        end = EVAL + dt.timedelta(days=days)
        kin.append(
            {
                "patient_id": pid,
                "first_eval_date": EVAL.isoformat(),
                "hpd_hand": label,
                "hpd_hand_reason": "x",
                "hpd_hand_stable": True,
                "hpd_mine": extra_label(pid) if extra_label else label,
            }
        )
        clin.append(
            {
                "patient_id": pid,
                "ici_start_date": START,
                "death_date": end if death else None,
                "last_followup_date": None if death else end,
            }
        )
    return pd.DataFrame(kin), pd.DataFrame(clin)


def test_km_medians_logrank_and_c_index_equal_the_hand_table():
    kin, clin = _tables()
    results, landmark = survival_by_definition(kin, followups(clin))
    r = {x.definition: x for x in results}["hand"]
    assert (r.n_hpd, r.n_no_hpd, r.events_hpd, r.events_no_hpd) == (4, 5, 3, 3)
    assert r.median_hpd_months == pytest.approx(60 / 30.4375, abs=1e-9)
    assert r.median_no_hpd_months == pytest.approx(240 / 30.4375, abs=1e-9)
    assert r.logrank_chi2 == pytest.approx(2.4886723, abs=1e-6)
    assert r.logrank_p == pytest.approx(0.1146684, abs=1e-6)
    assert r.c_index == pytest.approx(19.5 / 28, abs=1e-9)
    hr, low, high = _cox_efron_by_hand([(d, e, lab == "hpd") for _, lab, d, e in HAND])
    # lifelines stops its Newton-Raphson at a step of ~1e-5 in the coefficient: agreement to 1e-4
    assert (r.hr, r.hr_ci_low, r.hr_ci_high) == pytest.approx((hr, low, high), rel=1e-4)
    assert landmark["excluded_reason"].isna().all()


def _cox_efron_by_hand(rows: list[tuple[float, bool, bool]]) -> tuple[float, float, float]:
    """Univariable Cox HR of a 0/1 covariate and its Wald 95 % CI, by Newton-Raphson on Efron's partial
    likelihood (the tie handling lifelines uses; the hand table has a tie at day 60, where Breslow differs):
    per event time with d deaths, for l = 0..d-1, S_k(l) = sum_risk x^k e^{bx} - l/d sum_deaths x^k e^{bx};
    U = sum(x_deaths) - sum S1/S0; I = sum S2/S0 - (S1/S0)^2; b <- b + U/I; se = 1/sqrt(I)."""
    times = sorted({t for t, e, _ in rows if e})

    def score_info(b: float) -> tuple[float, float]:
        u = i = 0.0
        for t in times:
            risk = [float(x) for tt, _, x in rows if tt >= t]
            dead = [float(x) for tt, e, x in rows if tt == t and e]
            d = len(dead)
            u += sum(dead)
            for k in range(d):
                f = k / d
                s0, s1, s2 = (
                    sum(x**p * math.exp(b * x) for x in risk) - f * sum(x**p * math.exp(b * x) for x in dead)
                    for p in (0, 1, 2)
                )
                u -= s1 / s0
                i += s2 / s0 - (s1 / s0) ** 2
        return u, i

    b = 0.0
    for _ in range(50):
        u, i = score_info(b)
        b += u / i
        if abs(u / i) < 1e-12:
            break
    se = 1.0 / math.sqrt(score_info(b)[1])
    z = 1.959963984540054
    return math.exp(b), math.exp(b - z * se), math.exp(b + z * se)


def test_hand_cox_is_not_breslow_by_accident():
    # the tie at day 60 matters: a table without ties gives one answer under every tie rule, so the hand
    # Efron fit must differ from a hand fit that ignores the tie (one death moved a day later)
    tied = _cox_efron_by_hand([(d, e, lab == "hpd") for _, lab, d, e in HAND])
    untied = _cox_efron_by_hand([(d + (0.5 if p == "n1" else 0), e, lab == "hpd") for p, lab, d, e in HAND])
    assert tied[0] != pytest.approx(untied[0], rel=1e-3)


def test_definition_columns_any_key_and_suffixes_ignored():
    kin, _ = _tables()
    assert definition_keys(kin) == ["hand", "mine"]


def test_survival_csv_has_exactly_the_issue_columns_and_no_nan():
    kin, clin = _tables(extra_label=lambda pid: "no_hpd")  # "mine": nobody hpd -> degenerate
    results, _ = survival_by_definition(kin, followups(clin))
    frame = survival_frame(results)
    assert list(frame.columns) == SURVIVAL_COLUMNS
    mine = frame.set_index("definition").loc["mine"]
    assert mine["n_hpd"] == 0 and mine["median_os_hpd_months"] is None and mine["logrank_chi2"] is None
    assert mine["hr"] is None and mine["c_index"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in frame.to_numpy().ravel())
    note = ranking(results).set_index("definition").loc["mine", "note"]
    assert "no hpd patient" in note


def test_no_events_in_one_group_gives_no_hr_with_a_reason():
    rows = [(p, lab, d, e if lab == "no_hpd" else False) for p, lab, d, e in HAND]
    kin, clin = _tables(rows)
    (r, _mine), _ = survival_by_definition(kin, followups(clin))
    assert r.events_hpd == 0 and r.hr is None and r.logrank_chi2 is not None
    assert any("no events in the hpd group" in why for why in r.reasons)


def test_landmark_edges_death_on_first_eval_kept_before_left_out_no_eval_left_out():
    kin, clin = _tables()
    kin.loc[0, "first_eval_date"] = None  # h1: no first evaluation
    clin.loc[1, "death_date"] = EVAL  # h2: dies on the first-evaluation date: kept, time 0, event
    clin.loc[4, "death_date"] = EVAL - dt.timedelta(days=1)  # n1: dies the day before: left out
    clin.loc[4, "ici_start_date"] = START
    table = landmark_table(kin, followups(clin)).set_index("patient_id")
    assert table.loc["h1", "excluded_reason"] == "no first evaluation"
    assert table.loc["h2", "excluded_reason"] is None
    assert table.loc["h2", "time_months"] == 0.0 and table.loc["h2", "event"] is True
    assert table.loc["n1", "excluded_reason"] == "died or censored before first evaluation"
    assert table.loc["n1", "time_months"] is None
    results, _ = survival_by_definition(kin, followups(clin))
    assert (results[0].n_hpd, results[0].n_no_hpd) == (3, 4)


def test_censored_before_first_eval_left_out_and_no_followup_counted():
    kin, clin = _tables()
    clin.loc[8, "last_followup_date"] = EVAL - dt.timedelta(days=1)
    clin.loc[5, "last_followup_date"] = None
    table = landmark_table(kin, followups(clin)).set_index("patient_id")
    assert table.loc["n5", "excluded_reason"] == "died or censored before first evaluation"
    assert table.loc["n2", "excluded_reason"].startswith("no follow-up")


def test_pfs_uses_the_earlier_of_progression_and_death():
    fu = FollowUp("p", START, death_date=dt.date(2024, 6, 1), progression_date=dt.date(2024, 3, 1))
    assert fu.pfs_end == (dt.date(2024, 3, 1), True)
    assert fu.os_end == (dt.date(2024, 6, 1), True)
    censored = FollowUp("q", START, last_followup_date=dt.date(2024, 6, 1))
    assert censored.pfs_end == (dt.date(2024, 6, 1), False)


def _pfs_landmark(progression_days: int, death_days: int | None, followup_days: int | None):
    """Landmark PFS row of one patient; progression/death/follow-up in days after the first evaluation."""
    kin = pd.DataFrame({"patient_id": ["p"], "first_eval_date": [EVAL.isoformat()], "hpd_x": ["hpd"]})
    day = lambda d: None if d is None else EVAL + dt.timedelta(days=d)  # noqa: E731
    clin = pd.DataFrame(
        {
            "patient_id": ["p"],
            "ici_start_date": [START],
            "progression_date": [day(progression_days)],
            "death_date": [day(death_days)],
            "last_followup_date": [day(followup_days)],
        }
    )
    return landmark_table(kin, followups(clin), "pfs").iloc[0]


@pytest.mark.parametrize(
    ("progression", "death", "followup", "days", "event"),
    [
        # progression ON the first evaluation (what HPD means): not a PFS event from the landmark;
        # the patient counts until death (event) or last follow-up (censored)
        (0, 60, None, 60, True),
        (0, None, 90, 90, False),
        (-20, None, 90, 90, False),  # progression before the landmark (between ICI start and the scan)
        # progression one day after the landmark: the event, whatever follows
        (1, 60, None, 1, True),
        (1, None, 90, 1, True),
    ],
)
def test_pfs_from_landmark_counts_only_progression_strictly_after_it(
    progression, death, followup, days, event
):
    row = _pfs_landmark(progression, death, followup)
    assert row["excluded_reason"] is None
    assert row["time_months"] == pytest.approx(days / 30.4375, abs=1e-12)
    assert row["event"] is event
    assert ("not counted" in (row["note"] or "")) is (progression <= 0)


def test_pfs_landmark_does_not_make_every_hpd_patient_an_event_at_time_zero():
    kin, clin = _tables()
    clin["progression_date"] = [EVAL if lab == "hpd" else None for _, lab, _, _ in HAND]  # HPD: PD at eval
    results, landmark = survival_by_definition(kin, followups(clin), clin, "pfs")
    hpd_rows = landmark[landmark["patient_id"].str.startswith("h")]
    assert (hpd_rows["time_months"] > 0).all()  # as OS here: progression at the landmark is the label
    r = {x.definition: x for x in results}["hand"]
    assert r.logrank_chi2 == pytest.approx(2.4886723, abs=1e-6)  # = the OS hand table


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"death_date": dt.date(2023, 10, 31)}, r"death_date: expected a date on or after ici_start_date"),
        (
            {"last_followup_date": dt.date(2024, 1, 1), "last_scan_date": dt.date(2024, 1, 2)},
            r"last_followup_date: expected a date on or after the last scan 2024-01-02, got 2024-01-01",
        ),
        (
            {"death_date": dt.date(2024, 1, 1), "last_scan_date": dt.date(2024, 1, 2)},
            r"death_date: expected a date on or after the last scan",
        ),
        (
            {"death_date": dt.date(2024, 1, 1), "last_followup_date": dt.date(2024, 1, 2)},
            r"last_followup_date: expected a date on or before death_date",
        ),
        ({"progression_date": dt.date(2023, 1, 1)}, r"progression_date: expected a date on or after"),
    ],
)
def test_impossible_dates_are_refused(kwargs, match):
    with pytest.raises(ClinicalDataError, match=match):
        FollowUp("P7", START, source="clinical.csv", **kwargs)


def test_boundaries_that_are_allowed():
    # death on the ICI start, follow-up on the last scan, follow-up on the death date: all possible
    FollowUp("a", START, death_date=START)
    FollowUp("b", START, last_followup_date=EVAL, last_scan_date=EVAL)
    FollowUp("c", START, death_date=EVAL, last_followup_date=EVAL, last_scan_date=EVAL)


def test_followups_names_the_patient_of_a_bad_row():
    clin = pd.DataFrame(
        {
            "patient_id": ["ok", "bad"],
            "ici_start_date": [START, START],
            "death_date": [None, dt.date(2020, 1, 1)],
        }
    )
    with pytest.raises(ClinicalDataError, match=r"patient bad, column death_date"):
        followups(clin)


def test_run_mode_one_bad_patient_is_reported_and_the_others_go_on():
    from hpd_imaging.outcome.stage import run_survival

    kin, clin = _tables()
    clin.loc[0, "death_date"] = dt.date(2020, 1, 1)  # h1: death before ICI start
    errors: list[tuple[str, str]] = []
    result = run_survival(kin, clin, on_error=lambda pid, exc: errors.append((pid, str(exc))))
    assert [pid for pid, _ in errors] == ["h1"] and "death_date" in errors[0][1]
    table = result.os.landmark.set_index("patient_id")
    assert table.loc["h1", "excluded_reason"] == "impossible follow-up dates (errors.csv)"
    hand = {d.definition: d for d in result.os.definitions}["hand"]
    assert (hand.n_hpd, hand.n_no_hpd) == (3, 5)
    with pytest.raises(ClinicalDataError, match="patient h1, column death_date"):
        run_survival(kin, clin)  # the command's mode: refuse


def test_ranking_ties_share_a_rank_and_untestable_definitions_come_last():
    kin, clin = _tables(extra_label=lambda pid: "no_hpd")
    kin["hpd_copy"] = kin["hpd_hand"]  # same labels as "hand": same statistics, same rank
    results, _ = survival_by_definition(kin, followups(clin))
    table = ranking(results)
    assert table["definition"].tolist() == ["hand", "copy", "mine"]
    assert table["rank"].tolist() == [1, 1, None]


def test_a_users_boolean_definition_column_works_like_hpd_labels():
    kin, clin = _tables()
    kin["hpd_mine"] = ["true" if lab == "hpd" else "False" for lab in kin["hpd_hand"]]
    kin.loc[8, "hpd_mine"] = ""  # blank: not evaluable
    results, _ = survival_by_definition(kin, followups(clin))
    by = {r.definition: r for r in results}
    assert (by["mine"].n_hpd, by["mine"].n_no_hpd) == (4, 4)
    assert by["mine"].median_hpd_months == by["hand"].median_hpd_months


def test_c_index_bootstrap_ci_brackets_the_estimate_and_is_reproducible():
    kin, clin = _tables()
    first = {r.definition: r for r in survival_by_definition(kin, followups(clin))[0]}["hand"]
    again = {r.definition: r for r in survival_by_definition(kin, followups(clin))[0]}["hand"]
    assert first.c_index_ci_low <= first.c_index <= first.c_index_ci_high
    assert (first.c_index_ci_low, first.c_index_ci_high) == (again.c_index_ci_low, again.c_index_ci_high)
    assert first.c_index_ci_low >= 0.0 and first.c_index_ci_high <= 1.0
    row = ranking([first]).iloc[0]
    assert row["c_index_ci_low"] == first.c_index_ci_low
