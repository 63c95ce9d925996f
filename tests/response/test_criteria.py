"""RECIST 1.1 target selection and per-timepoint criteria: RECIST 1.1, iRECIST, irRC, irRECIST, imRECIST.

Each criterion gets a patient that meets its PD/PR threshold exactly and one that just misses it; the
confirmation rules are checked by scan spacing (27 vs 28 days; 84 vs 85 days for irRECIST)."""

from __future__ import annotations

import datetime as dt

import pytest
from hpd_examples import lesion, run

from hpd_imaging.response import ResponseConfig

BASE = dt.date(2024, 1, 1)
CLIN = [{"patient_id": "p", "ici_start_date": "2024-01-02"}]


def day(n: int) -> str:
    return (BASE + dt.timedelta(days=n)).isoformat()


def series(values: dict[int, float], lid: str = "T1", **kw) -> list[dict]:
    return lesion("p", lid, {day(k): v for k, v in values.items()}, **kw)


def response(rows: list[dict], cfg: ResponseConfig | None = None):
    res = run(rows, CLIN, cfg)
    on = res.response[res.response["role"].isin(["first_eval", "follow_up"])]
    return on.reset_index(drop=True), res


# ---- RECIST 1.1 target selection ------------------------------------------------------------------


def test_automatic_target_selection_rules():
    rows = []
    for lid, organ, d in [
        ("L1", "liver", 40),
        ("L2", "liver", 35),
        ("L3", "liver", 30),
        ("P1", "lung", 25),
        ("P2", "lung", 9),
        ("A1", "adrenal", 12),
        ("B1", "bone", 11),
    ]:
        rows += series({0: d, 60: d}, lid, organ=organ)
    rows += series({0: 16, 60: 16}, "N1", organ="lymph_node", node=True)  # SA 16 >= 15: measurable
    rows += series({0: 14, 60: 14}, "N2", organ="lymph_node", node=True)  # SA 14: pathological non-target
    rows += series({0: 8, 60: 8}, "N3", organ="lymph_node", node=True)  # SA 8: normal
    _, res = response(rows)
    t = res.targets.set_index("lesion_id")
    targets = list(t.index[t["role"] == "target"])
    # largest first, <= 2 per organ, <= 5 in total: L1 40, L2 35, P1 25, N1 16, A1 12
    # (L3 is a third liver lesion; B1 would be the sixth)
    assert sorted(targets) == sorted(["L1", "L2", "P1", "N1", "A1"])
    assert "already 2 targets in organ 'liver'" in t.loc["L3", "reason"]
    assert "already 5 targets" in t.loc["B1", "reason"]
    assert t.loc["P2", "role"] == "non_target" and "9 mm < 10 mm" in t.loc["P2", "reason"]
    assert t.loc["N2", "role"] == "non_target" and t.loc["N3", "role"] == "normal_node"
    assert set(t["selection"]) == {"automatic"}
    assert res.kinetics.iloc[0]["sld_baseline_mm"] == 40 + 35 + 25 + 16 + 12


def test_declared_targets_are_used():
    rows = series({0: 40, 60: 40}, "L1", organ="liver") + series({0: 12, 60: 30}, "L2", organ="liver")
    for r in rows:
        r["is_target"] = r["lesion_id"] == "L2"
    import pandas as pd

    from hpd_imaging.response import run_response

    res = run_response(pd.DataFrame(rows), pd.DataFrame(CLIN), ResponseConfig())
    assert res.kinetics.iloc[0]["sld_baseline_mm"] == 12 and res.kinetics.iloc[0]["n_targets"] == 1
    assert set(res.targets["selection"]) == {"declared"}


# ---- RECIST 1.1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(60.0, "PD"), (59.9, "SD"), (35.0, "PR"), (35.1, "SD"), (0, "CR")]
)
def test_recist_thresholds(value, expected):
    on, _ = response(series({0: 50, 56: value}))
    assert on.loc[0, "recist_response"] == expected


def test_recist_pd_needs_5mm_absolute():
    # 20 -> 24 is +20 % but only +4 mm: not PD; 20 -> 25 is PD
    assert response(series({0: 20, 56: 24}))[0].loc[0, "recist_response"] == "SD"
    assert response(series({0: 20, 56: 25}))[0].loc[0, "recist_response"] == "PD"


def test_recist_pd_against_nadir():
    on, _ = response(series({0: 50, 56: 30, 112: 36}))  # nadir 30 -> 36 = +20 %, +6 mm
    assert list(on["recist_response"]) == ["PR", "PD"]
    assert on.loc[1, "nadir_sld_mm"] == 30


def test_new_lesion_is_pd_and_non_target_unequivocal_progression():
    rows = series({0: 50, 56: 50}) + series({56: 12}, "NEW", organ="bone")
    assert response(rows)[0].loc[0, "recist_response"] == "PD"
    # non-target 10 -> 12 mm: volume x1.728 (12/10)^3 = 1.728 but only +2 mm -> not unequivocal
    rows = series({0: 50, 56: 50}) + series({0: 8, 56: 12}, "NT", organ="liver")
    on, _ = response(rows)
    assert on.loc[0, "non_target_response"] == "NON_CR_NON_PD" and on.loc[0, "recist_response"] == "SD"
    rows = series({0: 50, 56: 50}) + series({0: 8, 56: 13}, "NT", organ="liver")  # (13/8)^3 = 4.3, +5 mm
    on, _ = response(rows)
    assert on.loc[0, "non_target_response"] == "PD" and on.loc[0, "recist_response"] == "PD"


# ---- iRECIST --------------------------------------------------------------------------------------


def test_irecist_confirmation_by_5mm():
    on, _ = response(series({0: 50, 56: 60, 84: 65}))
    assert list(on["irecist_response"]) == ["iUPD", "iCPD"]
    assert "episode confirmed" in on.loc[0, "irecist_confirmation"]


def test_irecist_sequential_small_increases_add_up():
    on, _ = response(series({0: 50, 56: 60, 84: 64, 112: 66}))  # +4 mm then +2 mm -> iCPD
    assert list(on["irecist_response"]) == ["iUPD", "iUPD", "iCPD"]


def test_irecist_scan_too_early_does_not_confirm():
    on, _ = response(series({0: 50, 56: 60, 83: 70}))  # 27 days later
    assert list(on["irecist_response"]) == ["iUPD", "iUPD"] and "27 d" in on.loc[1, "irecist_confirmation"]


def test_irecist_reset_after_isd():
    on, _ = response(series({0: 50, 56: 60, 84: 55, 140: 62}))  # 55 = +10 % vs nadir 50: iSD resets the bar
    assert list(on["irecist_response"]) == ["iUPD", "iSD", "iUPD"]
    assert "not_confirmed" in on.loc[0, "irecist_confirmation"]
    assert "pending" in on.loc[2, "irecist_confirmation"]


def test_irecist_additional_new_lesion_confirms():
    rows = series({0: 50, 56: 50, 84: 50}) + series({56: 12, 84: 12}, "N1", organ="bone")
    rows += series({84: 11}, "N2", organ="liver")
    on, _ = response(rows)
    assert list(on["irecist_response"]) == ["iUPD", "iCPD"]


# ---- irRC -----------------------------------------------------------------------------------------


def irrc_rows(ld_follow: float, sa_follow: float = 20.0, extra: list[dict] | None = None) -> list[dict]:
    return series(
        {0: 20, 56: ld_follow, 84: ld_follow}, sa={day(0): 20, day(56): sa_follow, day(84): sa_follow}
    ) + (extra or [])


def test_irrc_pd_25_pct_from_nadir():
    on, _ = response(irrc_rows(25.0))  # 20x20 = 400 -> 25x20 = 500: +25 % exactly
    assert on.loc[0, "irrc_burden_mm2"] == 500 and on.loc[0, "irrc_response"] == "irPD"
    assert on.loc[0, "irrc_confirmation"] == "confirmed"  # 28 days later still 500
    on, _ = response(irrc_rows(24.95))  # 499: +24.75 %
    assert on.loc[0, "irrc_response"] == "irSD"


def test_irrc_pr_50_pct():
    assert response(irrc_rows(10.0))[0].loc[0, "irrc_response"] == "irPR"  # 200 = -50 %
    assert response(irrc_rows(10.05))[0].loc[0, "irrc_response"] == "irSD"  # 201


def test_irrc_adds_measurable_new_lesions_instead_of_pd():
    new = series({56: 10, 84: 10}, "NEW", organ="bone", sa={day(56): 10, day(84): 10})  # 10 x 10 = 100
    on, _ = response(irrc_rows(20.0, extra=new))
    assert on.loc[0, "irrc_burden_mm2"] == 500 and on.loc[0, "irrc_response"] == "irPD"
    assert on.loc[0, "recist_response"] == "PD"
    small = series({56: 10, 84: 10}, "NEW", organ="bone", sa={day(56): 4, day(84): 4})  # 4 mm: not measurable
    on, _ = response(irrc_rows(20.0, extra=small))
    assert on.loc[0, "irrc_burden_mm2"] == 400 and on.loc[0, "irrc_response"] == "irSD"


def test_irrc_confirmation_needs_4_weeks():
    rows = series({0: 20, 56: 25, 83: 25}, sa={day(0): 20, day(56): 20, day(83): 20})
    on, _ = response(rows)
    assert on.loc[0, "irrc_confirmation"] == "pending"  # only a scan 27 d later
    rows = series({0: 20, 56: 25, 84: 20}, sa={day(0): 20, day(56): 20, day(84): 20})
    assert response(rows)[0].loc[0, "irrc_confirmation"] == "not_confirmed"


# ---- irRECIST and imRECIST ------------------------------------------------------------------------


def test_irrecist_and_imrecist_incorporate_new_measurable_lesions():
    rows = series({0: 50, 56: 50, 84: 50}) + series(
        {56: 10, 84: 10}, "NEW", organ="bone"
    )  # 10 mm: measurable
    on, _ = response(rows)
    assert on.loc[0, "irrecist_burden_mm"] == 60 and on.loc[0, "irrecist_response"] == "irPD"
    assert on.loc[0, "imrecist_response"] == "PD" and on.loc[0, "irrecist_confirmation"] == "confirmed"
    rows = series({0: 50, 56: 50, 84: 50}) + series({56: 9.9, 84: 9.9}, "NEW", organ="bone")  # not measurable
    on, _ = response(rows)
    assert on.loc[0, "recist_response"] == "PD"  # a new lesion is PD for RECIST 1.1 ...
    assert on.loc[0, "irrecist_response"] == "irSD" and on.loc[0, "imrecist_response"] == "SD"  # ... not here


def test_imrecist_ignores_non_target_progression_irrecist_does_not():
    rows = series({0: 50, 56: 50}) + series({0: 8, 56: 13}, "NT", organ="liver")
    on, _ = response(rows)
    assert on.loc[0, "non_target_response"] == "PD"
    assert on.loc[0, "irrecist_response"] == "irPD" and on.loc[0, "imrecist_response"] == "SD"


def test_irrecist_confirmation_window_4_to_12_weeks():
    on, _ = response(series({0: 50, 56: 60, 140: 70}))  # next scan 84 d later: inside
    assert (
        on.loc[0, "irrecist_confirmation"] == "confirmed"
        and on.loc[0, "imrecist_confirmation"] == "confirmed"
    )
    on, _ = response(series({0: 50, 56: 60, 141: 70}))  # 85 d later: outside irRECIST's window
    assert on.loc[0, "irrecist_confirmation"] == "not_confirmed_outside_window"
    assert on.loc[0, "imrecist_confirmation"] == "confirmed"


def test_non_target_growth_from_a_vanishing_nadir_is_pd_not_an_overflow():
    """A non-target nadir of 1e-137 mm (hypothesis found it) made (sum / nadir) ** 3 overflow; the volume
    ratio is unbounded, so the non-target rule is met, not a crash."""
    rows = series({0: 40, 60: 40, 120: 40}) + series({0: 9, 60: 1e-137, 120: 9.0}, "P2", organ="lung")
    on, _ = response(rows)
    assert list(on["recist_response"]) == ["SD", "PD"]
    # one step below the +5 mm absolute rule (4.9 mm) is not PD, whatever the ratio
    rows = series({0: 40, 60: 40, 120: 40}) + series({0: 9, 60: 1e-137, 120: 4.9}, "P2", organ="lung")
    on, _ = response(rows)
    assert list(on["recist_response"]) == ["SD", "SD"]
