"""Kinetics from the synthetic archive's ground-truth measurements: HPD for hyperprogressors only.

Uses sample_dicom/ground_truth.json when the bundled sample archive exists; otherwise generates a two-patient
archive (one hyperprogressor, one responder) with the synthetic generator. The pipeline-level agreement test
(labels from ``hpd-imaging run`` on the images) lives with the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hpd_imaging.response import read_table, run_response

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    sample = REPO / "sample_dicom"
    if (sample / "ground_truth.json").exists() and (sample / "clinical.csv").exists():
        return sample
    from hpd_imaging.settings.synth import SynthSettings
    from hpd_imaging.synth.generate import generate_archive

    out = tmp_path_factory.mktemp("gt") / "archive"
    generate_archive(
        out,
        SynthSettings(
            n_patients=2, matrix=32, n_followups=1, seed=5, phenotypes=["hyperprogressor", "responder"]
        ),
    )
    return out


def truth_measurements(gt: dict) -> pd.DataFrame:
    rows = []
    for p in gt["patients"]:
        for les in p["lesions"]:
            for m in les["measurements"]:
                if not m.get("present", True):
                    continue
                rows.append(
                    {
                        "patient_id": p["patient_id"],
                        "scan_date": m["scan_date"],
                        "lesion_id": les["lesion_id"],
                        "organ": les["organ"],
                        "is_lymph_node": les["is_lymph_node"],
                        "longest_axial_diameter_mm": m["longest_axial_diameter_mm"],
                        "short_axis_mm": m["short_axis_mm"],
                        "volume_mm3": m["volume_mm3"],
                    }
                )
    return pd.DataFrame(rows)


def test_champiat_labels_agree_with_ground_truth_phenotypes(archive):
    gt = json.loads((archive / "ground_truth.json").read_text())
    result = run_response(truth_measurements(gt), read_table(archive / "clinical.csv"))
    kin = result.kinetics.set_index("patient_id")
    phenotypes = {p["patient_id"]: p["phenotype"] for p in gt["patients"]}
    assert "hyperprogressor" in phenotypes.values() and "responder" in phenotypes.values()
    for pid, phenotype in phenotypes.items():
        row = kin.loc[pid]
        assert row["baseline_date"] == next(
            t["scan_date"]
            for p in gt["patients"]
            if p["patient_id"] == pid
            for t in p["timepoints"]
            if t["role"] == "baseline"
        )
        if phenotype == "hyperprogressor":
            assert row["hpd_champiat2017"] == "hpd", (pid, row["hpd_champiat2017_reason"])
        elif phenotype == "responder":
            assert row["hpd_champiat2017"] == "no_hpd", (pid, row["hpd_champiat2017_reason"])
            assert row["tgr_exp_pct_per_month"] < 0
