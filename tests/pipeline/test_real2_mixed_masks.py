"""`run` on real2's QuantitativeReporting folder: six segmentation files of one exam, one of them unusable.

SOURCES.md: a syngo.via SEG (46 voxels), a 2012 Slicer SEG with another Frame of Reference on the CT grid
(104,500), an NRRD named .dcm (825) and its twin CT_label.nrrd, labelToSEG.nrrd (58,333) and the same array
on a grid rotated 4 degrees. Failure isolation at the mask level: the rotated map is one error row naming
the file, the rule and the value; the five others are measured.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import FAST_CONFIG, cli


@pytest.mark.slow
def test_mixed_mask_folder_gives_its_valid_lesions_and_one_error_row(
    shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / "real2" / "qr_syngo_seg" / "Prototype" / "TestData"
    if not data.is_dir():
        pytest.skip(f"real2 QuantitativeReporting data not found at {data}")
    study = tmp_path / "study"
    study.mkdir()
    (study / "TestData").symlink_to(data)
    out = tmp_path / "out"
    proc = subprocess.run(
        cli("run", study, "--out", out, "--config", FAST_CONFIG, "--quiet"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr  # an error row exists
    errors = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    failing = errors[errors.severity == "error"]
    assert len(failing) == 1
    row = failing.iloc[0]
    assert row["stage"] == "load_masks" and row["file"] == "TestData/labelToSEGTransformed.nrrd"
    assert (
        "label map grid does not match the CT grid" in row["message"]
        and "direction (0.9976" in row["message"]
    )
    lesions = pd.read_csv(out / "lesions.csv")
    assert sorted(lesions["voxel_count"]) == [46, 825, 825, 58_333, 104_500]
    assert (lesions["scan_date"] == "2003-04-17").all()
