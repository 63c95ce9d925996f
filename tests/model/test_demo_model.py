"""The shipped demo model (models/hpd_demo_synthetic.skops) and the claim that makes it usable under the
default pipeline config: it was trained on radiomics from pipelines/radiomics_ct_original.yaml (Original
image type only), whose original_* features equal those of pipelines/radiomics_ct.yaml (Original + LoG +
Wavelet)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.model import load_model, predict
from hpd_imaging.model.demo import DEMO_CONFIG, DEMO_NAME, DEMO_SYNTH, REBUILD_COMMAND
from hpd_imaging.model.persist import card_path_for, file_sha256
from hpd_imaging.radiomics import extract_lesion_features, load_params
from hpd_imaging.radiomics.aggregate import aggregate_patient
from hpd_imaging.settings import REPO_PIPELINES, load_config

REPO = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO / "models" / f"{DEMO_NAME}.skops"
FULL_PARAMS = REPO_PIPELINES / "radiomics_ct.yaml"
ORIGINAL_PARAMS = REPO_PIPELINES / "radiomics_ct_original.yaml"
SPACING = (0.8, 0.8, 2.5)  # (i, j, k) mm: anisotropic, so the 1 mm resampling is exercised


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _phantom() -> tuple[CtImage, list[LesionMask]]:
    """A soft-tissue body with a lung, a heterogeneous 6 mm lung lesion and a 5 mm liver-like lesion."""
    shape = (16, 64, 64)
    geo = ImageGeometry(shape=shape, spacing_mm=SPACING, origin_mm=(-25.0, -25.0, 0.0))
    k, j, i = np.indices(shape).astype(float)
    z, y, x = k * SPACING[2], j * SPACING[1], i * SPACING[0]
    rng = np.random.default_rng(11)
    hu = np.full(shape, -1000.0)
    hu[(y - 25) ** 2 + (x - 25) ** 2 <= 24**2] = 45.0
    hu[(y - 25) ** 2 + (x - 18) ** 2 <= 11**2] = -820.0
    hu += rng.normal(0, 12, shape)
    lung_lesion = (z - 20) ** 2 + (y - 25) ** 2 + (x - 18) ** 2 <= 6**2
    hu[lung_lesion] = 40.0 + rng.normal(0, 30, int(lung_lesion.sum()))
    liver_lesion = (z - 20) ** 2 + (y - 25) ** 2 + (x - 38) ** 2 <= 5**2
    hu[liver_lesion] = 70.0 + rng.normal(0, 15, int(liver_lesion.sum()))
    ct = CtImage(hu=hu.astype(np.float32), geometry=geo, source="phantom")
    masks = [LesionMask(mask=m, geometry=geo, label=lab, source=MaskSource.LABELMAP, lesion_id=lab)
             for m, lab in ((lung_lesion, "L01"), (liver_lesion, "L02"))]
    return ct, masks


@pytest.fixture(scope="module")
def extractions() -> dict[str, pd.DataFrame]:
    """Per-lesion features (lesion + 5 mm ring, as the pipeline extracts) under both params files."""
    ct, masks = _phantom()
    ring = load_config(None).radiomics.ring_widths_mm
    out = {}
    for name, path in (("full", FULL_PARAMS), ("original", ORIGINAL_PARAMS)):
        r = extract_lesion_features(ct, masks, load_params(path), ring_widths_mm=ring, patient_id="P1")
        assert r.errors == []
        out[name] = r.features
    return out


@pytest.fixture(scope="module")
def shipped():
    return load_model(MODEL_PATH), json.loads(card_path_for(MODEL_PATH).read_text(encoding="utf-8"))


def test_training_params_are_the_original_subset_of_the_default_params() -> None:
    full, original = _yaml(FULL_PARAMS), _yaml(ORIGINAL_PARAMS)
    assert original["setting"] == full["setting"]
    assert original["featureClass"] == full["featureClass"]
    assert original["imageType"] == {"Original": {}} and "Original" in full["imageType"]
    # the default config uses the full params; the training config differs from it only there and in
    # model.clinical_in_model (the model is imaging-only)
    default, training = _yaml(REPO_PIPELINES / "default.yaml"), _yaml(DEMO_CONFIG)
    assert default["radiomics"]["params_file"] == FULL_PARAMS.name
    assert training["radiomics"]["params_file"] == ORIGINAL_PARAMS.name
    assert load_config(DEMO_CONFIG).radiomics.ring_widths_mm == load_config(None).radiomics.ring_widths_mm
    for section in set(default) | set(training):
        if section not in ("radiomics", "model"):
            assert training.get(section) == default.get(section), section
    assert {k: v for k, v in training["radiomics"].items() if k != "params_file"} == {
        k: v for k, v in default["radiomics"].items() if k != "params_file"
    }


def test_original_features_are_identical_under_both_params(extractions) -> None:
    full, original = extractions["full"], extractions["original"]
    keys = ["lesion_id", "region"]
    full, original = full.set_index(keys).sort_index(), original.set_index(keys).sort_index()
    assert list(original.index) == [
        ("L01", "lesion"), ("L01", "ring5mm"), ("L02", "lesion"), ("L02", "ring5mm")
    ]
    cols = [c for c in original.columns if c.startswith("original_")]
    # 14 shape + 93 intensity/texture features (18 firstorder, 24 glcm, 16 glrlm, 16 glszm, 14 gldm, 5 ngtdm)
    assert len(cols) == 107
    assert not [c for c in original.columns if c.startswith(("log-", "wavelet-"))]
    assert len([c for c in full.columns if c.startswith(("log-", "wavelet-"))]) == 13 * 93
    a, b = original[cols].to_numpy(float), full.loc[original.index, cols].to_numpy(float)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)  # bit-identical, not merely close


def test_shipped_model_loads_and_card_says_synthetic(shipped) -> None:
    model, card = shipped  # load_model checked the sha256 and the trusted-type list
    assert card["model_file"]["sha256"] == file_sha256(MODEL_PATH)
    assert card["synthetic"] is True and card["not_for_clinical_use"] is True
    assert card["warning"].startswith("SYNTHETIC DATA - NOT FOR CLINICAL USE")
    assert card["label"]["definition"] == model.definition == "champiat2017"
    notes = card["notes"]
    assert notes["rebuild"] == REBUILD_COMMAND
    cohort = notes["training_cohort"]
    assert {k: cohort["synth_settings"][k] for k in DEMO_SYNTH} == DEMO_SYNTH
    assert cohort["n_patients_generated"] == DEMO_SYNTH["n_patients"]
    summary = card["training_data"]
    assert summary["n_patients"] == cohort["n_evaluable_with_features"]
    assert summary["n_hpd"] == cohort["n_hpd"]
    assert 0.08 <= cohort["prevalence_hpd"] <= 0.25
    # every generated patient went through the pipeline (a follow-up CT without a SEG, written by synth when
    # every lesion disappeared, reads as no visible lesion): no patient is lost before labelling, so the
    # only exclusions are not_evaluable labels
    assert cohort["pipeline_failed_patients"] == []
    assert sum(cohort["labels"].values()) == cohort["n_patients_generated"]
    assert set(cohort["labels"]) <= {"hpd", "no_hpd", "not_evaluable"}
    assert cohort["n_evaluable_with_features"] == cohort["labels"]["hpd"] + cohort["labels"]["no_hpd"]
    # complete responders are in the training set as no_hpd (the previous build lost 9 of them)
    assert cohort["phenotype_by_label"]["responder"] == {"no_hpd": cohort["phenotypes"]["responder"]}
    for metric in ("auc", "balanced_accuracy", "brier"):
        m = card["metrics"][metric]
        assert m["ci_low"] <= m["estimate"] <= m["ci_high"], metric
    assert model.clinical_columns == []  # imaging-only: runs from radiomics_patient.parquet alone


def test_model_features_are_produced_by_the_default_config(shipped, extractions) -> None:
    """Every input column of the model is a column of radiomics_patient.parquet under the DEFAULT config."""
    model, _ = shipped
    patient = aggregate_patient(extractions["full"], None)
    numeric = {c for c in patient.columns if pd.api.types.is_numeric_dtype(patient[c])}
    missing = [c for c in model.feature_names if c not in numeric]
    assert missing == []
    assert all("log-" not in c and "wavelet-" not in c for c in model.feature_names)
    assert any(c.startswith("largest_ring5mm_original_") for c in model.feature_names)
    assert "total_volume_mm3" in model.feature_names


def test_shipped_model_predicts_on_default_config_features(shipped, extractions) -> None:
    model, _ = shipped
    lesions = pd.DataFrame({"patient_id": ["P1", "P1"], "lesion_id": ["L01", "L02"],
                            "volume_mm3": [900.0, 520.0], "is_new": [False, False]})
    features = extractions["full"]
    features = pd.concat([features, features.assign(patient_id="P2")], ignore_index=True)
    patient = aggregate_patient(features, pd.concat([lesions, lesions.assign(patient_id="P2")]))
    out = predict(model, patient)
    assert list(out["patient_id"]) == ["P1", "P2"]
    assert out["hpd_risk"].between(0, 1).all() and out["hpd_risk"].nunique() == 1
    assert set(out["predicted_hpd"]) <= {"hpd", "no_hpd"}


def test_run_study_with_the_shipped_model_writes_predictions(tmp_path: Path) -> None:
    """A small `hpd-imaging synth` cohort through run_study --model: predictions.csv with risk and label."""
    from hpd_imaging.pipeline import run_study
    from hpd_imaging.synth import SynthSettings, generate_archive

    archive = tmp_path / "archive"
    generate_archive(archive, SynthSettings(n_patients=2, seed=3, matrix=64, scan_length_mm=100.0,
                                            n_followups=1, min_lesions=2, max_lesions=2,
                                            phenotypes=["hyperprogressor", "stable"]))
    # the training config: its original_* columns equal the default config's (tests above), and it is fast
    summary = run_study(archive, tmp_path / "run", DEMO_CONFIG, model_path=MODEL_PATH, workers=1)
    assert "predictions" in summary.outputs, summary.errors.to_dict("records")
    preds = pd.read_csv(summary.outputs["predictions"], dtype={"patient_id": str})
    assert list(preds["patient_id"]) == ["SYN001", "SYN002"]
    assert preds["hpd_risk"].between(0, 1).all()
    assert set(preds["predicted_hpd"]) <= {"hpd", "no_hpd"}
    assert set(preds["definition"]) == {"champiat2017"}
    assert set(preds["hpd_champiat2017"]) <= {"hpd", "no_hpd", "not_evaluable"}
