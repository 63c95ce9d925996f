"""Dask as users run it (issue 21): the client, the dashboard address, and the workers' logs in a file.

- A LocalCluster serves its dashboard on 127.0.0.1 (a free port) when bokeh is installed (``pip install
  hpd-imaging[dashboard]``); an external ``dask scheduler`` serves its own. Either way the link is logged once
  and recorded in run.json (``dask.dashboard``); without bokeh it is ``None`` with the reason.
- Worker output never reaches the user's console as noise: the processes of our LocalCluster have their
  stdout/stderr (Dask's "event loop unresponsive" warnings, ITK's C++ messages, pyradiomics) sent to
  ``OUT/logs/worker-<pid>.log``; the workers of an external scheduler keep their own output (it is the
  operator's terminal or job log). At the end of a run, every worker's in-memory Dask log and each patient's
  hpd_imaging log records are gathered into ``OUT/logs/dask_workers.log``. Warnings from the stages are still
  forwarded to the console as they happen (``Client.forward_logging`` at WARNING).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hpd_imaging import atomic
from hpd_imaging.errors import EnvironmentFaultError

logger = logging.getLogger(__name__)

LOG_DIR = "logs"
WORKER_LOG = "dask_workers.log"
#: the Dask worker resource a patient task holds from start to end (seceded or not): a worker that offers one
#: runs one patient at a time (``dask worker --resources patient=1`` on an external cluster)
PATIENT_RESOURCE = "patient"
NO_BOKEH = "bokeh is not installed (pip install 'hpd-imaging[dashboard]')"


def connect(scheduler: str | None, n_workers: int, log_dir: Path | None) -> tuple[Any, Any]:
    """A Dask client (and the LocalCluster it owns, if any); EnvironmentFaultError when none can be had."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler is None:
            # one thread per worker process: the stages are CPU-bound numpy/ITK code, and processes keep
            # pyradiomics/SimpleITK state apart; memory is one patient's images per worker at a time
            logger.info("starting a Dask LocalCluster of %d worker process(es)", n_workers)
            dashboard = "127.0.0.1:0" if importlib.util.find_spec("bokeh") is not None else None
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                # one patient's images per worker process, also while a patient task is seceded: a seceded
                # task keeps its resources (distributed releases them when the task ends), units need none
                resources={PATIENT_RESOURCE: 1},
                dashboard_address=dashboard,
                silence_logs=logging.WARNING,
            )
            client = Client(cluster)
            if log_dir is not None:
                _redirect_worker_output(client, log_dir)
            return client, cluster
        logger.info("connecting to the Dask scheduler at %s", scheduler)
        return Client(scheduler, timeout="30s"), None
    except Exception as exc:  # noqa: BLE001 - any start-up failure is the machine's, reported in one sentence
        if cluster is not None:
            cluster.close()
        where = (
            f"the Dask scheduler at {scheduler}"
            if scheduler
            else f"a Dask LocalCluster of {n_workers} workers"
        )
        todo = (
            "check the address and that the scheduler runs"
            if scheduler
            else "run with --workers 1 (in-process) or free memory/processes"
        )
        raise EnvironmentFaultError(
            f"cannot start {where}: {type(exc).__name__}: {exc}; {todo}", path=scheduler
        ) from exc


def _redirect_worker_output(client: Any, log_dir: Path) -> None:
    """Worker output to ``log_dir/worker-<pid>.log`` (earlier runs' files removed first: pids recur)."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        for old in log_dir.glob("worker-*.log"):
            old.unlink()
        client.register_plugin(WorkerOutputToFile(str(log_dir)))
    except Exception:  # noqa: BLE001 - output on the console is noise, not a reason to fail the run
        logger.warning("could not send the Dask workers' output to %s; it goes to the console", log_dir)


try:  # a WorkerPlugin subclass when distributed is importable (it is a dependency; the guard keeps
    from distributed.diagnostics.plugin import WorkerPlugin as _Base  # import-time cost out of --help)
except ImportError:  # pragma: no cover
    _Base = object  # type: ignore[assignment,misc]


class WorkerOutputToFile(_Base):  # type: ignore[misc,valid-type]
    """Send a worker process's stdout and stderr (file descriptors 1 and 2, so C/C++ output too) to
    ``<log_dir>/worker-<pid>.log``. Registered for the LocalCluster's workers only (their output would
    otherwise be interleaved with the user's console)."""

    name = "hpd-imaging-worker-output"

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir

    def setup(self, worker: Any) -> None:
        path = Path(self.log_dir) / f"worker-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        print(f"{dt.datetime.now(dt.UTC).isoformat()} worker {worker.address} output", file=sys.stderr)


def dashboard_link(client: Any) -> tuple[str | None, str | None]:
    """(link, None) when the scheduler serves a dashboard, else (None, why not)."""
    try:
        services = client.scheduler_info().get("services", {})
        if "dashboard" not in services:
            if importlib.util.find_spec("bokeh") is None:
                return None, NO_BOKEH
            return None, "the scheduler serves no dashboard (started with --no-dashboard?)"
        return str(client.dashboard_link), None
    except Exception as exc:  # noqa: BLE001 - the link is information, never a reason to fail a run
        return None, f"could not ask the scheduler: {type(exc).__name__}: {exc}"


def write_worker_log(client: Any | None, statuses: list[dict], path: Path) -> Path | None:
    """``OUT/logs/dask_workers.log``: each patient's hpd_imaging records (as the worker captured them), then
    every worker's recent Dask log (oldest first). Returns the path, or None when nothing could be written."""
    lines: list[str] = []
    for status in sorted(statuses, key=lambda s: str(s.get("patient_id"))):
        where = (status.get("resources") or {}).get("worker") or "?"
        for line in status.get("log") or []:
            lines.append(f"[{where}] [{status.get('patient_id')}] {line}")
    if client is not None:
        try:
            logs = client.get_worker_logs()
        except Exception as exc:  # noqa: BLE001 - workers already gone: say so in the file
            lines.append(f"(Dask worker logs unavailable: {type(exc).__name__}: {exc})")
            logs = {}
        for address, records in sorted(logs.items()):
            for record in reversed(records):  # Dask returns newest first
                lines.append(f"[{address}] {record[-1]}")  # (level, "time - logger - LEVEL - message")
    try:
        return atomic.write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    except Exception:  # noqa: BLE001 - a log file is a convenience
        logger.warning("could not write %s", path, exc_info=True)
        return None
