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
    from hpd_imaging.synth.generate import generate_archive
    from hpd_imaging.synth.settings import SynthSettings

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
