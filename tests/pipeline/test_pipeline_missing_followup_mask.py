"""A follow-up exam with a CT but no segmentation (every lesion gone) is read as "no visible
lesion" by default (a warning row), or refuses the patient with run.follow_up_without_mask: error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import FAST_CONFIG

from hpd_imaging.pipeline import run_study
from hpd_imaging.settings import PipelineConfig, read_yaml


def _copy_without_last_followup_mask(tiny_archive: Path, dst: Path) -> tuple[str, str]:
    shutil.copytree(tiny_archive, dst)
    truth = json.loads((dst / "ground_truth.json").read_text())
    patient = truth["patients"][0]
    last = patient["timepoints"][-1]
    assert last["role"] == "follow_up" and last["mask_path"]
    (dst / last["mask_path"]).unlink()
    return patient["patient_id"], last["scan_date"]


def _config(**run: object) -> PipelineConfig:
    data = read_yaml(FAST_CONFIG)
    data["radiomics"]["params_file"] = str(FAST_CONFIG.parent / data["radiomics"]["params_file"])
    data["run"] = {**data.get("run", {}), **run}
    return PipelineConfig.model_validate(data)


def test_followup_without_mask_is_measured_zero_with_a_warning(tiny_archive: Path, tmp_path: Path) -> None:
    pid, date = _copy_without_last_followup_mask(tiny_archive, tmp_path / "archive")
    summary = run_study(tmp_path / "archive", tmp_path / "out", _config())
    assert summary.exit_code == 0 and pid not in summary.failed_patients
    lesions = pd.read_csv(tmp_path / "out" / "lesions.csv", dtype={"patient_id": str})
    at_exam = lesions[(lesions.patient_id == pid) & (lesions.scan_date == date)]
    tracked_before = lesions[(lesions.patient_id == pid) & (lesions.scan_date < date)].lesion_id.unique()
    assert set(at_exam.lesion_id) == set(tracked_before)  # every tracked lesion has a row there ...
    assert (at_exam.voxel_count == 0).all() and (
        at_exam.longest_axial_diameter_mm == 0
    ).all()  # ... measured 0
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", dtype={"patient_id": str})
    row = errors[(errors.patient_id == pid) & (errors.stage == "load_masks")]
    assert list(row.severity) == ["warning"]
    assert row.message.iloc[0].startswith(
        f"follow-up exam {date} has no segmentation: read as no visible lesion"
    )


def test_followup_without_mask_fails_the_patient_when_asked(tiny_archive: Path, tmp_path: Path) -> None:
    pid, date = _copy_without_last_followup_mask(tiny_archive, tmp_path / "archive")
    summary = run_study(tmp_path / "archive", tmp_path / "out", _config(follow_up_without_mask="error"))
    assert summary.exit_code == 1 and summary.failed_patients == [pid]
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", dtype={"patient_id": str})
    message = errors[(errors.patient_id == pid) & (errors.severity == "error")].message.iloc[0]
    assert message == f"exam {date} (follow_up): expected a lesion segmentation paired with the CT, got none"


def test_config_refuses_an_unknown_policy() -> None:
    with pytest.raises(ValueError, match="follow_up_without_mask"):
        PipelineConfig.model_validate({"run": {"follow_up_without_mask": "guess"}})
