"""Repeated segment labels in real SEGs ("Tumor" for every segment): each lesion keeps its own radiomics row,
end to end through `hpd-imaging run`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG, cli, make_archive


@pytest.mark.slow
def test_segments_all_called_tumor_keep_their_own_lesions(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    make_archive(root, n_patients=1, n_followups=1, seed=3)  # 2 lesions at every exam
    segs = sorted(root.rglob("seg.dcm"))
    n_segments = []
    for seg in segs:  # every segment of every exam called "Tumor" (Tracking IDs kept: identity is declared)
        ds = pydicom.dcmread(seg)
        n_segments.append(len(ds.SegmentSequence))
        for item in ds.SegmentSequence:
            item.SegmentLabel = "Tumor"
        ds.save_as(seg)
    assert max(n_segments) >= 2, n_segments
    out = tmp_path / "out"
    proc = subprocess.run(
        cli("run", root, "--out", out, "--config", FAST_CONFIG, "--quiet"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    tracking = pd.read_csv(out / "tracking.csv", dtype=str, keep_default_na=False)
    labels = set(tracking.loc[tracking["label"] != "", "label"])
    assert (
        {"Tumor #1 (seg.dcm)", "Tumor #2 (seg.dcm)"}
        <= labels
        <= {"Tumor", "Tumor #1 (seg.dcm)", "Tumor #2 (seg.dcm)"}
    ), labels
    lesions = pd.read_csv(out / "lesions.csv", dtype=str)
    radiomics = pd.read_parquet(out / "radiomics.parquet")
    ids = list(radiomics["lesion_id"])
    # one row per baseline lesion, each under its own id (repeated labels gave two rows of one lesion)
    assert len(ids) == len(set(ids)) >= 2, ids
    assert set(ids) <= set(lesions["lesion_id"])
