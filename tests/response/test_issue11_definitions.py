"""Issue #11: each added definition with a patient that meets it and one that just misses it
(on the threshold).

Convention used to make the numbers hand-computable: ``month_days = 30`` and both periods 30 days long, so
Δt = 1 month, TGR = 100·((D1/D0)^3 − 1) (diameters) or 100·(V1/V0 − 1) (volumes) and TGK = D1 − D0.
Dates: pre-baseline 2024-01-01, baseline 2024-01-31, ICI 2024-02-01, first evaluation 2024-03-01 (day 29).
"""

from __future__ import annotations

import pytest
from hpd_examples import ISSUE11_KEYS, SECTION_A_KEYS, labels, lesion, one

from hpd_imaging.response import ResponseConfig

CFG = ResponseConfig(month_days=30.0)
PRE, BASE, EVAL = "2024-01-01", "2024-01-31", "2024-03-01"
A = pytest.approx


def patient(d: tuple[float, float, float], *, stop: str | None = None, volumes=None, cfg=CFG) -> dict:
    rows = lesion(
        "p",
        "T1",
        dict(zip((PRE, BASE, EVAL), d, strict=True)),
        volumes=None if volumes is None else dict(zip((PRE, BASE, EVAL), volumes, strict=True)),
    )
    clin = {"patient_id": "p", "ici_start_date": "2024-02-01"}
    if stop:
        clin["treatment_stop_date"] = stop
    return one(rows, [clin], cfg)


# Case K: TGR_ref = 100·(1.5 − 1) = 50, TGR_exp = 100·(2 − 1) = 100 -> ratio exactly 2.000 and
# ΔTGR exactly 50;
# first evaluation +26 % (x 2^(1/3)) and +11.9 mm -> RECIST PD.
D_BASE = 40 * 1.5 ** (1 / 3)
CASE_K = (40.0, D_BASE, D_BASE * 2 ** (1 / 3))
CASE_K_MISS = (40.0, D_BASE, D_BASE * 1.99 ** (1 / 3))  # TGR_exp = 99 -> ratio 1.98


def test_case_k_numbers():
    r = patient(CASE_K)
    assert r["t_ref_months"] == 1.0 and r["t_exp_months"] == 1.0
    assert r["tgr_ref_pct_per_month"] == A(50.0) and r["tgr_exp_pct_per_month"] == A(100.0)
    assert r["tgr_ratio"] == A(2.0) and r["delta_tgr"] == A(50.0) and r["pd1"] is True


@pytest.mark.parametrize("key", ["kanjanapan2019", "champiat2017"])
def test_champiat_rule_ratio_exactly_two_meets_and_1_98_misses(key):
    assert labels(patient(CASE_K))[key] == "hpd"
    assert labels(patient(CASE_K_MISS))[key] == "no_hpd"


def test_ferrara_exactly_50_misses_and_lahmar_too():
    lab = labels(patient(CASE_K))  # ΔTGR = 50.000 is not > 50
    assert lab["ferrara2018"] == "no_hpd" and lab["lahmar2016"] == "no_hpd"


def test_lahmar_meets_without_recist_progression():
    # D 64 -> 30 -> 30: TGR_ref = 100·((30/64)^3 − 1) = −89.70, TGR_exp = 0 -> ΔTGR = 89.70 > 50, SD
    r = patient((64.0, 30.0, 30.0))
    assert r["tgr_ref_pct_per_month"] == A(100 * ((30 / 64) ** 3 - 1)) and r["delta_tgr"] == A(
        89.700, abs=1e-3
    )
    lab = labels(r)
    assert r["recist_first_eval"] == "SD"
    assert lab["lahmar2016"] == "hpd" and lab["ferrara2018"] == "no_hpd"


def test_kas_exactly_100_misses_and_above_meets():
    # D 40 -> 40 -> 40·2^(1/3): TGR_ref 0, TGR_exp 100 -> ΔTGR exactly 100 (not > 100); PD (+26 %, +10.4 mm)
    r = patient((40.0, 40.0, 40 * 2 ** (1 / 3)))
    assert r["delta_tgr"] == A(100.0) and labels(r)["kas2020"] == "no_hpd"
    # D 40 -> 40 -> 56: TGR_exp = 100·(1.4^3 − 1) = 174.4 -> ΔTGR 174.4 > 100
    r = patient((40.0, 40.0, 56.0))
    assert r["delta_tgr"] == A(174.4) and labels(r)["kas2020"] == "hpd"


@pytest.mark.parametrize("key", ["ji2019", "refae2020"])
def test_tgk_ratio_definitions(key):
    # D 40 -> 50 -> 70: TGK 10 then 20 -> TGKR = 2.000 exactly (meets >= 2); 69.9 -> 1.99 (misses)
    r = patient((40.0, 50.0, 70.0))
    assert r["tgk_ref_mm_per_month"] == 10.0 and r["tgk_exp_mm_per_month"] == 20.0 and r["tgk_ratio"] == 2.0
    assert labels(r)[key] == "hpd"
    r = patient((40.0, 50.0, 69.9))
    assert r["tgk_ratio"] == A(1.99) and labels(r)[key] == "no_hpd"


def test_sasaki_burden_threshold():
    # D 45 -> 50 -> 76: TGKR = 26/5 = 5.2, burden +52 % > 50 % -> hpd
    r = patient((45.0, 50.0, 76.0))
    assert r["tgk_ratio"] == A(5.2) and r["burden_change_pct"] == A(52.0)
    assert labels(r)["sasaki2019"] == "hpd"
    # D 45 -> 50 -> 75: TGKR 5.0 but burden exactly +50 % (not > 50 %) -> no
    r = patient((45.0, 50.0, 75.0))
    assert r["burden_change_pct"] == A(50.0) and labels(r)["sasaki2019"] == "no_hpd"
    # D 40 -> 50 -> 76: burden +52 % but TGKR 26/10 = 2.6; D 40 -> 50 -> 69.9: TGKR 1.99 -> no
    assert labels(patient((40.0, 50.0, 69.9)))["sasaki2019"] == "no_hpd"


def test_tunali_ttf_threshold():
    # case K (PD, ratio 2.000); ICI 2024-02-01: stop on day 60 (< 60.875) meets, day 61 misses
    assert labels(patient(CASE_K, stop="2024-04-01"))["tunali2019"] == "hpd"
    assert labels(patient(CASE_K, stop="2024-04-02"))["tunali2019"] == "no_hpd"
    # with a 60-day threshold, day 60 is on the threshold and "< 60" fails
    cfg60 = ResponseConfig(month_days=30.0, ttf_threshold_days=60)
    assert labels(patient(CASE_K, stop="2024-04-01", cfg=cfg60))["tunali2019"] == "no_hpd"
    assert labels(patient(CASE_K_MISS, stop="2024-04-01"))["tunali2019"] == "no_hpd"


def test_kim_y_volumetric():
    stop = "2024-03-20"  # TTF 48 d
    # V 1000 -> 1200 -> 1800: volumetric TGK 200 then 600 -> ratio 3; volume exactly +50 % (>= 50 %) -> hpd
    r = patient((30.0, 30.0, 30.0), stop=stop, volumes=(1000.0, 1200.0, 1800.0))
    assert r["vol_tgk_ratio"] == A(3.0) and r["volume_change_pct"] == A(50.0)
    assert labels(r)["kim_y2019_volumetric"] == "hpd"
    # V ... -> 1799: +49.92 % -> misses
    r = patient((30.0, 30.0, 30.0), stop=stop, volumes=(1000.0, 1200.0, 1799.0))
    assert labels(r)["kim_y2019_volumetric"] == "no_hpd"
    # V 1000 -> 2000 -> 3000: +50 % but volumetric TGKR = 1000/1000 = 1 -> misses
    r = patient((30.0, 30.0, 30.0), stop=stop, volumes=(1000.0, 2000.0, 3000.0))
    assert labels(r)["kim_y2019_volumetric"] == "no_hpd"


def test_volumetric_twins():
    # V 1000 -> 1500 -> 3000: TGR_V,ref = 50, TGR_V,exp = 100 -> ratio 2.000, ΔTGR_V 50.000, vol +100 % (PD)
    r = patient((30.0, 30.0, 30.0), volumes=(1000.0, 1500.0, 3000.0))
    assert r["vol_tgr_ref_pct_per_month"] == A(50.0) and r["vol_tgr_exp_pct_per_month"] == A(100.0)
    assert r["vol_pd1"] is True and r["pd1"] is False
    lab = labels(r)
    assert lab["champiat2017_vol"] == "hpd" and lab["ferrara2018_vol"] == "no_hpd"
    assert lab["saada_bouzid2017_vol"] == "hpd"  # TGK_V 500 -> 1500: 3.0
    # V ... -> 2985: TGR_V,exp 99 -> ratio 1.98 misses; ΔTGR_V 49 misses
    lab = labels(patient((30.0, 30.0, 30.0), volumes=(1000.0, 1500.0, 2985.0)))
    assert lab["champiat2017_vol"] == "no_hpd" and lab["ferrara2018_vol"] == "no_hpd"
    # V ... -> 3001: ΔTGR_V 50.07 > 50 -> meets
    assert labels(patient((30.0, 30.0, 30.0), volumes=(1000.0, 1500.0, 3001.0)))["ferrara2018_vol"] == "hpd"
    # V 1000 -> 1500 -> 2500: TGK_V ratio exactly 2 (meets); 2499 misses
    assert (
        labels(patient((30.0, 30.0, 30.0), volumes=(1000.0, 1500.0, 2500.0)))["saada_bouzid2017_vol"] == "hpd"
    )
    assert (
        labels(patient((30.0, 30.0, 30.0), volumes=(1000.0, 1500.0, 2499.0)))["saada_bouzid2017_vol"]
        == "no_hpd"
    )


def test_volumetric_pd_threshold_1728():
    # volume x1.728 exactly is volumetric PD; x1.727 is not
    assert patient((30.0, 30.0, 30.0), volumes=(1000.0, 1000.0, 1728.0))["vol_pd1"] is True
    assert patient((30.0, 30.0, 30.0), volumes=(1000.0, 1000.0, 1727.0))["vol_pd1"] is False


def test_every_registry_key_has_columns_and_reasons():
    from hpd_imaging.response import DEFINITIONS

    r = patient(CASE_K)
    for key in DEFINITIONS:
        assert r[f"hpd_{key}"] in ("hpd", "no_hpd", "not_evaluable")
        assert r[f"hpd_{key}_reason"].endswith(".")
    required = {*SECTION_A_KEYS, *ISSUE11_KEYS, "kim2019_tgk", "kim2019_tgr", "kim2019_ttf"}
    assert required <= set(DEFINITIONS)
    for d in DEFINITIONS.values():
        assert d.citation and d.summary and callable(d.rule)
