"""Progress a user can plan with (issue 21): counts, ETA and OUT/progress.json; run.json's cost fields
(per-stage seconds, per-worker peak memory) measured by the run itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pipeline_helpers import FAST_CONFIG

from hpd_imaging.pipeline import run_study
from hpd_imaging.pipeline.progress import PROGRESS_FILE, ProgressTracker


def _status(pid: str, wall_s: float) -> dict:
    return {"patient_id": pid, "ok": True, "resources": {"wall_s": wall_s}}


def test_tracker_counts_eta_and_file(tmp_path: Path) -> None:
    path = tmp_path / PROGRESS_FILE
    seen: list[dict] = []  # every snapshot sent on, each compared with the file as it was then

    def forward(event: str, detail: str) -> None:
        if event == "progress":
            snap = json.loads(detail)
            assert json.loads(path.read_text()) == snap  # the file is current when the caller hears of it
            seen.append(snap)

    t = ProgressTracker(path, forward)
    t("stage", "patients")
    t("patients", "6")
    t("workers", "2")
    t("patient_resumed", "P1")
    assert seen[-1]["patients"] == {
        "total": 6, "done": 1, "processed": 0, "resumed": 1, "failed": 0, "remaining": 5,
    }  # fmt: skip
    assert seen[-1]["eta_s"] is None  # nothing processed in this run yet: no basis for an estimate
    t("patient_start", "P2")
    t.patient_status(_status("P2", 30.0))
    t("patient_done", "P2")
    # 4 left, 30 s each, 2 at once: 60 s
    assert seen[-1]["eta_s"] == pytest.approx(60.0) and seen[-1]["seconds_per_patient"] == 30.0
    assert seen[-1]["eta_utc"] is not None and seen[-1]["last_finished"] == "P2"
    t.patient_status(_status("P3", 10.0))
    t("patient_failed", "P3")  # a failed patient counts as failed, and its time counts in the mean
    snap = seen[-1]
    assert snap["patients"]["failed"] == 1 and snap["failed_patients"] == ["P3"]
    assert snap["patients"]["remaining"] == 3
    assert snap["eta_s"] == pytest.approx(20.0 * 3 / 2)
    t.patient_status(_status("P4", 20.0))
    t("patient_done", "P4")
    t.patient_status(_status("P5", 20.0))
    t("patient_done", "P5")
    # one left: it runs alone, so the estimate is one patient's time, not half of it
    assert seen[-1]["patients"]["remaining"] == 1 and seen[-1]["eta_s"] == pytest.approx(20.0)
    t.finish(6, ["P3", "P6"], exit_code=1)  # P6 withheld at the cohort stage: failed in the end
    final = json.loads(path.read_text())
    assert final["state"] == "finished" and final["exit_code"] == 1 and final["eta_s"] == 0.0
    assert final["patients"] == {
        "total": 6, "done": 4, "processed": 3, "resumed": 1, "failed": 2, "remaining": 0,
    }  # fmt: skip
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_tracker_says_stopped_when_the_run_ends_early(tmp_path: Path) -> None:
    t = ProgressTracker(tmp_path / PROGRESS_FILE)
    t("patients", "3")
    t.stop("EnvironmentFaultError: disk full")
    snap = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert snap["state"] == "stopped" and "disk full" in snap["stage"]


@pytest.fixture(scope="module")
def run_with_a_failure(tiny_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """The tiny archive with SYN002's first CT slice truncated (that patient fails at load), run in-process
    with a progress callback that records every event."""
    root = tmp_path_factory.mktemp("progress")
    archive = root / "archive"
    shutil.copytree(tiny_archive, archive)
    first_exam = sorted(p for p in (archive / "SYN002").iterdir() if p.is_dir())[0]
    ct = sorted((first_exam / "CT").glob("*.dcm"))[0]
    ct.write_bytes(ct.read_bytes()[:-2000])
    events: list[tuple[str, str]] = []
    run_study(archive, root / "out", FAST_CONFIG, progress=lambda e, d: events.append((e, d)))
    return root / "out", events


@pytest.mark.slow
def test_run_progress_events_and_final_file(run_with_a_failure: tuple[Path, list]) -> None:
    out, events = run_with_a_failure
    snaps = [json.loads(d) for e, d in events if e == "progress"]
    finished = [i for i, (e, _) in enumerate(events) if e in ("patient_done", "patient_failed")]
    assert [events[i] for i in finished] == [("patient_done", "SYN001"), ("patient_failed", "SYN002")]
    after_first = json.loads(events[finished[0] + 1][1])  # the snapshot sent right after SYN001 finished
    assert after_first["patients"]["done"] == 1 and after_first["patients"]["remaining"] == 1
    assert after_first["eta_s"] is not None and after_first["eta_s"] > 0
    assert all(s["eta_s"] is None for s in snaps[: snaps.index(after_first)])
    final = json.loads((out / PROGRESS_FILE).read_text())
    assert final == snaps[-1]
    assert final["state"] == "finished" and final["stage"] == "done" and final["exit_code"] == 1
    assert final["patients"] == {
        "total": 2, "done": 1, "processed": 1, "resumed": 0, "failed": 1, "remaining": 0,
    }  # fmt: skip
    assert final["failed_patients"] == ["SYN002"]


@pytest.mark.slow
def test_run_json_records_stage_times_and_worker_memory(run_with_a_failure: tuple[Path, list]) -> None:
    out, _ = run_with_a_failure
    info = json.loads((out / "run.json").read_text())
    timings = info["timings_s"]
    per_patient = timings["per_patient"]
    assert set(per_patient) == {"SYN001"}  # SYN002 failed: no stored result
    totals = timings["patient_stages_total"]
    assert totals["n_patients"] == 2  # both were processed in this run
    # SYN002 failed while loading: its loading time counts, the later stages are SYN001's alone
    assert totals["load_s"] > per_patient["SYN001"]["load_s"] > 0
    for stage in ("track_measure_s", "radiomics_s", "outputs_s"):
        assert totals[stage] == pytest.approx(per_patient["SYN001"][stage], abs=2e-3)
        assert per_patient["SYN001"][stage] > 0
    assert {"index_s", "patients_s", "kinetics_s", "aggregate_s", "report_s"} <= set(timings["stages"])
    res = info["resources"]
    assert set(res["per_patient"]) == {"SYN001", "SYN002"}
    syn001 = res["per_patient"]["SYN001"]
    assert syn001["worker"] == "in-process" and syn001["wall_s"] >= sum(per_patient["SYN001"].values())
    assert syn001["cpu_s"] > 0 and syn001["peak_rss_mib"] >= syn001["rss_mib"] > 50
    (worker,) = res["workers"]  # in-process: one "worker", the driver, with both patients
    assert worker["patients"] == 2 and worker["worker"] == "in-process"
    assert worker["peak_rss_mib"] == max(p["peak_rss_mib"] for p in res["per_patient"].values())
    assert res["peak_worker_rss_mib"] == worker["peak_rss_mib"]
    assert res["driver_peak_rss_mib"] >= worker["peak_rss_mib"]
    assert info["dask"] == {
        "mode": "in-process", "scheduler": None, "workers": 1, "dashboard": None,
        "dashboard_missing": None, "worker_log": None,
    }  # fmt: skip


@pytest.mark.slow
def test_local_cluster_cost_dashboard_and_worker_logs(
    tiny_archive: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """2 LocalCluster workers: each patient's cost comes from the process that ran it, the dashboard link is
    recorded (bokeh is a dev dependency), the workers' output goes to OUT/logs, not to the console."""
    out = tmp_path / "out"
    summary = run_study(tiny_archive, out, FAST_CONFIG, workers=2)
    assert summary.exit_code == 0, summary.errors.to_string()
    info = json.loads((out / "run.json").read_text())
    dask = info["dask"]
    assert dask["mode"] == "local-cluster" and dask["workers"] == 2
    assert dask["scheduler"].startswith("tcp://127.0.0.1:")
    assert dask["dashboard"].startswith("http://127.0.0.1:") and dask["dashboard_missing"] is None
    per_patient = info["resources"]["per_patient"]
    assert set(per_patient) == {"SYN001", "SYN002"}
    import os

    assert all(r["pid"] != os.getpid() and r["worker"].startswith("tcp://") for r in per_patient.values())
    workers = info["resources"]["workers"]
    assert sum(w["patients"] for w in workers) == 2
    for w in workers:  # a worker's peak is the largest VmHWM its patients saw
        mine = [r for r in per_patient.values() if r["pid"] == w["pid"]]
        assert w["peak_rss_mib"] == max(r["peak_rss_mib"] for r in mine) > 50
        assert w["busy_s"] == pytest.approx(sum(r["wall_s"] for r in mine), abs=2e-3)
    raw = sorted((out / "logs").glob("worker-*.log"))
    assert len(raw) == 2  # each worker process's stdout/stderr, from the moment it joined
    markers = [line for f in raw for line in f.read_text().splitlines() if line.endswith(" output")]
    assert len(markers) == 2
    gathered = (out / "logs" / "dask_workers.log").read_text()
    for pid, r in per_patient.items():
        assert f"[{r['worker']}] [{pid}] " in gathered and f"patient {pid} done in" in gathered
    console = capfd.readouterr()
    assert not any(m in console.err + console.out for m in markers)  # never printed on the console
    progress = json.loads((out / PROGRESS_FILE).read_text())
    assert progress["workers"] == 2 and progress["patients"]["done"] == 2


def test_a_patient_task_log_keeps_only_its_own_thread() -> None:
    """Two patient tasks can share a Dask worker process (one seceded while its radiomics units run): each
    task's log collects the records of its own thread, not its neighbour's."""
    import logging
    import threading

    from hpd_imaging.pipeline.execute import _ListHandler

    lines: list[str] = []
    handler = _ListHandler(lines)
    log = logging.getLogger("hpd_imaging.test_thread_log")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("patient A: mine")
        other = threading.Thread(target=lambda: log.info("patient B: not mine"))
        other.start()
        other.join()
    finally:
        log.removeHandler(handler)
    assert len(lines) == 1 and lines[0].endswith("patient A: mine")
