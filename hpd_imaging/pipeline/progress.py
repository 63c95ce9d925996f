"""Progress a user can plan with (issue 21): patients done / failed / remaining and an ETA, kept in
``OUT/progress.json`` (rewritten atomically after every event, so a reader never sees half a file) and passed
on to the caller's ``progress(event, detail)`` callback (the CLI draws it with rich).

Events received (from :mod:`.study` and :mod:`.execute`)::

    ("stage", name)          a cohort stage begins: index, patients, kinetics, radiomics, model, report
    ("patients", n)          n patients in this run (resumed ones included)
    ("workers", n)           n patients can run at once (worker threads of the cluster; 1 in-process)
    ("patient_start" | "patient_done" | "patient_failed" | "patient_resumed", patient_id)

Events sent on, in addition to the ones above: ``("progress", json)`` after every change, ``json`` being the
content of progress.json (so a caller needs no second source of truth).

ETA: ``seconds_per_patient x remaining / min(workers, remaining)``, where ``seconds_per_patient`` is the mean
wall time of the patients *processed in this run* (measured on the worker, see :func:`execute.run_job`;
resumed patients cost nothing and are not counted). It exists from the first finished patient on and assumes
the remaining patients are like the finished ones (same number of timepoints and lesion sizes); the time of
the cohort stages after the patients (kinetics, report) is not included.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpd_imaging import atomic

logger = logging.getLogger(__name__)

#: progress(event, detail), see the module docstring
Progress = Callable[[str, str], None]
PROGRESS_FILE = "progress.json"


class ProgressTracker:
    """Counts patients, estimates the time left and keeps ``progress.json`` current.

    Callable as a :data:`Progress` callback; :meth:`patient_status` receives each finished patient's status
    (with its worker-measured ``resources.wall_s``) before the ``patient_done``/``patient_failed`` event.
    """

    def __init__(self, path: Path | None, forward: Progress | None = None) -> None:
        self.path = path
        self.forward = forward
        self.started_utc = dt.datetime.now(dt.UTC)
        self._t0 = time.monotonic()
        self.stage = "start"
        self.state = "running"
        self.total: int | None = None
        self.workers = 1
        self.done = 0  # finished with a result in this run
        self.resumed = 0  # result of an earlier run reused
        self.failed: list[str] = []
        self.last_finished: str | None = None
        self.exit_code: int | None = None
        self._walls_s: list[float] = []
        self._pending_wall: dict[str, float] = {}

    # --- input ---------------------------------------------------------------------------------------
    def __call__(self, event: str, detail: str) -> None:
        if event == "stage":
            self.stage = detail
        elif event == "patients":
            self.total = int(detail)
        elif event == "workers":
            self.workers = max(1, int(detail))
        elif event == "patient_resumed":
            self.resumed += 1
        elif event in ("patient_done", "patient_failed"):
            wall = self._pending_wall.pop(detail, None)
            if wall is not None:
                self._walls_s.append(wall)
            if event == "patient_done":
                self.done += 1
            else:
                self.failed.append(detail)
            self.last_finished = detail
        if self.forward is not None:
            self.forward(event, detail)
        if event != "patient_start":  # a start changes no count (on Dask every patient "starts" at submit)
            self._publish()

    def patient_status(self, status: dict[str, Any]) -> None:
        """Remember the worker's wall time of a finished patient (used by the next done/failed event)."""
        wall = (status.get("resources") or {}).get("wall_s")
        if isinstance(wall, int | float) and math.isfinite(wall):
            self._pending_wall[str(status.get("patient_id"))] = float(wall)

    def finish(self, n_patients: int, failed: list[str], exit_code: int) -> None:
        """The run's final state: counts as in run.json (patients withheld at the cohort stage count as
        failed there, so ``done`` is recomputed from the summary)."""
        self.state, self.stage, self.exit_code = "finished", "done", exit_code
        self.total = n_patients
        self.failed = sorted(failed)
        self.done = n_patients - len(self.failed) - self.resumed
        self._publish()

    def stop(self, reason: str) -> None:
        """The run ended early (environment fault, interrupt): say so in the file instead of 'running'."""
        self.state, self.stage = "stopped", f"stopped: {reason}"
        self._publish()

    # --- output --------------------------------------------------------------------------------------
    @property
    def seconds_per_patient(self) -> float | None:
        return sum(self._walls_s) / len(self._walls_s) if self._walls_s else None

    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.done - self.resumed - len(self.failed))

    def eta_s(self) -> float | None:
        """Seconds until the last patient is done, or None before any patient was processed in this run."""
        remaining = self.remaining()
        if remaining == 0 and self.total is not None:
            return 0.0
        per = self.seconds_per_patient
        if per is None or remaining is None:
            return None
        return per * remaining / min(self.workers, remaining)

    def snapshot(self) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        eta = self.eta_s()
        per = self.seconds_per_patient
        return {
            "state": self.state,
            "stage": self.stage,
            "started_utc": self.started_utc.isoformat(timespec="seconds"),
            "updated_utc": now.isoformat(timespec="seconds"),
            "elapsed_s": round(time.monotonic() - self._t0, 1),
            "patients": {
                "total": self.total,
                "done": self.done + self.resumed,
                "processed": self.done,
                "resumed": self.resumed,
                "failed": len(self.failed),
                "remaining": self.remaining(),
            },
            "workers": self.workers,
            "seconds_per_patient": None if per is None else round(per, 2),
            "eta_s": None if eta is None else round(eta, 1),
            "eta_utc": None
            if eta is None
            else (now + dt.timedelta(seconds=eta)).isoformat(timespec="seconds"),
            "last_finished": self.last_finished,
            "failed_patients": sorted(self.failed),
            "exit_code": self.exit_code,
        }

    def _publish(self) -> None:
        snap = self.snapshot()
        if self.path is not None:
            try:
                atomic.write_json(self.path, snap)
            except Exception:  # noqa: BLE001 - the progress file is a convenience, never a reason to fail
                logger.warning("could not update %s", self.path, exc_info=True)
        if self.forward is not None:
            self.forward("progress", json.dumps(snap))
