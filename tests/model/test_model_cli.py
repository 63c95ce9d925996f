"""`hpd-imaging evaluate | train | predict` end to end on CSV/Parquet files, and exit code 2 on bad input."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from hpd_imaging.cli import app
from hpd_imaging.model import make_feature_cohort

CONFIG = """model:
  c_grid: [0.5]
  k_best_grid: [5]
  outer_splits: 3
  outer_repeats: 1
  n_permutations: 0
  n_bootstrap: 100
"""


def test_evaluate_train_predict_commands(tmp_path):
    c = make_feature_cohort(50, prevalence=0.2, signal_strength=2.0, n_noise=10, seed=2)
    c.features.to_parquet(tmp_path / "radiomics_patient.parquet")
    c.kinetics.to_csv(tmp_path / "kinetics.csv", index=False)
    c.clinical.to_csv(tmp_path / "clinical.csv", index=False)
    (tmp_path / "model.yaml").write_text(CONFIG)
    common = [
        "--features",
        str(tmp_path / "radiomics_patient.parquet"),
        "--labels",
        str(tmp_path / "kinetics.csv"),
        "--definition",
        "champiat2017",
        "--config",
        str(tmp_path / "model.yaml"),
        "--quiet",
    ]
    runner = CliRunner()

    res = runner.invoke(
        app,
        ["evaluate", *common, "--clinical", str(tmp_path / "clinical.csv"), "--out", str(tmp_path / "eval")],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["cv"]["outer_splits"] == 3 and metrics["label_definition"] == "champiat2017"

    res = runner.invoke(
        app,
        [
            "train",
            *common,
            "--out",
            str(tmp_path / "m.skops"),
            "--synthetic",
            "--metrics",
            str(tmp_path / "eval" / "metrics.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "m.skops.card.json").read_text())
    assert card["metrics"]["auc"]["estimate"] == metrics["auc"]["estimate"] and card["synthetic"] is True

    res = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(tmp_path / "m.skops"),
            "--features",
            str(tmp_path / "radiomics_patient.parquet"),
            "--labels",
            str(tmp_path / "kinetics.csv"),
            "--out",
            str(tmp_path / "predictions.csv"),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "predictions.csv")
    assert len(pred) == 50 and {"hpd_risk", "predicted_hpd", "hpd_champiat2017"} <= set(pred.columns)

    # tampered model: clear message, exit code 2
    (tmp_path / "m.skops").write_bytes((tmp_path / "m.skops").read_bytes() + b"\0")
    res = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(tmp_path / "m.skops"),
            "--features",
            str(tmp_path / "radiomics_patient.parquet"),
            "--out",
            str(tmp_path / "p2.csv"),
        ],
    )
    assert res.exit_code == 2 and "sha256 mismatch" in res.output


def test_bad_settings_and_definition_exit_2(tmp_path):
    c = make_feature_cohort(30, seed=0)
    c.features.to_csv(tmp_path / "f.csv", index=False)
    c.kinetics.to_csv(tmp_path / "k.csv", index=False)
    (tmp_path / "bad.yaml").write_text("model:\n  classifier: deep_net\n")
    runner = CliRunner()
    base = [
        "train",
        "--features",
        str(tmp_path / "f.csv"),
        "--labels",
        str(tmp_path / "k.csv"),
        "--out",
        str(tmp_path / "m.skops"),
    ]
    res = runner.invoke(app, [*base, "--config", str(tmp_path / "bad.yaml")])
    assert res.exit_code == 2 and "invalid model settings: classifier" in res.output
    res = runner.invoke(app, [*base, "--definition", "kato2017"])
    assert res.exit_code == 2 and "expected label column 'hpd_kato2017'" in res.output
