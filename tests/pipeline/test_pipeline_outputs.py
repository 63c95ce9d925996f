"""`run_study` on a tiny synthetic archive: every output is written, its numbers match ground_truth.json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import check_champiat_labels, read_truth

from hpd_imaging.pipeline import RunSummary

EXPECTED = [
    "series.csv",
    "lesions.csv",
    "lesions.parquet",
    "tracking.csv",
    "kinetics.csv",
    "response.csv",
    "concordance.csv",
    "radiomics.parquet",
    "radiomics_diagnostics.parquet",
    "radiomics_patient.parquet",
    "errors.csv",
    "run.json",
    "progress.json",
    "report.html",
    "report_patients/SYN001.html",
    "report_patients/SYN002.html",
]


def test_every_output_is_written(reference_run: RunSummary) -> None:
    out = reference_run.out_dir
    missing = [name for name in EXPECTED if not (out / name).is_file()]
    assert not missing, f"missing outputs: {missing}"
    assert reference_run.exit_code == 0, reference_run.errors.to_string()
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors.columns) == ["patient_id", "stage", "file", "message", "severity", "rule", "value"]
    assert (errors["severity"] != "error").all(), errors.to_string()
    # no temporary files left behind by the atomic writes
    assert not list(out.rglob("*.tmp"))


def test_run_json_provenance(reference_run: RunSummary, tiny_archive: Path) -> None:
    info = json.loads((reference_run.out_dir / "run.json").read_text())
    for package in ("hpd-imaging", "pyradiomics", "SimpleITK", "pydicom", "scikit-learn"):
        assert info["versions"][package] not in ("", "not installed")
    assert len(info["config_hash"]) == 64
    assert info["config"]["radiomics"]["ring_widths_mm"] == []
    truth = read_truth(tiny_archive)
    series = {row["series_uid"] for row in info["input_series"] if row["chosen"]}
    assert series == {tp["series_instance_uid"] for p in truth["patients"] for tp in p["timepoints"]}
    stages = info["timings_s"]["stages"]
    assert {"index_s", "patients_s", "kinetics_s", "aggregate_s", "report_s"} <= set(stages)
    assert all(v >= 0 for v in stages.values())
    assert set(info["timings_s"]["per_patient"]) == {p["patient_id"] for p in truth["patients"]}
    assert info["patients"] == {"n": 2, "processed": ["SYN001", "SYN002"], "resumed": [], "failed": []}


def test_measurements_match_ground_truth(reference_run: RunSummary, tiny_archive: Path) -> None:
    truth = read_truth(tiny_archive)
    tol = truth["tolerances"]
    lesions = pd.read_csv(reference_run.out_dir / "lesions.csv", dtype={"patient_id": str})
    measured = lesions.set_index(["patient_id", "scan_date", "lesion_id"])
    n_checked = 0
    for patient in truth["patients"]:
        for lesion in patient["lesions"]:
            for m in lesion["measurements"]:
                key = (patient["patient_id"], m["scan_date"], lesion["lesion_id"])
                if not m["present"]:
                    assert key not in measured.index or measured.loc[key, "voxel_count"] == 0
                    continue
                row = measured.loc[key]
                assert row["organ"] == lesion["organ"]
                if m["ct_mask_voxel_count"] < 20:  # the generator's tolerances hold from 20 voxels on
                    continue
                n_checked += 1
                assert row["volume_mm3"] == pytest.approx(m["volume_mm3"], rel=tol["volume_rel"]), key
                for col in ("longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm"):
                    assert abs(row[col] - m[col]) <= tol["diameter_mm"], (key, col, row[col], m[col])
    assert n_checked >= 4


def test_champiat_labels_equal_labels_of_the_truth(reference_run: RunSummary, tiny_archive: Path) -> None:
    """The pipeline's HPD label (Champiat 2017) of each patient = run_response on the exact measurements."""
    got, expected, _, n_exact = check_champiat_labels(reference_run.out_dir, tiny_archive)
    assert sorted(got.index) == sorted(expected.index)
    assert n_exact >= len(expected) - 1


def test_concordance_and_radiomics_tables(reference_run: RunSummary) -> None:
    out = reference_run.out_dir
    lesions = pd.read_parquet(out / "lesions.parquet")
    features = pd.read_parquet(out / "radiomics.parquet")
    # baseline radiomics of every lesion present at baseline, region 'lesion' only (test config: no rings)
    kinetics = pd.read_csv(out / "kinetics.csv", dtype={"patient_id": str})
    baseline = dict(zip(kinetics["patient_id"], kinetics["baseline_date"], strict=True))
    present = lesions[(lesions["voxel_count"] > 0)]
    present = present[present.apply(lambda r: str(r["scan_date"]) == baseline[r["patient_id"]], axis=1)]
    assert set(zip(features["patient_id"], features["lesion_id"], strict=True)) == set(
        zip(present["patient_id"], present["lesion_id"], strict=True)
    )
    assert set(features["region"]) == {"lesion"}
    patient = pd.read_parquet(out / "radiomics_patient.parquet")
    assert sorted(patient["patient_id"]) == ["SYN001", "SYN002"]  # one row per patient
    concordance = pd.read_csv(out / "concordance.csv")
    assert len(concordance) > 0
    html = (out / "report.html").read_text()
    assert "SYN001" in html and "SYN002" in html
