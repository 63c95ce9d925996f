"""The done-when of issue #8 on the bundled sample: `hpd-imaging run sample_dicom/ --out OUT --dicom-out
--model M` writes every output, with measurements and HPD labels matching sample_dicom/ground_truth.json.

(Test radiomics settings: Original image only, no rings, so the suite stays fast; the default CT settings
give the same measurements and labels, only more radiomics columns.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import (
    FAST_CONFIG,
    cli,
    read_truth,
    train_test_model,
    truth_lesions,
)

OUTPUTS = [
    "series.csv",
    "lesions.csv",
    "lesions.parquet",
    "kinetics.csv",
    "response.csv",
    "concordance.csv",
    "radiomics.parquet",
    "radiomics_patient.parquet",
    "predictions.csv",
    "errors.csv",
    "run.json",
    "report.html",
]


@pytest.fixture(scope="module")
def sample_run(sample_dicom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the CLI once without a model, train a small model on its radiomics_patient columns, then rerun
    with --model into a copy of OUT: every patient is resumed, only the cohort stages and predictions run."""
    root = tmp_path_factory.mktemp("sample")
    first = root / "first"
    proc = subprocess.run(
        cli("run", sample_dicom, "--out", first, "--config", FAST_CONFIG, "--dicom-out", "--quiet"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    model = root / "model" / "risk.skops"
    model.parent.mkdir()
    train_test_model(first / "radiomics_patient.parquet", model)
    out = root / "results"
    shutil.copytree(first, out)
    proc = subprocess.run(
        cli(
            "run",
            sample_dicom,
            "--out",
            out,
            "--config",
            FAST_CONFIG,
            "--dicom-out",
            "--model",
            model,
            "--quiet",
        ),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_every_output(sample_run: Path, sample_dicom: Path) -> None:
    assert [name for name in OUTPUTS if not (sample_run / name).is_file()] == []
    info = json.loads((sample_run / "run.json").read_text())
    truth = read_truth(sample_dicom)
    pids = sorted(p["patient_id"] for p in truth["patients"])
    assert info["patients"]["resumed"] == pids and info["patients"]["failed"] == []
    predictions = pd.read_csv(sample_run / "predictions.csv", dtype={"patient_id": str})
    assert sorted(predictions["patient_id"]) == pids
    assert predictions["hpd_risk"].between(0, 1).all()
    errors = pd.read_csv(sample_run / "errors.csv")
    assert (errors["severity"] != "error").all(), errors.to_string()
    # one SEG and one TID 1500 SR per timepoint, referencing that timepoint's CT
    for patient in truth["patients"]:
        for tp in patient["timepoints"]:
            folder = sample_run / "dicom" / patient["patient_id"] / tp["scan_date"].replace("-", "")
            seg = pydicom.dcmread(folder / "seg.dcm")
            sr = pydicom.dcmread(folder / "sr_tid1500.dcm")
            assert seg.StudyInstanceUID == sr.StudyInstanceUID == tp["study_instance_uid"]
            refs = {s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence}
            assert refs == {tp["series_instance_uid"]}


@pytest.mark.slow
def test_measurements_and_labels_match_ground_truth(sample_run: Path, sample_dicom: Path) -> None:
    truth = read_truth(sample_dicom)
    tol = truth["tolerances"]
    out_dir = sample_run
    measured = pd.read_csv(sample_run / "lesions.csv", dtype={"patient_id": str}).set_index(
        ["patient_id", "scan_date", "lesion_id"]
    )
    n_checked = 0
    for patient in truth["patients"]:
        for lesion in patient["lesions"]:
            for m in lesion["measurements"]:
                key = (patient["patient_id"], m["scan_date"], lesion["lesion_id"])
                if not m["present"]:
                    assert key not in measured.index or measured.loc[key, "voxel_count"] == 0, key
                    continue
                row = measured.loc[key]
                assert bool(row["is_new"]) == bool(lesion["is_new"]), key
                # the pipeline measures exactly the mask the generator rasterised ...
                assert row["voxel_count"] == m["ct_mask_voxel_count"], key
                assert row["volume_mm3"] == pytest.approx(m["ct_mask_volume_mm3"], rel=1e-6), key
                if m["ct_mask_voxel_count"] < 20:
                    continue
                n_checked += 1
                # ... and that mask agrees with the smooth truth within the generator's documented tolerance,
                # which it states for lesions of at least volume_rel_min_voxels voxels
                if m["ct_mask_voxel_count"] >= tol["volume_rel_min_voxels"]:
                    assert row["volume_mm3"] == pytest.approx(m["volume_mm3"], rel=tol["volume_rel"]), key
                for col in ("longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm"):
                    assert abs(row[col] - m[col]) <= tol["diameter_mm"], (key, col, row[col], m[col])
    assert n_checked >= 20

    # sample_dicom is generated with the generator's default seed, not one picked so that no label flips
    # (issue 17): every label of the run that differs from the label of the exact sizes is flagged fragile,
    # and the labels the analysis calls stable are the exact-size labels
    n_eval, n_stable, n_flips = _labels_against_exact_sizes(out_dir, sample_dicom)
    assert n_eval >= 40 and n_stable >= n_eval // 2, (n_eval, n_stable)


def _labels_against_exact_sizes(out_dir: Path, archive: Path) -> tuple[int, int, int]:
    """(evaluable labels, called stable, differing from the exact-size label); asserts that every label of
    the run that differs from the label the same code gives from ground_truth.json's exact sizes is fragile
    and that each patient's scan dates are the truth's."""
    from hpd_imaging.response import load_response_config, run_response
    from hpd_imaging.response.hpd import DEFINITIONS
    from hpd_imaging.settings import REPO_PIPELINES

    clinical = pd.read_csv(archive / "clinical.csv", dtype={"patient_id": str})
    cfg = load_response_config(REPO_PIPELINES / "hpd_definitions.yaml")
    exact_cfg = cfg.model_copy(update={"stability": cfg.stability.model_copy(update={"draws": 0})})
    exact = run_response(truth_lesions(read_truth(archive)), clinical, exact_cfg).kinetics.set_index(
        "patient_id"
    )
    got = pd.read_csv(out_dir / "kinetics.csv", dtype={"patient_id": str}, keep_default_na=False)
    got = got.astype(str).set_index("patient_id")
    n_eval = n_stable = n_flips = 0
    for pid in exact.index:
        for col in ("baseline_date", "first_eval_date"):
            assert got.loc[pid, col] == str(exact.loc[pid, col]), (pid, col)
        for key in DEFINITIONS:
            label = got.loc[pid, f"hpd_{key}"]
            if label == "not_evaluable":
                continue
            n_eval += 1
            stable = got.loc[pid, f"hpd_{key}_stable"] == "True"
            n_stable += stable
            if label != exact.loc[pid, f"hpd_{key}"]:
                n_flips += 1
                assert not stable, (pid, key, label, exact.loc[pid, f"hpd_{key}"])
    return n_eval, n_stable, n_flips
