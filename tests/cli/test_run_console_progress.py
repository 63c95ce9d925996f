"""The console line of `hpd-imaging run` (issue 21): counts and an ETA a user can plan with, from the same
snapshot as OUT/progress.json."""

from __future__ import annotations

import json
from pathlib import Path

from hpd_imaging.commands.run import _counts_text
from hpd_imaging.pipeline.progress import PROGRESS_FILE, ProgressTracker


def test_console_counts_and_eta_from_the_progress_snapshot(tmp_path: Path) -> None:
    lines: list[str] = []

    def console(event: str, detail: str) -> None:
        if event == "progress":
            lines.append(_counts_text(json.loads(detail)))

    t = ProgressTracker(tmp_path / PROGRESS_FILE, console)
    t("stage", "index")
    assert lines[-1] == ""  # nothing to count before the patients are known
    t("patients", "100")
    t("workers", "4")
    assert lines[-1] == "done 0 · failed 0 · left 100"  # no ETA before a patient was processed
    t.patient_status({"patient_id": "P1", "resources": {"wall_s": 60.0}})
    t("patient_done", "P1")
    # 99 left, 60 s each, 4 at once: 1485 s
    assert lines[-1] == "done 1 · failed 0 · left 99 · ETA 0:24:45 (60.0 s/patient, 4 at once)"
    t("patient_failed", "P2")  # stopped by the driver (no worker time): counted, the mean unchanged
    assert lines[-1] == "done 1 · failed 1 · left 98 · ETA 0:24:30 (60.0 s/patient, 4 at once)"
    t.finish(100, ["P2"], exit_code=1)
    assert lines[-1] == "done 99 · failed 1 · left 0"  # the end: no ETA shown
