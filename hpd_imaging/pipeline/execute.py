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

import contextlib
import json
import logging
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpd_imaging import atomic
from hpd_imaging.errors import EnvironmentFaultError
from hpd_imaging.pipeline import cluster
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


#: one patient's images per worker process at a time (issue 21): held by a patient task on a Dask worker from
#: before it loads anything until it returns, also while it is seceded (waiting for its radiomics units)
_PATIENT_SLOT = threading.Lock()


@contextlib.contextmanager
def _patient_slot() -> Iterator[float]:
    """Hold this worker process's patient slot; yields the seconds waited for it.

    While a patient task waits for its radiomics units it has seceded from the worker's thread pool, and the
    worker may start the next patient task in another thread: without the slot both patients' images would
    be in one process and ``loader.memory_budget_mib`` would hold for neither. The next task waits here,
    seceded itself, so it keeps no thread slot that the first patient's units need (no deadlock), and rejoins
    the pool once it has the slot. On our LocalCluster the ``patient`` worker resource (see
    :data:`cluster.PATIENT_RESOURCE`) already keeps a second patient task from starting; this lock is what
    holds on an external cluster whose workers offer no such resource."""
    if _PATIENT_SLOT.acquire(blocking=False):
        waited_s = 0.0
    else:
        from distributed import rejoin, secede

        t0 = time.perf_counter()
        secede()
        try:
            _PATIENT_SLOT.acquire()
        finally:
            rejoin()  # blocks until the worker's pool has a free thread for this task again
        waited_s = time.perf_counter() - t0
        logger.info(
            "waited %.1f s for this worker's patient slot (another patient's images were loaded)", waited_s
        )
    try:
        yield waited_s
    finally:
        _PATIENT_SLOT.release()


def run_job(job: PatientJob) -> dict[str, Any]:
    """One patient, guarded: inputs hashed before reading, checked unchanged after, ``done.json`` withdrawn
    when they changed (a result must describe the bytes it was computed from, see study._verified_resume)."""
    rd = job.result_dir
    rd.mkdir(parents=True, exist_ok=True)
    wall0, cpu0, started_unix_s = time.perf_counter(), _cpu_s(), time.time()
    atomic.write_json(rd / STARTED_FILE, {"started_unix_s": started_unix_s, "pid": os.getpid()})
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
    res = _resources(time.perf_counter() - wall0, _cpu_s() - cpu0, started_unix_s)
    logger.info(
        "patient %s %s in %.1f s (%.1f CPU s) on %s; process peak RSS %.0f MiB",
        job.patient_id,
        "done" if status.get("ok") else "failed",
        res["wall_s"],
        res["cpu_s"],
        res["worker"],
        res["peak_rss_mib"],
    )
    return {**status, "resources": res}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _resources(wall_s: float, cpu_s: float, started_unix_s: float | None = None) -> dict[str, Any]:
    """What this patient cost the process that ran it (run.json ``resources``, issue 21).

    ``peak_rss_mib`` is the process's kernel high-water mark of resident memory (``VmHWM``; where /proc is
    absent, ``getrusage`` ``ru_maxrss``) read after the patient: the worker's peak so far, this patient
    included. It is not reset between patients (resetting it would hide the peak from outside monitors), so
    a worker's peak is the largest value over its patients. ``started_unix_s``/``ended_unix_s``: when the
    patient's work began and ended in that process (two patients of one worker process never overlap).
    """
    hwm_kib = _proc_status_kib("VmHWM")
    if hwm_kib is None:
        hwm_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rss_kib = _proc_status_kib("VmRSS")
    return {
        "worker": _worker_name(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "peak_rss_mib": round(hwm_kib / 1024, 1),
        "rss_mib": None if rss_kib is None else round(rss_kib / 1024, 1),
        "started_unix_s": None if started_unix_s is None else round(started_unix_s, 3),
        "ended_unix_s": round(time.time(), 3),
    }


def _worker_name() -> str:
    """The Dask worker's address, or "in-process" when the patient ran in the driver."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "in-process"


def _on_dask_worker(job: PatientJob) -> dict:
    """run_job in a Dask worker process, whose logging the driver's CLI never configured: keep
    pyradiomics' per-lesion notices (e.g. "GLCM is symmetrical", at WARNING) out of the worker's stderr."""
    import hpd_imaging.radiomics.extract  # noqa: F401 - it sets the "radiomics" logger's level on import

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    records: list[str] = []
    handler = _ListHandler(records)
    package = logging.getLogger("hpd_imaging")
    level = package.level
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        with _patient_slot() as waited_s:
            status = run_job(job)
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
    status["resources"]["slot_wait_s"] = round(waited_s, 3)
    return {**status, "log": records}


class _ListHandler(logging.Handler):
    """Collects a task's hpd_imaging log records (INFO and up) as lines for OUT/logs/dask_workers.log.

    Only the records of the thread that runs the task: while a patient task secedes (its radiomics units run
    as tasks of their own), the worker may run the next patient in another thread of the same process, and
    both tasks' handlers hang on the same logger."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - never fail a patient over a log line
            self.handleError(record)


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


@dataclass
class Execution:
    """Where the patients ran and what each cost (run.json ``dask`` and ``resources``)."""

    statuses: list[dict] = field(default_factory=list)  # in completion order
    mode: str = "in-process"  # in-process | local-cluster | scheduler
    scheduler: str | None = None  # the scheduler's address (LocalCluster's too)
    workers: int = 1  # patients that could run at once (worker threads)
    dashboard: str | None = None
    dashboard_missing: str | None = None  # why there is no dashboard link
    worker_log: Path | None = None  # OUT/logs/dask_workers.log


def execute(
    jobs: list[PatientJob],
    workers: int | None,
    scheduler: str | None,
    notify: Notify,
    *,
    time_limit_s: float | None = None,
    cluster_lost_after_s: float = 60.0,
    on_status: Callable[[dict], None] | None = None,
    log_dir: Path | None = None,
) -> Execution:
    """Run patient jobs; each finished patient's status goes to ``on_status`` before its
    ``patient_done``/``patient_failed`` event. ``log_dir``: where Dask workers' logs are gathered.

    In-process when one worker is asked for or there is a single job and no scheduler: a small study then
    needs no cluster start-up (a few seconds) and keeps tracebacks local.
    """
    run = Execution()
    if not jobs:
        return run

    def finished(status: dict, job: PatientJob) -> None:
        run.statuses.append(status)
        if on_status is not None:
            on_status(status)
        notify("patient_done" if status["ok"] else "patient_failed", job.patient_id)

    n_workers = workers or default_workers(len(jobs))
    if scheduler is None and (n_workers == 1 or len(jobs) == 1):
        logger.info("running %d patient(s) in-process", len(jobs))
        notify("workers", "1")
        for job in jobs:
            notify("patient_start", job.patient_id)
            finished(_in_process(job, time_limit_s), job)
        return run

    client, local = cluster.connect(scheduler, n_workers, log_dir)
    run.mode = "scheduler" if scheduler else "local-cluster"
    try:
        run.scheduler = str(client.scheduler.address)
        run.dashboard, run.dashboard_missing = cluster.dashboard_link(client)
        threads = _n_threads(client)
        run.workers = threads or n_workers
        notify("workers", str(run.workers))
        logger.info(
            "Dask %s at %s: %d worker thread(s); dashboard: %s",
            "LocalCluster" if local is not None else "scheduler",
            run.scheduler,
            run.workers,
            run.dashboard or f"none ({run.dashboard_missing})",
        )
        try:  # stage warnings from the workers reach the console as they happen (INFO goes to the log file)
            client.forward_logging("hpd_imaging", level=logging.WARNING)
        except Exception:  # noqa: BLE001 - logging is a convenience, never a reason to fail a run
            logger.debug("could not forward worker logs", exc_info=True)
        _run_on_cluster(client, jobs, notify, time_limit_s, cluster_lost_after_s, scheduler, finished)
        if log_dir is not None:
            run.worker_log = cluster.write_worker_log(client, run.statuses, log_dir / cluster.WORKER_LOG)
        return run
    finally:
        client.close()
        if local is not None:
            local.close()


def _n_threads(client: Any) -> int | None:
    try:
        workers = client.scheduler_info().get("workers", {})
        return sum(int(w.get("nthreads", 1)) for w in workers.values()) or None
    except Exception:  # noqa: BLE001 - a count for the ETA only
        return None


def _run_on_cluster(
    client: Any,
    jobs: list[PatientJob],
    notify: Notify,
    time_limit_s: float | None,
    cluster_lost_after_s: float,
    scheduler: str | None,
    finished: Callable[[dict, PatientJob], None],
) -> None:
    from dask.distributed import wait

    futures: dict[Any, PatientJob] = {}
    restrictions = _patient_resources(client)
    for job in jobs:
        future = client.submit(
            _on_dask_worker,
            job,
            key=f"patient-{job.patient_id}-{job.result_dir.name}",
            pure=False,
            resources=restrictions,
        )
        futures[future] = job
        notify("patient_start", job.patient_id)
    pending = set(futures)
    no_workers_since: float | None = None
    while pending:
        try:
            done, _ = wait(list(pending), timeout=POLL_S, return_when="FIRST_COMPLETED")
        except TimeoutError:  # nothing finished within the poll: look at the clock and the cluster
            done = set()
        for future in done:
            pending.discard(future)
            finished(_collect(future, futures[future]), futures[future])
        if not pending:
            break
        if time_limit_s is not None:
            for future in list(pending):
                job = futures[future]
                started = _started(job)
                if started is not None and time.time() - started > time_limit_s:
                    future.cancel()
                    pending.discard(future)
                    finished(_failed(job, "time_limit", _timeout_message(time_limit_s)), job)
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
                    finished(_failed(futures[future], "cluster", message), futures[future])
                pending.clear()
        else:
            no_workers_since = None


def _patient_resources(client: Any) -> dict[str, float] | None:
    """``{"patient": 1}`` when every worker offers the ``patient`` resource (our LocalCluster; an external
    cluster started with ``dask worker --resources patient=1``): the scheduler then never starts a second
    patient on a worker while one is there, seceded or not. Otherwise None: a task restricted to a resource
    no worker has would never run; the per-process slot (:func:`_patient_slot`) still keeps one patient's
    images per worker process, but seceded tasks wait on the worker instead of in the scheduler's queue."""
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:  # noqa: BLE001 - no restriction: the slot still holds
        return None
    offered = [(w.get("resources") or {}).get(cluster.PATIENT_RESOURCE, 0) for w in workers.values()]
    if offered and all(n >= 1 for n in offered):
        return {cluster.PATIENT_RESOURCE: 1}
    logger.info(
        "the Dask workers offer no '%s' resource (start them with --resources %s=1): a worker may queue "
        "patient tasks that wait for its one patient slot",
        cluster.PATIENT_RESOURCE,
        cluster.PATIENT_RESOURCE,
    )
    return None


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
