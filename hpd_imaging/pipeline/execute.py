"""Where patient jobs run: in this process, on a Dask LocalCluster sized to the machine, or on an existing
Dask scheduler (``dask scheduler``/``dask worker``, dask-jobqueue, Kubernetes) reached by its address.

The same function (:func:`hpd_imaging.pipeline.patient.safe_process`) runs everywhere; jobs carry paths, so
workers must see the archive and OUT under the same paths (a shared filesystem on a cluster).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from hpd_imaging import atomic
from hpd_imaging.pipeline.patient import PatientJob, error_row, safe_process

logger = logging.getLogger(__name__)

Notify = Callable[[str, str], None]


def _on_dask_worker(job: PatientJob) -> dict:
    """safe_process in a Dask worker process, whose logging the driver's CLI never configured: keep
    pyradiomics' per-lesion notices (e.g. "GLCM is symmetrical", at WARNING) out of the worker's stderr."""
    import hpd_imaging.radiomics.extract  # noqa: F401 - it sets the "radiomics" logger's level on import

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return safe_process(job)


def default_workers(n_jobs: int) -> int:
    """One worker process per core (the stages are CPU-bound), never more than there are patients."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_jobs, cores))


def execute(jobs: list[PatientJob], workers: int | None, scheduler: str | None, notify: Notify) -> list[dict]:
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
            statuses.append(safe_process(job))
            notify("patient_done" if statuses[-1]["ok"] else "patient_failed", job.patient_id)
        return statuses

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
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
        client = Client(cluster)
    else:
        logger.info("connecting to the Dask scheduler at %s", scheduler)
        client = Client(scheduler, timeout="30s")
    try:
        try:  # worker log records (warnings from the stages) land in this process's handlers and log file
            client.forward_logging("hpd_imaging", level=logging.INFO)
        except Exception:  # noqa: BLE001 - logging is a convenience, never a reason to fail a run
            logger.debug("could not forward worker logs", exc_info=True)
        futures = {}
        for job in jobs:
            futures[
                client.submit(
                    _on_dask_worker, job, key=f"patient-{job.patient_id}-{job.result_dir.name}", pure=False
                )
            ] = job
            notify("patient_start", job.patient_id)
        statuses = []
        for future in as_completed(futures):
            job = futures[future]
            try:
                status = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died (e.g. killed for memory)
                status = {
                    "patient_id": job.patient_id,
                    "ok": False,
                    "errors": [error_row(job.patient_id, "worker", None, exc)],
                    "timings_s": {},
                }
                atomic.write_json(job.result_dir / "errors.json", status["errors"])
            statuses.append(status)
            notify("patient_done" if status["ok"] else "patient_failed", job.patient_id)
        return statuses
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
