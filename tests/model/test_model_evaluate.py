"""Done-when evidence of the nested evaluation, on the feature-level synthetic cohort (signal known).

Cohorts: 80 patients, 20 % drawn as HPD, 10 % then relabelled not_evaluable; 5 signal + 3 redundant + 20 noise
features, a constant column, two volume columns weakly tied to the latent risk. Small settings keep it fast:
a one-point grid (C 0.5, k 5), 5 folds x 2 repeats outer, 3 calibration folds, 3 inner folds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hpd_imaging.model import ModelSettings, evaluate, make_feature_cohort
from hpd_imaging.model.metrics import ALL_METRICS

FAST = {
    "c_grid": [0.5],
    "k_best_grid": [5],
    "outer_splits": 5,
    "outer_repeats": 2,
    "n_bootstrap": 200,
    "clinical_in_model": False,
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    cohort = make_feature_cohort(80, prevalence=0.2, signal_strength=2.0, n_noise=20, seed=3)
    out = tmp_path_factory.mktemp("eval_planted")
    settings = ModelSettings(**FAST, n_permutations=2)
    return (
        cohort,
        evaluate(
            cohort.features, cohort.kinetics, "champiat2017", settings, clinical=cohort.clinical, out_dir=out
        ),
        out,
    )


@pytest.fixture(scope="module")
def null():
    cohort = make_feature_cohort(80, prevalence=0.2, signal_strength=0.0, n_noise=20, seed=1)
    settings = ModelSettings(**FAST, n_permutations=0, baselines=False)
    return evaluate(cohort.features, cohort.kinetics, "champiat2017", settings)


def test_planted_signal_auc_ci_above_chance_and_beats_volume(planted):
    _, result, _ = planted
    m = result.metrics
    assert m["auc"]["ci_low"] > 0.5, m["auc"]
    assert m["auc"]["estimate"] > 0.85  # measured 0.95 [0.88, 1.00]
    vol = m["baselines"]["volume_only"]
    assert vol["features"] == ["total_volume_mm3", "largest_lesion_volume_mm3"]
    assert m["auc"]["estimate"] > vol["auc"]["estimate"]  # measured 0.95 vs 0.71
    assert m["baselines"]["volume_only"]["auc_difference_model_minus_baseline"]["estimate"] > 0
    assert m["baselines"]["clinical_only"]["features"] == [
        "age",
        "n_metastatic_sites",
        "ldh_above_uln",
        "ecog_baseline",
        "sex_male",
    ]


def test_permuted_labels_give_chance_auc(planted):
    perm = planted[1].metrics["permutation"]
    assert perm["n_permutations"] == 2
    assert perm["auc"]["ci_low"] <= 0.5 <= perm["auc"]["ci_high"], perm
    assert abs(perm["auc"]["estimate"] - 0.5) < 0.15
    assert perm["p_value"] == pytest.approx(1 / 3)  # neither permutation reaches the observed AUC


def test_no_signal_auc_ci_contains_chance(null):
    auc = null.metrics["auc"]
    assert auc["ci_low"] <= 0.5 <= auc["ci_high"], auc
    assert null.metrics["baselines"] == {}


def test_outputs_written_and_complete(planted):
    cohort, result, out = planted
    for name in (
        "metrics.json",
        "oof_predictions.csv",
        "patient_summary.csv",
        "fold_metrics.csv",
        "feature_selection_frequency.csv",
        "decision_curve.csv",
        "roc.png",
        "pr.png",
        "calibration.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "metrics.json").read_text())
    for name in ALL_METRICS:
        assert set(m[name]) >= {"estimate", "ci_low", "ci_high", "method"}, name
        assert m[name]["ci_low"] <= m[name]["estimate"] <= m[name]["ci_high"], name
    n_ne = int((cohort.kinetics["hpd_champiat2017"] == "not_evaluable").sum())
    assert m["n_excluded_not_evaluable"] == n_ne == 8
    assert m["n_patients"] == 72 and m["cv"]["n_outer_folds"] == 10
    oof = pd.read_csv(out / "oof_predictions.csv")
    # every evaluable patient predicted exactly once per repeat, for the model and both baselines
    counts = oof.groupby(["model", "patient_id"]).size()
    assert set(counts) == {2} and len(counts) == 3 * 72
    assert set(oof["model"]) == {"model", "clinical_only", "volume_only"}
    dca = pd.read_csv(out / "decision_curve.csv")
    prev = m["prevalence"]
    row = dca[np.isclose(dca["threshold"], 0.1)].iloc[0]
    assert row["net_benefit_treat_all"] == pytest.approx(prev - (1 - prev) * 0.1 / 0.9, abs=1e-3)
    assert row["net_benefit_model"] > row["net_benefit_treat_all"]


def test_selection_frequency_favours_planted_features(planted):
    sel = planted[1].selection_frequency.set_index("feature")["frequency"]
    informative = sel[sel.index.str.startswith(("signal_", "redundant_"))]
    noise = sel[sel.index.str.startswith("noise_")]
    assert informative.mean() > 3 * noise.mean()
    assert sel["constant_feature"] == 0.0
