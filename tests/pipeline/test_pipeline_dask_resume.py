"""Where and how often a run happens must not change its tables: a real Dask scheduler + 2 worker processes on
loopback (started and stopped by the test, as a user runs them), a run killed with SIGKILL and resumed, and a
full recompute (--force) all give the reference (in-process) run's bytes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pipeline_helpers import FAST_CONFIG, VENV_BIN, cli, table_bytes

from hpd_imaging.pipeline import RunSummary, run_study


def _wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """`dask scheduler` (with its dashboard on a free loopback port) + `dask worker` (2 processes of 1 thread)
    started on 127.0.0.1 as subprocesses; yields the address and the processes (to check they are stopped)."""
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [
            str(VENV_BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--scheduler-file",
            str(scheduler_file),
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [scheduler]
    try:
        _scheduler_address(scheduler_file, scheduler)
        worker = subprocess.Popen(
            [
                str(VENV_BIN / "dask"),
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the nanny's worker processes are stopped with it
        )
        procs.append(worker)
        address = _scheduler_address(scheduler_file, scheduler)
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
            worker_pids = set(client.run(os.getpid).values())
        yield address, procs
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if len(procs) > 1:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(procs[1].pid, signal.SIGKILL)  # anything of the worker group still alive
    # stopped, all of them: the scheduler, the `dask worker` nanny and its two worker processes
    assert all(proc.poll() is not None for proc in procs)
    _wait_for(lambda: not any(_alive(pid) for pid in worker_pids), 20, "the worker processes to exit")


def _scheduler_address(scheduler_file: Path, proc: subprocess.Popen) -> str:
    """The address in the scheduler file, once the scheduler has finished writing it (the file appears
    empty first: reading it at once raced with the write)."""

    def address() -> str | None:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            return None

    _wait_for(lambda: address() is not None, 60, "the scheduler file", proc)
    return str(address())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())  # a zombie has exited


@pytest.mark.slow
def test_external_dask_scheduler_gives_the_local_tables(
    dask_cluster: tuple[str, list], tiny_archive: Path, reference_run: RunSummary, tmp_path: Path
) -> None:
    address, procs = dask_cluster
    assert address.startswith("tcp://127.0.0.1:")
    # the two workers are separate processes (not this one, not the scheduler)
    from dask.distributed import Client

    with Client(address, timeout="30s") as client:
        worker_pids = set(client.run(os.getpid).values())
        dashboard = client.dashboard_link
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert worker_pids.isdisjoint(p.pid for p in procs)

    out = tmp_path / "out"
    summary = run_study(tiny_archive, out, FAST_CONFIG, scheduler=address, dicom_out=True)
    assert summary.exit_code == 0, summary.errors.to_string()
    info = json.loads((out / "run.json").read_text())
    assert info["hpd_imaging_run"]["scheduler"] == address
    assert info["patients"]["processed"] == ["SYN001", "SYN002"]
    ours, reference = table_bytes(out), table_bytes(reference_run.out_dir)
    assert sorted(ours) == sorted(reference)
    assert [name for name in ours if ours[name] != reference[name]] == []
    assert len(list((out / "dicom").rglob("*.dcm"))) == len(
        list((reference_run.out_dir / "dicom").rglob("*.dcm"))
    )
    # the patients ran in the workers, and run.json says where, with the dashboard and the worker log
    per_patient = info["resources"]["per_patient"]
    assert {r["pid"] for r in per_patient.values()} <= worker_pids
    assert {r["worker"] for r in per_patient.values()} <= set(
        info["resources"]["workers"][i]["worker"] for i in range(len(info["resources"]["workers"]))
    )
    assert all(r["peak_rss_mib"] > 50 for r in info["resources"]["workers"])
    assert info["dask"] == {
        "mode": "scheduler", "scheduler": address, "workers": 2, "dashboard": dashboard,
        "dashboard_missing": None, "worker_log": "logs/dask_workers.log",
    }  # fmt: skip
    assert dashboard.startswith("http://127.0.0.1:") and dashboard.endswith("/status")
    log = (out / "logs" / "dask_workers.log").read_text()
    for pid in ("SYN001", "SYN002"):  # each patient's hpd_imaging records, tagged with its worker
        worker = per_patient[pid]["worker"]
        assert f"[{worker}] [{pid}] " in log, log[:2000]
    assert "logs/dask_workers.log" in info["manifest"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_bytes_and_force_recomputes(
    tiny_archive: Path, reference_run: RunSummary, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = cli("run", tiny_archive, "--out", out, "--config", FAST_CONFIG, "--dicom-out", "--quiet")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = lambda: list(out.glob(".work/patients/*/*/done.json"))  # noqa: E731
    try:
        _wait_for(lambda: len(done()) >= 1, 300, "the first patient's done.json", proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = [p.parent.parent.name for p in done()]
    assert finished == ["SYN001"], finished  # killed while the second patient was running
    assert not (out / "run.json").exists() and not (out / "lesions.csv").exists()

    resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["patients"]["resumed"] == ["SYN001"]
    assert info["patients"]["processed"] == ["SYN002"]
    assert not list(out.rglob("*.tmp"))
    assert table_bytes(out) == table_bytes(reference_run.out_dir)

    # --force recomputes every patient; the same run twice gives byte-identical tables (determinism)
    forced = subprocess.run([*args, "--force"], capture_output=True, text=True, timeout=600)
    assert forced.returncode == 0, forced.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["patients"]["resumed"] == [] and info["patients"]["processed"] == ["SYN001", "SYN002"]
    assert table_bytes(out) == table_bytes(reference_run.out_dir)


@pytest.mark.slow
def test_scheduler_that_loses_every_worker_ends_with_exit_1(tmp_path: Path) -> None:
    """Issue 16: every worker of an external scheduler killed mid-run. The run used to wait forever; it now
    lists the unfinished patients as error rows and exits 1 within run.cluster_lost_after_s (+ a poll)."""
    import shutil

    from pipeline_helpers import make_archive

    archive = tmp_path / "archive"
    make_archive(archive, n_patients=3, n_followups=1)
    config = tmp_path / "config.yaml"
    config.write_text(FAST_CONFIG.read_text().replace("run:\n", "run:\n  cluster_lost_after_s: 3\n"))
    shutil.copy(FAST_CONFIG.parent / "radiomics_fast.yaml", tmp_path / "radiomics_fast.yaml")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--scheduler-file", str(scheduler_file), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = run = None
    try:
        _scheduler_address(scheduler_file, scheduler)
        worker = subprocess.Popen(
            [str(VENV_BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        address = _scheduler_address(scheduler_file, scheduler)
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=120)
        out = tmp_path / "out"
        run = subprocess.Popen(
            cli("run", archive, "--out", out, "--config", config, "--scheduler", address, "--quiet"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started = lambda: list(out.glob(".work/patients/*/*/started.json"))  # noqa: E731
        try:
            _wait_for(lambda: len(started()) >= 1, 300, "a patient to start on the worker", run)
        except AssertionError:
            raise AssertionError(run.communicate()[1]) from None
        os.killpg(worker.pid, signal.SIGKILL)  # the nanny and its worker process: no worker left
        t0 = time.monotonic()
        _, stderr = run.communicate(timeout=120)
        assert time.monotonic() - t0 < 60, "the run did not end within a bounded time"
        assert run.returncode == 1, stderr
        errors = json.loads((out / "run.json").read_text())["patients"]
        assert len(errors["failed"]) >= 2  # at most one patient can have finished before the kill
        import pandas as pd

        rows = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
        lost = rows[rows["stage"] == "cluster"]
        assert set(lost["patient_id"]) <= set(errors["failed"]) and len(lost) >= 1
        assert "has had no worker for" in lost["message"].iloc[0]
    finally:
        for proc in (run, worker, scheduler):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=20)
