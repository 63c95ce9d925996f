"""skops round trip, sha256 / trusted-type refusals, model card content, and predict()."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator

from hpd_imaging.errors import ModelError
from hpd_imaging.model import ModelSettings, load_model, make_feature_cohort, predict, save_model, train
from hpd_imaging.model.persist import PAYLOAD_FORMAT, card_path_for, file_sha256

SETTINGS = ModelSettings(c_grid=[0.5, 1.0], k_best_grid=[5])


class SmuggledEstimator(BaseEstimator):
    """Stands for any type a stranger's file could carry (not in TRUSTED_TYPES)."""


@pytest.fixture(scope="module")
def cohort():
    return make_feature_cohort(60, prevalence=0.2, signal_strength=2.0, n_noise=10, seed=4)


@pytest.fixture(scope="module")
def trained(cohort):
    return train(cohort.features, cohort.kinetics, "champiat2017", SETTINGS, clinical=cohort.clinical)


@pytest.fixture
def saved(trained, tmp_path):
    path, card = save_model(trained, tmp_path / "demo.skops", synthetic=True)
    return path, card


def test_round_trip_gives_identical_predictions(trained, saved, cohort):
    loaded = load_model(saved[0])
    a = predict(trained, cohort.features, cohort.kinetics, clinical=cohort.clinical)
    b = predict(loaded, cohort.features, cohort.kinetics, clinical=cohort.clinical)
    pd.testing.assert_frame_equal(a, b)
    assert np.array_equal(a["hpd_risk"].to_numpy(), b["hpd_risk"].to_numpy())  # bit-identical
    assert loaded.threshold == trained.threshold and loaded.feature_names == trained.feature_names


def test_card_holds_sha256_training_summary_and_flags(trained, saved, cohort):
    path, card_path = saved
    assert card_path == card_path_for(path) and card_path.name == "demo.skops.card.json"
    card = json.loads(card_path.read_text())
    assert card["model_file"]["sha256"] == file_sha256(path)
    assert card["synthetic"] is True and "NOT FOR CLINICAL USE" in card["warning"]
    n_ne = int((cohort.kinetics["hpd_champiat2017"] == "not_evaluable").sum())
    assert card["training_data"]["n_excluded_not_evaluable"] == n_ne == 6
    assert card["training_data"]["n_patients"] == 54
    assert card["label"]["column"] == "hpd_champiat2017"
    assert card["features"]["inputs"] == trained.feature_names
    assert {"age", "sex_male"} <= set(card["features"]["clinical_columns"])
    assert card["threshold"]["rule"] == "prevalence"
    assert card["threshold"]["value"] == pytest.approx(card["training_data"]["n_hpd"] / 54)
    assert card["versions"]["scikit-learn"] and card["versions"]["skops"]
    assert card["estimator"]["best_params"]["clf__C"] in (0.5, 1.0)


def test_tampered_model_file_is_refused(saved):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch: expected [0-9a-f]{64} .* refusing to load"):
        load_model(path)


def test_untrusted_type_is_refused_even_with_a_matching_sha256(saved):
    path, card_path = saved
    sio.dump({"format": PAYLOAD_FORMAT, "estimator": SmuggledEstimator()}, path)
    card = json.loads(card_path.read_text())
    card["model_file"]["sha256"] = file_sha256(path)  # an attacker can rewrite the card too
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"untrusted type\(s\) in model file: \['.*SmuggledEstimator'\]"):
        load_model(path)


def test_card_model_disagreement_and_missing_card_are_refused(saved):
    path, card_path = saved
    card = json.loads(card_path.read_text())
    card["threshold"]["value"] = 0.01
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelError, match="model and card disagree on threshold"):
        load_model(path)
    card_path.unlink()
    with pytest.raises(ModelError, match=r"expected its model card demo\.skops\.card\.json next to it"):
        load_model(path)


def test_save_refuses_untrusted_types_and_bad_names(trained, tmp_path):
    with pytest.raises(ModelError, match=r"expected a file name ending in \.skops"):
        save_model(trained, tmp_path / "model.pkl")
    import dataclasses

    smuggling = dataclasses.replace(trained, estimator=SmuggledEstimator())
    with pytest.raises(ModelError, match="outside the trusted list"):
        save_model(smuggling, tmp_path / "bad.skops")
    assert not (tmp_path / "bad.skops").exists()


def test_predict_columns_threshold_and_labels_side_by_side(trained, cohort):
    out = predict(trained, cohort.features, cohort.kinetics, clinical=cohort.clinical)
    assert list(out.columns) == [
        "patient_id",
        "hpd_risk",
        "predicted_hpd",
        "threshold",
        "definition",
        "hpd_champiat2017",
    ]
    assert len(out) == 60  # not_evaluable patients are predicted too; their label says so
    assert out["hpd_risk"].between(0, 1).all()
    assert ((out["hpd_risk"] >= trained.threshold) == (out["predicted_hpd"] == "hpd")).all()
    assert out.set_index("patient_id")["hpd_champiat2017"].equals(
        cohort.kinetics.set_index("patient_id")["hpd_champiat2017"].astype(str)
    )
    evaluable = out[out["hpd_champiat2017"] != "not_evaluable"]
    # apparent (training) discrimination of a planted signal: high, and risk is higher in the hpd group
    assert evaluable.groupby("hpd_champiat2017")["hpd_risk"].mean().diff().iloc[-1] < 0


def test_predict_refuses_missing_features_and_missing_clinical(trained, cohort):
    feats = cohort.features.drop(columns=["signal_00"])
    feats.attrs["source"] = "new.parquet"
    with pytest.raises(
        ModelError,
        match=r"new\.parquet: expected the model's \d+ feature columns, got 1 missing: "
        r"\['signal_00'\]",
    ):
        predict(trained, feats, clinical=cohort.clinical)
    with pytest.raises(ModelError, match="expected a clinical table"):
        predict(trained, cohort.features)
