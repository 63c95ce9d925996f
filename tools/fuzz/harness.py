"""The fuzz harness: runs N seeded cases in a worker process, restarts it after a hang or crash, reports.

Why a child process: the memory budget (``RLIMIT_AS``) must not constrain the caller (pytest, the CLI), a
hang inside C code (a decoder, ITK) cannot be interrupted by a Python signal handler, and a crash of a native
library must become one finding instead of the end of the run. The parent reads the worker's JSON lines; when
no line arrives within the hard limit it kills the worker, records a ``hang`` for the case that was running,
and starts a new worker at the next case. A worker that dies records a ``crash``.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tools.fuzz.corpus import build_corpus

log = logging.getLogger(__name__)

FAILING = ("bug", "memory", "hang", "crash")
_REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIMIT_S = 300.0  # importing highdicom/SimpleITK on a loaded machine


@dataclass
class FuzzReport:
    """Outcome of a fuzz run: one record per case, counts, and the cases that broke a rule."""

    seed: int
    n_cases: int
    seconds: float
    memory_mb: int
    time_limit_s: float
    n_seeds: int
    records: list[dict[str, Any]] = field(default_factory=list)
    worker_restarts: int = 0

    @property
    def counts(self) -> Counter[str]:
        return Counter(r["status"] for r in self.records)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] in FAILING]

    def by_target(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for r in self.records:
            out.setdefault(r.get("target", "?"), Counter())[r["status"]] += 1
        return out

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        targets = "; ".join(
            f"{t}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            for t, c in sorted(self.by_target().items())
        )
        return (
            f"fuzz seed {self.seed}: {len(self.records)} cases from {self.n_seeds} seeds "
            f"in {self.seconds:.1f} s "
            f"({counts}); per target: {targets}; memory budget {self.memory_mb} MiB, "
            f"time limit {self.time_limit_s:g} s/case, worker restarts {self.worker_restarts}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n_cases": len(self.records),
            "seconds": self.seconds,
            "counts": dict(self.counts),
            "by_target": {k: dict(v) for k, v in self.by_target().items()},
            "failures": self.failures,
        }


class _Worker:
    def __init__(self, args: list[str], stderr: IO[str]) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "tools.fuzz.worker", *args],
            cwd=_REPO_ROOT,  # tools/ is not installed with the library: run from the repository root
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON record; None at end of output; raises queue.Empty on timeout."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                return None
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue  # a library printed to stdout

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_fuzz(
    n_cases: int,
    seed: int = 0,
    *,
    real_data: Path | None = None,
    work_dir: Path | None = None,
    memory_mb: int = 1024,
    time_limit_s: float = 10.0,
    start: int = 0,
    kill_grace_s: float = 15.0,
    progress: Callable[[int, int], None] | None = None,
) -> FuzzReport:
    """Run cases ``start .. start + n_cases - 1`` of fuzz run ``seed``; never raises on a finding."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpd_fuzz_") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpus_dir = work / "corpus"
        index = build_corpus(corpus_dir, real_data)
        report = FuzzReport(seed, n_cases, 0.0, memory_mb, time_limit_s, len(index["seeds"]))
        stderr_path = work / "worker_stderr.txt"
        next_case, stop = start, start + n_cases
        with open(stderr_path, "w") as stderr:
            while next_case < stop:
                args = [
                    "--corpus", str(corpus_dir), "--work", str(work), "--seed", str(seed),
                    "--start", str(next_case), "--stop", str(stop),
                    "--memory-mb", str(memory_mb), "--time-limit-s", str(time_limit_s),
                ]  # fmt: skip
                worker = _Worker(args, stderr)
                next_case = _drive(
                    worker, report, next_case, stop, time_limit_s + kill_grace_s, stderr_path, progress
                )
                if next_case < stop:
                    report.worker_restarts += 1
        report.seconds = time.perf_counter() - t0
    log.info("%s", report.summary())
    return report


def _drive(
    worker: _Worker,
    report: FuzzReport,
    next_case: int,
    stop: int,
    kill_after_s: float,
    stderr_path: Path,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Collect results from one worker; returns the first case it did not finish."""
    current: dict[str, Any] | None = None
    ready = False
    try:
        while True:
            limit = kill_after_s if ready else STARTUP_LIMIT_S
            try:
                record = worker.next(limit)
            except queue.Empty:
                worker.kill()
                if current is None:  # the worker never got going: nothing sensible to retry
                    raise RuntimeError(f"fuzz worker did not start within {limit:.0f} s") from None
                report.records.append(
                    {**current, "status": "hang", "results": {}, "detail": "killed by parent"}
                )
                return int(current["start"]) + 1
            if record is None:  # worker exited
                worker.kill()
                if not ready:
                    raise RuntimeError(f"fuzz worker failed to start: {stderr_path.read_text()[-2000:]}")
                if current is None:  # finished its range (or died between cases: the caller restarts)
                    return next_case
                code = worker.proc.returncode
                report.records.append(
                    {**current, "status": "crash", "results": {}, "detail": f"worker exited with {code}"}
                )
                return int(current["start"]) + 1
            if record.get("ready"):
                ready = True
            elif "start" in record:
                current = record
            elif "case" in record:
                report.records.append(record)
                current = None
                next_case = int(record["case"]) + 1
                if progress is not None:
                    progress(len(report.records), report.n_cases)
    finally:
        worker.kill()
