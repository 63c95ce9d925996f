"""Issue 17, image-based: labels from ``run`` on a coarse synthetic archive vs the labels the same code gives
from ground_truth.json's exact analytic sizes. Every label called stable must equal its exact-size label, and
the SDs must come from the masks' grid. Slow (a full pipeline run per seed)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hpd_imaging.response import read_table, run_response
from hpd_imaging.response.hpd import DEFINITIONS
from hpd_imaging.settings.hpd import ResponseConfig

REPO = Path(__file__).resolve().parents[2]
FAST_CONFIG = REPO / "tests" / "pipeline" / "data" / "config_fast.yaml"


def _exact_sizes(truth: dict) -> pd.DataFrame:
    rows = []
    for p in truth["patients"]:
        for lesion in p["lesions"]:
            for m in lesion["measurements"]:
                present = bool(m["present"])  # an absent lesion is a row of 0 mm, as lesions.csv writes it
                rows.append(
                    {
                        "patient_id": p["patient_id"],
                        "scan_date": m["scan_date"],
                        "lesion_id": lesion["lesion_id"],
                        "organ": lesion["organ"],
                        "is_lymph_node": lesion["is_lymph_node"],
                        "is_new": lesion["is_new"],
                        "longest_axial_diameter_mm": m["longest_axial_diameter_mm"] if present else 0.0,
                        "short_axis_mm": m["short_axis_mm"] if present else 0.0,
                        "volume_mm3": m["volume_mm3"] if present else 0.0,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 8])
def test_stable_labels_from_images_equal_exact_size_labels(tmp_path, seed):
    from hpd_imaging.pipeline.study import run_study
    from hpd_imaging.settings.synth import SynthSettings
    from hpd_imaging.synth.generate import generate_archive

    archive = tmp_path / "archive"
    generate_archive(
        archive,
        SynthSettings(
            n_patients=3,
            matrix=64,
            n_followups=1,
            seed=seed,
            phenotypes=["hyperprogressor", "progressor", "responder"],
        ),
    )
    run_study(archive, tmp_path / "out", FAST_CONFIG, workers=1)
    truth = json.loads((archive / "ground_truth.json").read_text())
    exact = run_response(
        _exact_sizes(truth), read_table(archive / "clinical.csv"), ResponseConfig(stability={"draws": 0})
    ).kinetics.set_index("patient_id")
    measured = pd.read_csv(tmp_path / "out" / "kinetics.csv", dtype=str, keep_default_na=False)
    measured = measured.set_index("patient_id")
    assert set(measured["uncertainty_source"]) == {"grid"}
    n_eval = n_stable = n_flips = 0
    for key in DEFINITIONS:
        for pid in measured.index:
            label = measured.loc[pid, f"hpd_{key}"]
            if label == "not_evaluable":
                continue
            n_eval += 1
            stable = measured.loc[pid, f"hpd_{key}_stable"] == "True"
            n_stable += stable
            if label != exact.loc[pid, f"hpd_{key}"]:
                n_flips += 1  # the grid error changed this label: it must be flagged fragile
                assert not stable, (pid, key, measured.loc[pid, f"hpd_{key}_probability"])
    assert n_eval > 20
    # not vacuous: some label was flipped by the grid (and flagged) or called stable (and right). The stable
    # share itself is low here: synthetic lesions measure 10-16 mm at baseline, within 1.96 grid SDs of the
    # RECIST measurability limits, so the target selection (and every label) of most patients is not stable
    # (0 % at seeds 5 and 8 with 3 patients; 34-50 % at seeds 3 and 4 with 6; docs/label_stability.md)
    assert n_flips + n_stable > 0
