"""run.json: what a run did, with what, where and at what cost.

Cost fields (issue 21; read by benchmarks/real_size.py), all measured by the run itself:

- ``timings_s.stages``: driver wall seconds per cohort stage (``index_s``, ``patients_s``, ``kinetics_s``,
  ``aggregate_s``, ``model_s`` when a model was given, ``report_s``).
- ``timings_s.per_patient``: ``{patient: {load_s, track_measure_s, radiomics_s, outputs_s}}`` as measured on
  the worker (a resumed patient shows its stored result's times).
- ``timings_s.patient_stages_total``: the same stages summed over the patients processed in *this* run,
  failed ones included as far as they got (``n_patients`` of them; resumed ones cost nothing, left out).
- ``resources.per_patient``: ``{patient: {worker, host, pid, wall_s, cpu_s, peak_rss_mib, rss_mib}}`` for the
  patients processed in this run; ``peak_rss_mib`` is the worker process's kernel high-water mark (VmHWM)
  after the patient (see :func:`execute._resources`).
- ``resources.workers``: one row per worker process (``worker`` = Dask address or ``in-process``, host, pid):
  ``patients``, ``busy_s`` (sum of wall_s), ``cpu_s``, ``peak_rss_mib`` (max over its patients);
  ``resources.peak_worker_rss_mib`` the largest; ``resources.driver_peak_rss_mib`` this process's.
- ``dask``: ``mode`` (in-process | local-cluster | scheduler), ``scheduler`` address, ``workers`` (threads),
  ``dashboard`` link or null with ``dashboard_missing`` saying why, ``worker_log`` (relative to OUT).
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.pipeline import outdir
from hpd_imaging.pipeline.execute import Execution
from hpd_imaging.settings import PipelineConfig

PATIENT_STAGES = ("load_s", "track_measure_s", "radiomics_s", "outputs_s")


def patient_stage_totals(statuses: list[dict]) -> dict[str, float | int]:
    """Per-stage seconds summed over the patients processed in this run, failed ones included (the stages
    a failed patient reached cost time too; a stage a patient never reached counts 0 for it)."""
    names = list(PATIENT_STAGES)
    timed = [s.get("timings_s") or {} for s in statuses if s.get("resources")]
    for t in timed:
        names += [k for k in t if k not in names]
    totals: dict[str, float | int] = {
        name: round(sum(float(t.get(name, 0.0)) for t in timed), 3) for name in names
    }
    totals["n_patients"] = len(timed)
    return totals


def resources(statuses: list[dict]) -> dict[str, Any]:
    """Per patient and per worker process cost of this run's patients (see the module docstring)."""
    per_patient: dict[str, dict[str, Any]] = {}
    workers: dict[tuple[str, str, int], dict[str, Any]] = {}
    for status in statuses:
        res = status.get("resources")
        if not res:  # stopped by the driver (time limit, lost cluster): nothing measured
            continue
        per_patient[str(status["patient_id"])] = res
        key = (str(res["worker"]), str(res["host"]), int(res["pid"]))
        row = workers.setdefault(
            key,
            {"worker": key[0], "host": key[1], "pid": key[2], "patients": 0, "busy_s": 0.0, "cpu_s": 0.0,
             "peak_rss_mib": 0.0},
        )  # fmt: skip
        row["patients"] += 1
        row["busy_s"] = round(row["busy_s"] + float(res["wall_s"]), 3)
        row["cpu_s"] = round(row["cpu_s"] + float(res["cpu_s"]), 3)
        row["peak_rss_mib"] = max(row["peak_rss_mib"], float(res["peak_rss_mib"]))
    rows = [workers[k] for k in sorted(workers)]
    return {
        "per_patient": dict(sorted(per_patient.items())),
        "workers": rows,
        "peak_worker_rss_mib": max((r["peak_rss_mib"] for r in rows), default=None),
        "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def dask_info(execution: Execution, out_dir: Path) -> dict[str, Any]:
    return {
        "mode": execution.mode,
        "scheduler": execution.scheduler,
        "workers": execution.workers,
        "dashboard": execution.dashboard,
        "dashboard_missing": execution.dashboard_missing,
        "worker_log": None
        if execution.worker_log is None
        else execution.worker_log.relative_to(out_dir).as_posix(),
    }


def run_info(
    *,
    run: dict[str, Any],
    config: PipelineConfig,
    versions: dict[str, str | None],
    series: pd.DataFrame,
    patients: dict[str, Any],
    timings: dict[str, float],
    patient_timings: dict[str, dict[str, float]],
    execution: Execution,
    out_dir: Path,
    outputs: dict[str, Path],
    written: list[Path],
    not_produced: dict[str, str],
    stale: list[str],
) -> dict[str, Any]:
    """The content of run.json."""
    return {
        "hpd_imaging_run": run,
        "versions": versions,
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "settings_files_sha256": config.settings_files_sha256(),
        "input_series": json.loads(series.to_json(orient="records")),
        "patients": patients,
        "timings_s": {
            "stages": timings,
            "per_patient": patient_timings,
            "patient_stages_total": patient_stage_totals(execution.statuses),
        },
        "resources": resources(execution.statuses),
        "dask": dask_info(execution, out_dir),
        "outputs": {k: str(v.relative_to(out_dir)) for k, v in sorted(outputs.items())},
        "manifest": outdir.manifest(out_dir, written),
        "not_produced": not_produced,
        "removed_stale": stale,
    }
