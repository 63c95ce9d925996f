"""Helpers of the pipeline tests: tiny synthetic archives, table bytes, ground truth as a lesions table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from hpd_imaging.pipeline import TABLES

HERE = Path(__file__).resolve().parent
FAST_CONFIG = HERE / "data" / "config_fast.yaml"  # Original-only radiomics, no rings, one worker
#: a small archive: 2 patients x 4 exams (pre-baseline, baseline, 2 follow-ups), 64x64 in-plane, 20 slices
TINY_SYNTH = {
    "n_patients": 2,
    "seed": 7,
    "matrix": 64,
    "scan_length_mm": 100.0,
    "slice_thickness_mm": 5.0,
    "n_followups": 2,
    "min_lesions": 2,
    "max_lesions": 2,
}


def make_archive(out_dir: Path, **overrides: object) -> dict:
    from hpd_imaging.settings.synth import SynthSettings
    from hpd_imaging.synth.generate import generate_archive

    return generate_archive(out_dir, SynthSettings(**{**TINY_SYNTH, **overrides}))


def table_bytes(out_dir: Path) -> dict[str, bytes]:
    """Every cohort table of a run (not run.json, which holds timings, nor report.html)."""
    return {name: (out_dir / name).read_bytes() for name in TABLES if (out_dir / name).exists()}


def truth_lesions(truth: dict) -> pd.DataFrame:
    """ground_truth.json as a lesions.csv-shaped table (the input schema of the response stage)."""
    rows = []
    for patient in truth["patients"]:
        for lesion in patient["lesions"]:
            for m in lesion["measurements"]:
                present = bool(m["present"])
                rows.append(
                    {
                        "patient_id": patient["patient_id"],
                        "scan_date": m["scan_date"],
                        "lesion_id": lesion["lesion_id"],
                        "organ": lesion["organ"],
                        "is_lymph_node": lesion["is_lymph_node"],
                        "is_new": lesion["is_new"],
                        "longest_axial_diameter_mm": m["longest_axial_diameter_mm"] if present else 0.0,
                        "short_axis_mm": m["short_axis_mm"] if present else 0.0,
                        "max_3d_diameter_mm": m["max_3d_diameter_mm"] if present else 0.0,
                        "volume_mm3": m["volume_mm3"] if present else 0.0,
                    }
                )
    return pd.DataFrame(rows)


def read_truth(archive: Path) -> dict:
    return json.loads((archive / "ground_truth.json").read_text())


VENV_BIN = Path(sys.executable).parent  # the `dask` and `hpd-imaging` scripts of this environment


def cli(*args: str | Path) -> list[str]:
    """Command line of `hpd-imaging ...` in this environment (what `uv run hpd-imaging` runs)."""
    return [str(VENV_BIN / "hpd-imaging"), *map(str, args)]


def train_test_model(radiomics_patient: Path, path: Path, n_features: int = 4) -> list[str]:
    """A small risk model whose inputs are columns of our radiomics_patient table (the shipped demo model
    reads feature-level synthetic columns that image radiomics do not produce), trained on random rows.
    Returns its feature names. Only the wiring is under test here, not the model's skill."""
    import numpy as np

    from hpd_imaging.model import ModelSettings, save_model, train

    table = pd.read_parquet(radiomics_patient)
    columns = [c for c in table.columns if c.startswith("largest_original_firstorder_")][: n_features - 1]
    columns.append("total_volume_mm3")
    rng = np.random.default_rng(0)
    n = 40
    X = pd.DataFrame(rng.normal(size=(n, len(columns))), columns=columns)
    y = X[columns[0]] + rng.normal(scale=0.5, size=n) > 0.4
    X.insert(0, "patient_id", [f"T{i:03d}" for i in range(n)])
    labels = pd.DataFrame({"patient_id": X["patient_id"], "hpd_champiat2017": np.where(y, "hpd", "no_hpd")})
    settings = ModelSettings(
        clinical_covariates=[],
        clinical_in_model=False,
        k_best_grid=[2],
        c_grid=[1.0],
        inner_splits=2,
        calibration_folds=2,
        n_permutations=0,
    )
    save_model(train(X, labels, "champiat2017", settings), path)
    return columns


def champiat_labels_within_one_pixel(
    truth: dict, clinical: pd.DataFrame, config: object, pixel_mm: float
) -> dict[str, set[str]]:
    """Per patient, the Champiat 2017 labels of the exact measurements and of the exact measurements with
    the pre-baseline diameters moved by +- one pixel: what a correct measurement on this grid may give.

    Why: TGR_ref comes from the pre-baseline -> baseline change, often 1-2 mm over two months on the sample,
    below the in-plane pixel (2.8 mm); TGR ratios (TGR_exp >= 2 x TGR_ref) then follow voxel quantisation.
    (seed 2024 of the sample had SYN003: one 16 mm node growing 2 mm; truth TGR ratio 0.93, a correct mask
    gave 3.59; the sample now uses a seed where no label flips within one pixel.)"""
    from hpd_imaging.response import run_response

    table = truth_lesions(truth)
    pre = {
        p["patient_id"]: next(t["scan_date"] for t in p["timepoints"] if t["role"] == "pre_baseline")
        for p in truth["patients"]
    }
    labels: dict[str, set[str]] = {}
    for delta in (0.0, pixel_mm, -pixel_mm):
        moved = table.copy()
        rows = moved["scan_date"] == moved["patient_id"].map(pre)
        rows &= moved["longest_axial_diameter_mm"] > 0
        for col in ("longest_axial_diameter_mm", "short_axis_mm"):
            moved.loc[rows, col] = (moved.loc[rows, col] + delta).clip(lower=0.1)
        kinetics = run_response(moved, clinical, config).kinetics
        for pid, label in zip(kinetics["patient_id"], kinetics["hpd_champiat2017"], strict=True):
            labels.setdefault(str(pid), set()).add(label)
    return labels


def check_champiat_labels(
    out_dir: Path, archive: Path
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, set[str]], int]:
    """Assert, per patient, that the run's kinetics.csv has the truth's dates and target count and a Champiat
    2017 label of the exact measurements or of their one-pixel neighbours (exactly that label where no
    neighbour differs). Returns (got, expected kinetics by patient_id, plausible labels, number of exact
    labels) for the caller's own cohort-level assertions."""
    from hpd_imaging.response import load_response_config, run_response
    from hpd_imaging.settings import REPO_PIPELINES

    truth = read_truth(archive)
    clinical = pd.read_csv(archive / "clinical.csv", dtype={"patient_id": str})
    cfg = load_response_config(REPO_PIPELINES / "hpd_definitions.yaml")
    expected = run_response(truth_lesions(truth), clinical, cfg).kinetics.set_index("patient_id")
    got = pd.read_csv(out_dir / "kinetics.csv", dtype={"patient_id": str}).set_index("patient_id")
    pixel_mm = float(str(pd.read_csv(out_dir / "series.csv")["pixel_spacing_mm"].iloc[0]).split("x")[0])
    plausible = champiat_labels_within_one_pixel(truth, clinical, cfg, pixel_mm)
    n_exact = 0
    for pid in expected.index:
        why = (pid, got.loc[pid, "hpd_champiat2017_reason"], expected.loc[pid, "hpd_champiat2017_reason"])
        for col in ("baseline_date", "first_eval_date", "n_targets"):
            assert str(got.loc[pid, col]) == str(expected.loc[pid, col]), (pid, col)
        # the label of the exact measurements, or (only where the truth's label itself flips when the
        # pre-baseline diameters move by one pixel) the label of those one-pixel neighbours
        assert got.loc[pid, "hpd_champiat2017"] in plausible[pid], (why, plausible[pid])
        n_exact += got.loc[pid, "hpd_champiat2017"] == expected.loc[pid, "hpd_champiat2017"]
        if len(plausible[pid]) == 1:
            assert got.loc[pid, "hpd_champiat2017"] == expected.loc[pid, "hpd_champiat2017"], why
    return got, expected, plausible, n_exact
