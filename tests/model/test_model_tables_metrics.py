"""Table joins (who is in, who is out and why) and metric / CI arithmetic against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from hpd_imaging.errors import ModelError
from hpd_imaging.model import build_training_table, make_feature_cohort, read_table
from hpd_imaging.model.metrics import (
    auc_score,
    calibration_slope_intercept,
    corrected_t_ci,
    net_benefit,
    threshold_metrics,
)


def _tables():
    feats = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4", "P5", "P9"],
            "f1": [1.0, 2, 3, 4, 5, 6],
            "diagnostics_version": ["3.0"] * 6,
            "flag": [True, False, True, False, True, False],
        }
    )
    labels = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4", "P5", "P7"],
            "hpd_champiat2017": ["hpd", "no_hpd", "not_evaluable", "hpd", "no_hpd", "hpd"],
        }
    )
    clinical = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P4", "P5"],
            "age": [70, 60, 55, 80],
            "sex": ["M", "F", "f", "male"],
            "ldh_above_uln": ["true", "false", "True", "no"],
        }
    )
    return feats, labels, clinical


def test_join_counts_not_evaluable_and_lists_unmatched_patients():
    feats, labels, clinical = _tables()
    t = build_training_table(
        feats,
        labels,
        "champiat2017",
        clinical=clinical,
        covariates=["age", "sex", "ldh_above_uln", "ecog_baseline"],
    )
    assert t.patient_ids == ["P1", "P2", "P4", "P5"]
    assert t.y.tolist() == [1, 0, 1, 0]
    assert t.n_excluded_not_evaluable == 1 and t.excluded_not_evaluable == ["P3"]
    assert t.patients_without_features == ["P7"]
    assert t.patients_without_labels == ["P9"]
    assert t.imaging_columns == ["f1", "flag"]  # the string diagnostics column is not a model input
    assert t.clinical_columns == ["age", "sex_male", "ldh_above_uln"]  # ecog absent -> skipped
    assert t.X["sex_male"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert t.X["ldh_above_uln"].tolist() == [1.0, 0.0, 1.0, 0.0]
    s = t.summary()
    assert (s["n_patients"], s["n_hpd"], s["prevalence"], s["n_excluded_not_evaluable"]) == (4, 2, 0.5, 1)


def test_clinical_covariates_passed_through_kinetics_are_used():
    feats, labels, clinical = _tables()
    labels = labels.merge(clinical[["patient_id", "age"]], how="left")
    t = build_training_table(feats, labels, "champiat2017", covariates=["age"])
    assert t.clinical_columns == ["age"] and t.X["age"].tolist() == [70, 60, 55, 80]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda f, lab: (f, lab.assign(hpd_champiat2017=["hpd", "maybe", "hpd", "no_hpd", "hpd", "hpd"])),
            r"labels\.csv: column 'hpd_champiat2017': expected one of "
            r"\['hpd', 'no_hpd', 'not_evaluable'\], got \['maybe'\]",
        ),
        (
            lambda f, lab: (f, lab.rename(columns={"hpd_champiat2017": "hpd_kato2017"})),
            r"expected label column 'hpd_champiat2017' \(definition 'champiat2017'\), got \['hpd_kato2017'\]",
        ),
        (
            lambda f, lab: (pd.concat([f, f.iloc[:1]]), lab),
            r"expected one row per patient, got duplicated patient_id \['P1'\]",
        ),
        (
            lambda f, lab: (f.assign(patient_id=[f"X{i}" for i in range(6)]), lab),
            "expected shared patient_id values",
        ),
        (lambda f, lab: (f, lab.assign(hpd_champiat2017="no_hpd")), "expected both 'hpd' and 'no_hpd'"),
        (lambda f, lab: (f.drop(columns="patient_id"), lab), "expected a 'patient_id' column"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(mutate, match):
    feats, labels, _ = _tables()
    labels.attrs["source"] = "labels.csv"
    f, lab = mutate(feats, labels)
    lab.attrs["source"] = "labels.csv"
    with pytest.raises(ModelError, match=match):
        build_training_table(f, lab, "champiat2017")


def test_read_table_csv_and_parquet(tmp_path):
    cohort = make_feature_cohort(20, seed=0)
    cohort.features.to_parquet(tmp_path / "f.parquet")
    cohort.features.to_csv(tmp_path / "f.csv", index=False)
    a, b = read_table(tmp_path / "f.parquet"), read_table(tmp_path / "f.csv")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert a.attrs["source"].endswith("f.parquet")
    (tmp_path / "f.xlsx").write_text("x")
    with pytest.raises(
        ModelError, match=r"f\.xlsx: expected a \.csv or \.parquet table, got suffix '\.xlsx'"
    ):
        read_table(tmp_path / "f.xlsx")
    with pytest.raises(ModelError, match="got no such file"):
        read_table(tmp_path / "missing.csv")


def test_synthetic_cohort_is_documented_size_and_prevalence():
    c = make_feature_cohort(100, prevalence=0.2, not_evaluable_fraction=0.1, seed=3)
    counts = c.kinetics["hpd_champiat2017"].value_counts()
    assert counts["not_evaluable"] == 10
    assert counts["hpd"] + counts["no_hpd"] == 90
    assert 14 <= counts["hpd"] <= 20  # 20 drawn as hpd, some then relabelled not_evaluable
    null = make_feature_cohort(100, signal_strength=0.0, seed=3)
    r = null.latent_risk.to_numpy()
    assert abs(np.corrcoef(null.features["signal_00"], r)[0, 1]) < 0.25  # independent at signal 0
    strong = make_feature_cohort(100, signal_strength=2.0, seed=3)
    assert np.corrcoef(strong.features["signal_00"], r)[0, 1] > 0.8  # 2 / sqrt(5) = 0.89 expected


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 57)
    p = np.round(rng.random(57), 1)  # many ties
    assert auc_score(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(auc_score(np.zeros(5), np.arange(5.0)))


def test_threshold_metrics_hand_example():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.1, 0.3, 0.2])
    m = threshold_metrics(y, p, 0.5)  # TP 2, FN 1, FP 1, TN 4
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(4 / 5)
    assert m["ppv"] == pytest.approx(2 / 3)
    assert m["npv"] == pytest.approx(4 / 5)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert np.isnan(threshold_metrics(y, p, 0.95)["ppv"])  # no predicted positive: undefined, not 0


def test_corrected_resampled_t_ci_hand_computed():
    # values .6 .7 .8 .9: mean .75, s^2 = 0.0166667; J = 4, n_test/n_train = 0.25
    # var = (1/4 + 1/4) * s^2 = 0.0083333; t_{3, 0.975} = 3.182446; half width = 0.290517
    res = corrected_t_ci(np.array([0.6, 0.7, 0.8, 0.9, np.nan]), 0.25, 0.95)
    assert res["estimate"] == pytest.approx(0.75)
    assert res["ci_low"] == pytest.approx(0.75 - 0.290517, abs=1e-5)
    assert res["ci_high"] == pytest.approx(0.75 + 0.290517, abs=1e-5)
    assert res["n_values"] == 4  # the undefined fold is left out
    naive_half = 3.182446 * np.sqrt(0.0166667 / 4)
    assert res["ci_high"] - res["estimate"] > 1.4 * naive_half  # the correction widens the naive CI


def test_calibration_slope_and_intercept_recover_known_miscalibration():
    rng = np.random.default_rng(5)
    lp = rng.normal(-1.0, 1.5, 20000)
    y = (rng.random(lp.size) < 1 / (1 + np.exp(-lp))).astype(float)
    slope, intercept = calibration_slope_intercept(y, 1 / (1 + np.exp(-lp)))
    assert slope == pytest.approx(1.0, abs=0.05) and intercept == pytest.approx(0.0, abs=0.05)
    slope2, _ = calibration_slope_intercept(y, 1 / (1 + np.exp(-2 * lp)))  # over-confident risks
    assert slope2 == pytest.approx(0.5, abs=0.03)
    _, intercept3 = calibration_slope_intercept(y, 1 / (1 + np.exp(-(lp - 1))))  # risks too low on average
    assert intercept3 > 0.5


def test_net_benefit_hand_example():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    risk = np.array([0.8, 0.1, 0.6, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    # threshold 0.2: TP 1, FP 1 -> 1/10 - 1/10 * 0.2/0.8 = 0.075
    assert net_benefit(y, risk, 0.2) == pytest.approx(0.075)
