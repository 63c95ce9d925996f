"""One patient's images per worker process at a time (issue 21), also while a patient task is seceded (waiting
for its radiomics units, which run as tasks of their own): on a real LocalCluster the next patient's work in
that process starts only after the previous patient's has ended, the run finishes (no deadlock: the waiting
task holds no thread the units need), and the tables equal a 1-process run's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pipeline_helpers import FAST_CONFIG, make_archive, table_bytes

from hpd_imaging.pipeline import run_study


@pytest.fixture(scope="module")
def four_patients(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-patient archive (3 exams each) and its in-process reference run."""
    root = tmp_path_factory.mktemp("slot")
    make_archive(root / "archive", n_patients=4, n_followups=1, seed=11)
    summary = run_study(root / "archive", root / "reference", FAST_CONFIG, workers=1)
    assert summary.exit_code == 0, summary.errors.to_string()
    return root / "archive", root / "reference"


def _intervals_by_process(out: Path) -> dict[int, list[tuple[float, float, str]]]:
    per_patient = json.loads((out / "run.json").read_text())["resources"]["per_patient"]
    by_pid: dict[int, list[tuple[float, float, str]]] = {}
    for pid, r in per_patient.items():
        assert r["worker"].startswith("tcp://") and r["pid"] != os.getpid(), r  # ran on a worker
        by_pid.setdefault(r["pid"], []).append((r["started_unix_s"], r["ended_unix_s"], pid))
    return by_pid


def _assert_one_patient_at_a_time(by_pid: dict[int, list[tuple[float, float, str]]]) -> None:
    for pid, spans in by_pid.items():
        spans.sort()
        for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            assert start >= end, (
                f"worker process {pid}: {second} started at {start} while {first} ran to {end}"
            )


@pytest.mark.slow
def test_local_cluster_runs_one_patient_per_worker_process(
    four_patients: tuple[Path, Path], tmp_path: Path
) -> None:
    """Our LocalCluster: the ``patient`` worker resource keeps a second patient task from starting in a worker
    whose patient has seceded; every patient ran on a worker, tables byte-identical to the 1-process run."""
    archive, reference = four_patients
    out = tmp_path / "out"
    summary = run_study(archive, out, FAST_CONFIG, workers=2)
    assert summary.exit_code == 0, summary.errors.to_string()
    by_pid = _intervals_by_process(out)
    assert sum(len(v) for v in by_pid.values()) == 4
    _assert_one_patient_at_a_time(by_pid)
    assert table_bytes(out) == table_bytes(reference)


@pytest.mark.slow
def test_external_workers_without_the_resource_wait_for_the_slot(
    four_patients: tuple[Path, Path], tmp_path: Path
) -> None:
    """A cluster whose one worker offers no ``patient`` resource (an external ``dask worker`` started without
    --resources): the scheduler does start the next patient while the first is seceded, and that task waits
    for the process's patient slot (seceded, so the first patient's units still run): it does not load while
    the first patient's images are there, and the run ends with the 1-process tables."""
    from dask.distributed import LocalCluster

    archive, reference = four_patients
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        summary = run_study(archive, out, FAST_CONFIG, scheduler=lc.scheduler_address)
    assert summary.exit_code == 0, summary.errors.to_string()
    by_pid = _intervals_by_process(out)
    assert len(by_pid) == 1 and len(next(iter(by_pid.values()))) == 4
    _assert_one_patient_at_a_time(by_pid)
    per_patient = json.loads((out / "run.json").read_text())["resources"]["per_patient"]
    # the situation the slot exists for did happen: a patient task started while another was seceded
    assert max(r["slot_wait_s"] for r in per_patient.values()) > 0
    assert table_bytes(out) == table_bytes(reference)
