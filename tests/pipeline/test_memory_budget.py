"""Issue 21: the per-worker memory budget (``loader.memory_budget_mib``) at its boundary, both ways.

A need equal to the budget runs; one byte more is an error row naming the file, the rule
(MemoryBudgetError, loader.memory_budget_mib) and the value, while the rest of the patient goes on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG

from hpd_imaging.archive import scan_archive
from hpd_imaging.pipeline import PatientJob, assign_roles, process_patient
from hpd_imaging.pipeline.memory import MIB, MemoryBudgetError, check_budget
from hpd_imaging.settings import load_config

_NEED = re.compile(r"needs an estimated [0-9.]+ MiB \((\d+) bytes\)")


def _job(archive: Path, out: Path, budget_mib: float | None) -> PatientJob:
    scanned = scan_archive(archive)
    # one exam (the CT estimate is then the whole load need): the one with the most segments
    pid, tp = max(
        ((p, t) for p in sorted(scanned.patients) for t in assign_roles(scanned.timepoints[p], None)),
        key=lambda pt: sum(len(pydicom.dcmread(m.path).SegmentSequence) for m in pt[1].masks),
    )
    first = [tp]
    config = load_config(FAST_CONFIG)
    loader = config.loader.model_copy(update={"memory_budget_mib": budget_mib})
    config = config.model_copy(update={"loader": loader})
    return PatientJob(pid, first, config, out, FAST_CONFIG.parent)


def _rows(status: dict, rule: str = "MemoryBudgetError") -> list[dict]:
    return [r for r in status["errors"] if r["rule"] == rule]


def test_check_budget_equal_runs_one_byte_more_refused() -> None:
    check_budget(3 * MIB, 3.0, "x", "f.dcm")
    check_budget(10**12, None, "x", "f.dcm")  # no budget
    with pytest.raises(
        MemoryBudgetError,
        match=r"f\.dcm: x needs an estimated 3\.0 MiB \(3145729 bytes\); "
        r"expected at most loader\.memory_budget_mib=3",
    ):
        check_budget(3 * MIB + 1, 3.0, "x", "f.dcm")


def test_ct_load_at_budget_runs_and_just_above_is_an_error_row(tiny_archive: Path, tmp_path: Path) -> None:
    job = _job(tiny_archive, tmp_path / "a", None)
    ref = job.timepoints[0].ct
    assert ref is not None
    need = ref.rows * ref.columns * ref.n_slices * 2  # int16 voxels of the CT, from its headers
    at = process_patient(_job(tiny_archive, tmp_path / "b", need / MIB))
    assert not [r for r in _rows(at) if r["stage"] == "load_ct"], at["errors"]
    above = process_patient(_job(tiny_archive, tmp_path / "c", (need - 1) / MIB))
    rows = [r for r in _rows(above) if r["stage"] == "load_ct"]
    assert len(rows) == 1 and not above["ok"]
    assert rows[0]["file"] == str(ref.files[0].parent)
    assert f"({need} bytes)" in rows[0]["message"] and "loader.memory_budget_mib=" in rows[0]["message"]


@pytest.mark.slow
def test_radiomics_region_at_budget_runs_and_just_above_is_skipped(
    tiny_archive: Path, tmp_path: Path
) -> None:
    ref = _job(tiny_archive, tmp_path / "a", None).timepoints[0].ct
    assert ref is not None
    ct_bytes = ref.rows * ref.columns * ref.n_slices * 2
    # a budget that loads the exam but fits no region: every lesion's radiomics need, from its error row
    skipped = process_patient(_job(tiny_archive, tmp_path / "b", ct_bytes / MIB))
    needs = {
        r["file"] + r["message"].split(":")[1]: int(_NEED.search(r["message"]).group(1))  # type: ignore[union-attr]
        for r in _rows(skipped)
        if r["stage"] == "radiomics"
    }
    assert len(needs) >= 2 and skipped["ok"]
    # held during extraction: the CT, its SimpleITK copy for pyradiomics, and the region's arrays
    assert all(n > 2 * ct_bytes for n in needs.values())
    largest = max(needs.values())
    assert sorted(needs.values()).count(largest) == 1, needs  # a unique largest region for the boundary
    at = process_patient(_job(tiny_archive, tmp_path / "c", largest / MIB))
    assert not _rows(at), at["errors"]
    n_lesions = len(pd.read_parquet(tmp_path / "c" / "radiomics.parquet")["lesion_id"].unique())
    assert n_lesions == len(needs)
    above = process_patient(_job(tiny_archive, tmp_path / "d", (largest - 1) / MIB))
    rows = _rows(above)
    assert len(rows) == 1 and rows[0]["stage"] == "radiomics" and above["ok"]
    assert f"({largest} bytes)" in rows[0]["message"] and rows[0]["file"].endswith(".dcm")
    kept = pd.read_parquet(tmp_path / "d" / "radiomics.parquet")["lesion_id"].unique()
    assert len(kept) == n_lesions - 1  # the other lesions go on
