"""Where patient jobs run: in this process, on a Dask LocalCluster sized to the machine, or on an existing
Dask scheduler (``dask scheduler``/``dask worker``, dask-jobqueue, Kubernetes) reached by its address.

The same function (:func:`run_job`, around :func:`hpd_imaging.pipeline.patient.safe_process`) runs
everywhere; jobs carry paths, so workers must see the archive and OUT under the same paths (a shared
filesystem on a cluster).

Nothing here may hang (issue 16): a patient that runs past ``run.patient_time_limit_s`` becomes an error row
(in-process: SIGALRM interrupts it; on Dask: the driver cancels it), and a scheduler left without any worker
for ``run.cluster_lost_after_s`` ends the run with every unfinished patient as an error row (exit code 1). A
cluster that cannot start is an :class:`~hpd_imaging.errors.EnvironmentFaultError` (exit code 2).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpd_imaging import atomic
from hpd_imaging.errors import EnvironmentFaultError
from hpd_imaging.pipeline.patient import PatientJob, error_row, safe_process
from hpd_imaging.provenance import file_records
from hpd_imaging.pseudonym import replace_token

logger = logging.getLogger(__name__)

Notify = Callable[[str, str], None]
#: files of a patient's result folder written around the patient's own work (see run_job)
# both lists follow the sorted input paths and hold no path: a pseudonymised OUT keeps no patient ID
INPUTS_FILE = "inputs.json"  # what the worker read: size, mtime_ns, sha256 per file (the resume check)
SCANNED_FILE = "scanned.json"  # what the archive scan saw: [size, mtime_ns] per file (written by the driver)
STARTED_FILE = "started.json"  # when the worker began (the driver's per-patient clock on Dask)
POLL_S = 1.0  # how often the driver looks at the cluster while waiting


class PatientTimeout(BaseException):  # noqa: N818 - BaseException: `except Exception` in a stage cannot swallow it
    """Raised by SIGALRM in an in-process patient that runs past its time limit."""


def run_job(job: PatientJob) -> dict[str, Any]:
    """One patient, guarded: inputs hashed before reading, checked unchanged after, ``done.json`` withdrawn
    when they changed (a result must describe the bytes it was computed from, see study._verified_resume)."""
    rd = job.result_dir
    rd.mkdir(parents=True, exist_ok=True)
    atomic.write_json(rd / STARTED_FILE, {"started_unix_s": time.time(), "pid": os.getpid()})
    files = [f for tp in job.timepoints if tp.ct is not None for f in tp.ct.files] + [
        m.path for tp in job.timepoints for m in tp.masks
    ]
    before = file_records(files, content=True)
    atomic.write_json(rd / INPUTS_FILE, list(before.values()))  # by position: no path (no patient ID) in OUT
    scanned = json.loads((rd / SCANNED_FILE).read_text()) if (rd / SCANNED_FILE).exists() else None
    status = safe_process(job)
    after = file_records(files, content=False)
    changed = [
        p
        for n, (p, rec) in enumerate(before.items())
        if (rec.get("size"), rec.get("mtime_ns")) != (after[p].get("size"), after[p].get("mtime_ns"))
        or (scanned is not None and scanned[n] != [rec.get("size"), rec.get("mtime_ns")])
    ]
    if changed:
        (rd / "done.json").unlink(missing_ok=True)
        first = changed[0]
        if job.source_patient_id and job.source_patient_id != job.patient_id:  # pseudonymised run
            first = replace_token(first, job.source_patient_id, job.patient_id)
        row = error_row(
            job.patient_id,
            "inputs",
            first,
            f"{len(changed)} input file(s) changed between the archive scan and the end of this patient's "
            f"processing (first: {first}); its results were discarded: rerun once the archive is stable",
        )
        status = {**status, "ok": False, "errors": [*status.get("errors", []), row]}
        atomic.write_json(rd / "errors.json", status["errors"])
    return status


def _on_dask_worker(job: PatientJob) -> dict:
    """run_job in a Dask worker process, whose logging the driver's CLI never configured: keep
    pyradiomics' per-lesion notices (e.g. "GLCM is symmetrical", at WARNING) out of the worker's stderr."""
    import hpd_imaging.radiomics.extract  # noqa: F401 - it sets the "radiomics" logger's level on import

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return run_job(job)


def default_workers(n_jobs: int) -> int:
    """One worker process per core (the stages are CPU-bound), never more than there are patients."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_jobs, cores))


def _failed(job: PatientJob, stage: str, message: str | BaseException) -> dict[str, Any]:
    status = {
        "patient_id": job.patient_id,
        "ok": False,
        "errors": [error_row(job.patient_id, stage, None, message)],
        "timings_s": {},
    }
    (job.result_dir / "done.json").unlink(missing_ok=True)
    atomic.write_json(job.result_dir / "errors.json", status["errors"])
    return status


def _in_process(job: PatientJob, time_limit_s: float | None) -> dict[str, Any]:
    """run_job here, interrupted by SIGALRM after ``time_limit_s`` (main thread only; elsewhere unlimited)."""
    use_alarm = time_limit_s is not None and threading.current_thread() is threading.main_thread()
    if not use_alarm:
        return run_job(job)

    def on_alarm(signum: int, frame: Any) -> None:
        raise PatientTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(time_limit_s))  # type: ignore[arg-type]
    try:
        return run_job(job)
    except PatientTimeout:
        return _failed(job, "time_limit", _timeout_message(time_limit_s))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _timeout_message(limit_s: float | None) -> str:
    return (
        f"patient not finished within run.patient_time_limit_s = {limit_s:g} s: stopped, no result; "
        "raise the limit for very large exams or check this patient's files"
    )


def execute(
    jobs: list[PatientJob],
    workers: int | None,
    scheduler: str | None,
    notify: Notify,
    *,
    time_limit_s: float | None = None,
    cluster_lost_after_s: float = 60.0,
) -> list[dict]:
    """Run patient jobs and return their status dicts (in completion order).

    In-process when one worker is asked for or there is a single job and no scheduler: a small study then
    needs no cluster start-up (a few seconds) and keeps tracebacks local.
    """
    if not jobs:
        return []
    n_workers = workers or default_workers(len(jobs))
    if scheduler is None and (n_workers == 1 or len(jobs) == 1):
        logger.info("running %d patient(s) in-process", len(jobs))
        statuses = []
        for job in jobs:
            notify("patient_start", job.patient_id)
            statuses.append(_in_process(job, time_limit_s))
            notify("patient_done" if statuses[-1]["ok"] else "patient_failed", job.patient_id)
        return statuses

    client, cluster = _connect(scheduler, n_workers)
    try:
        try:  # worker log records (warnings from the stages) land in this process's handlers and log file
            client.forward_logging("hpd_imaging", level=logging.INFO)
        except Exception:  # noqa: BLE001 - logging is a convenience, never a reason to fail a run
            logger.debug("could not forward worker logs", exc_info=True)
        return _run_on_cluster(client, jobs, notify, time_limit_s, cluster_lost_after_s, scheduler)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(scheduler: str | None, n_workers: int) -> tuple[Any, Any]:
    """A Dask client (and the LocalCluster it owns, if any); EnvironmentFaultError when none can be had."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler is None:
            # one thread per worker process: the stages are CPU-bound numpy/ITK code, and processes keep
            # pyradiomics/SimpleITK state apart; memory is one patient's images per worker at a time
            logger.info("starting a Dask LocalCluster of %d worker process(es)", n_workers)
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            return Client(cluster), cluster
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


def _run_on_cluster(
    client: Any,
    jobs: list[PatientJob],
    notify: Notify,
    time_limit_s: float | None,
    cluster_lost_after_s: float,
    scheduler: str | None,
) -> list[dict]:
    from dask.distributed import wait

    futures: dict[Any, PatientJob] = {}
    for job in jobs:
        future = client.submit(
            _on_dask_worker, job, key=f"patient-{job.patient_id}-{job.result_dir.name}", pure=False
        )
        futures[future] = job
        notify("patient_start", job.patient_id)
    statuses: list[dict] = []
    pending = set(futures)
    no_workers_since: float | None = None
    while pending:
        try:
            done, _ = wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED")
        except TimeoutError:  # nothing finished within the poll: look at the clock and the cluster
            done = set()
        for future in done:
            pending.discard(future)
            statuses.append(_collect(future, futures[future]))
            notify("patient_done" if statuses[-1]["ok"] else "patient_failed", futures[future].patient_id)
        if not pending:
            break
        if time_limit_s is not None:
            for future in list(pending):
                job = futures[future]
                started = _started(job)
                if started is not None and time.time() - started > time_limit_s:
                    future.cancel()
                    pending.discard(future)
                    statuses.append(_failed(job, "time_limit", _timeout_message(time_limit_s)))
                    notify("patient_failed", job.patient_id)
        n_workers = _n_workers(client)
        if n_workers == 0:
            no_workers_since = no_workers_since or time.monotonic()
            waited = time.monotonic() - no_workers_since
            if waited >= cluster_lost_after_s:
                where = f"the Dask scheduler at {scheduler}" if scheduler else "the Dask LocalCluster"
                message = (
                    f"{where} has had no worker for {waited:.0f} s (run.cluster_lost_after_s = "
                    f"{cluster_lost_after_s:g}): patient not processed; restart the workers and rerun "
                    "(finished patients resume)"
                )
                logger.error("%s; %d patient(s) left unprocessed", message, len(pending))
                for future in sorted(pending, key=lambda f: futures[f].patient_id):
                    future.cancel()
                    statuses.append(_failed(futures[future], "cluster", message))
                    notify("patient_failed", futures[future].patient_id)
                pending.clear()
        else:
            no_workers_since = None
    return statuses


def _collect(future: Any, job: PatientJob) -> dict[str, Any]:
    try:
        return future.result()
    except EnvironmentFaultError:
        raise  # full disk / unwritable OUT on the worker: the run stops with exit code 2
    except Exception as exc:  # noqa: BLE001 - a worker died (e.g. killed for memory) or the task was lost
        return _failed(job, "worker", exc)


def _started(job: PatientJob) -> float | None:
    try:
        return float(json.loads((job.result_dir / STARTED_FILE).read_text())["started_unix_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _n_workers(client: Any) -> int | None:
    """Workers the scheduler knows now (None when the scheduler cannot be asked: not counted as lost)."""
    try:
        return len(client.scheduler_info().get("workers", {}))
    except Exception:  # noqa: BLE001 - a scheduler that does not answer: the next poll asks again
        return None


def verified_resume(result_dir: Path, input_files: list[Path]) -> bool:
    """A stored result is reused only if the files it was computed from still hold the same bytes (the
    sha256 the worker recorded in inputs.json before reading them); otherwise it is recomputed."""
    recorded = result_dir_files(result_dir)
    now = file_records(input_files, content=True)  # sorted by path, as the worker recorded them
    if len(recorded) != len(now) or any(not isinstance(r, dict) or "sha256" not in r for r in recorded):
        logger.info("%s: no record of the inputs read; recomputing", result_dir)
        return False
    changed = [
        p for (p, rec), old in zip(now.items(), recorded, strict=True) if rec.get("sha256") != old["sha256"]
    ]
    if changed:
        logger.warning(
            "%d input file(s) changed since their stored result was computed (first: %s): recomputing",
            len(changed),
            changed[0],
        )
        return False
    return True


def result_dir_files(result_dir: Path) -> list[dict[str, Any]]:
    """What the worker recorded about its inputs (``inputs.json``: size, mtime_ns, sha256 per file, in the
    order of the sorted paths), or [] when absent or unreadable."""
    try:
        data = json.loads((result_dir / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []
