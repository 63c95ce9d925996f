"""Audit of the response stage against specs/hpd_kinetics.md: output schema (section A), edge cases of
sections 1-3 and policies of section 7 that the worked examples do not reach."""

from __future__ import annotations

import pytest
from hpd_examples import labels, lesion, one

from hpd_imaging.response import DEFINITIONS, ResponseConfig

A = pytest.approx

SECTION_A_COLUMNS = [
    "patient_id",
    "pre_baseline_date",
    "baseline_date",
    "first_eval_date",
    "ici_start_date",
    "sld_pre_baseline_mm",
    "sld_baseline_mm",
    "sld_first_eval_mm",
    "volume_pre_baseline_mm3",
    "volume_baseline_mm3",
    "volume_first_eval_mm3",
    "tgr_ref_pct_per_month",
    "tgr_exp_pct_per_month",
    "tgr_ratio",
    "delta_tgr",
    "tgk_ref_mm_per_month",
    "tgk_exp_mm_per_month",
    "tgk_ratio",
    "vol_tgr_ref_pct_per_month",
    "vol_tgr_exp_pct_per_month",
    "vol_tgr_ratio",
    "vol_delta_tgr",
    "recist_first_eval",
    "ttf_days",
]
SECTION_A_KEYS = [
    "champiat2017",
    "saada_bouzid2017",
    "kato2017",
    "ferrara2018",
    "lo_russo2019",
    "kim2019",
    "matos2020",
    "kas2020",
    "gandara2021",
    "champiat2017_vol",
    "ferrara2018_vol",
    "saada_bouzid2017_vol",
]
ISSUE11_KEYS = [
    "lahmar2016",
    "kanjanapan2019",
    "sasaki2019",
    "ji2019",
    "refae2020",
    "tunali2019",
    "kim_y2019_volumetric",
]


def test_section_a_schema_exact_column_names(tmp_path):
    """Every column section A lists (and a label + reason per definition key of section 2 and issue #11) is
    in kinetics.csv under that exact name; recist_first_eval is one of CR/PR/SD/PD/NE."""
    import pandas as pd
    from hpd_examples import run

    from hpd_imaging.response import write_outputs

    rows = lesion("a", "T1", {"2024-01-02": 50, "2024-03-01": 55, "2024-05-03": 80})
    rows += lesion("b", "T1", {"2024-02-01": 40, "2024-04-01": 40, "2024-06-03": 52})  # Example 3: ÷0 ratios
    result = run(
        rows,
        [
            {"patient_id": "a", "ici_start_date": "2024-03-08"},
            {"patient_id": "b", "ici_start_date": "2024-04-03"},
        ],
    )
    path = tmp_path / "kinetics.csv"
    write_outputs(result, path)
    header = pd.read_csv(path, nrows=0).columns.tolist()
    expected = list(SECTION_A_COLUMNS)
    for key in [*SECTION_A_KEYS, *ISSUE11_KEYS]:
        assert key in DEFINITIONS, key
        expected += [f"hpd_{key}", f"hpd_{key}_reason"]
    assert [c for c in expected if c not in header] == []
    kin = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("patient_id")
    assert set(kin["recist_first_eval"]) <= {"CR", "PR", "SD", "PD", "NE"}
    assert kin.loc["b", "tgr_ratio"] == "" and kin.loc["b", "tgk_ratio"] == ""  # undefined: empty cell


# ---- nonpositive_reference_policy ------------------------------------------------------------------------


def shrinking_faster(cfg: ResponseConfig) -> dict:
    """D 60 -> 50 -> 20 over 30-day months: TGK_ref = -10, TGK_exp = -30 mm/month (a response on ICI)."""
    rows = lesion("s", "T1", {"2024-01-01": 60, "2024-01-31": 50, "2024-03-01": 20})
    return one(rows, [{"patient_id": "s", "ici_start_date": "2024-02-01"}], cfg)


@pytest.mark.parametrize(
    "policy", ["inequality_if_exp_positive", "strict_ratio", "not_evaluable", "infinite_acceleration"]
)
def test_negative_reference_and_shrinking_on_treatment_is_never_hpd(policy):
    """Spec 1.5: with TGR_ref < 0 and TGR_exp < 0 the naive ratio is positive but its meaning is inverted
    (TGK -30 / -10 = 3 is faster *shrinkage*); strict_ratio means 'ratio form -> no', never HPD."""
    r = shrinking_faster(ResponseConfig(month_days=30.0, nonpositive_reference_policy=policy))
    assert r["tgk_ref_mm_per_month"] == A(-10.0) and r["tgk_exp_mm_per_month"] == A(-30.0)
    assert r["tgk_ratio"] == A(3.0)  # the naive ratio is still reported
    lab = labels(r)
    expected = "not_evaluable" if policy == "not_evaluable" else "no_hpd"
    for key in ("saada_bouzid2017", "ji2019", "refae2020", "kim2019_tgk", "kim2019_tgr"):
        assert lab[key] == expected, (key, r[f"hpd_{key}_reason"])


# ---- early_death_policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("death", "expected"),
    [
        ("2024-02-10", "hpd"),
        ("2024-03-29", "hpd"),
        ("2024-03-30", "not_evaluable"),
        ("2024-11-01", "not_evaluable"),
    ],
)
def test_early_death_policy_hpd_only_within_12_weeks(death, expected):
    """Spec 7: early_death_policy hpd is Gandara-style (death <= 12 weeks = 84 d); ICI 2024-01-05: day 36 and
    day 84 count, day 85 and day 301 without an evaluation scan stay not evaluable."""
    rows = lesion("d", "T1", {"2023-11-01": 40, "2024-01-02": 44})
    clin = [
        {
            "patient_id": "d",
            "ici_start_date": "2024-01-05",
            "death_date": death,
            "death_from_progression": True,
        }
    ]
    r = one(rows, clin, ResponseConfig(early_death_policy="hpd"))
    assert labels(r)["ferrara2018"] == expected, r["hpd_ferrara2018_reason"]
    r = one(rows, clin, ResponseConfig(early_death_policy="hpd", early_death_window_days=400))
    assert labels(r)["ferrara2018"] == "hpd"
