"""run_study(): every stage, for every patient of an archive, then the cohort tables and the report.

Per patient (on a worker, :mod:`hpd_imaging.pipeline.patient`)::

    load CTs + masks (io) -> track + measure (tracking/measure) -> baseline radiomics -> snapshots
    -> optional DICOM SEG + TID 1500 SR per timepoint

Per cohort (here, in the driver, from the stored per-patient results)::

    lesions.csv/.parquet -> kinetics, response, concordance (response) -> radiomics_patient (aggregation)
    -> predictions (model, when given) -> errors.csv, run.json, report.html + report_patients/*.html

Resume: a patient's results live in ``OUT/.work/patients/<patient_id>/<key>/`` where ``key`` hashes the input
files (path, size, mtime), the config, the package versions and the output flags; ``done.json`` is written
last, atomically, so a run killed at any moment leaves either a complete result or none. The worker records
the sha256 of every input it read (``inputs.json``); a stored result is reused only while the files still
hash the same, and is discarded when they changed during the run. Cohort files are rebuilt from the stored
results on every run and written atomically, so a resumed run gives the same bytes as an uninterrupted one.

Ownership of OUT (issue 16): a run holds ``OUT/.work/run.lock`` (a second run into the same OUT is refused),
writes ``run.json`` with a manifest (size and sha256 of every file it wrote) and the tables it did not
produce (``not_produced``, with the reason); a table of an earlier run that this run did not rebuild is
deleted, so nothing stale looks current.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.domain import Timepoint
from hpd_imaging.errors import ConfigError, HpdImagingError
from hpd_imaging.pipeline import cohort, identity, outdir, runinfo
from hpd_imaging.pipeline.cluster import LOG_DIR
from hpd_imaging.pipeline.execute import (
    SCANNED_FILE,
    STARTED_FILE,
    default_workers,
    execute,
    verified_resume,
)
from hpd_imaging.pipeline.patient import (
    ERROR_COLUMNS,
    PatientJob,
    assign_roles,
    error_row,
    load_snapshots,
)
from hpd_imaging.pipeline.progress import PROGRESS_FILE, Progress, ProgressTracker
from hpd_imaging.provenance import file_records, files_fingerprint, package_versions, resume_key
from hpd_imaging.pseudonym import PatientIds, resolve_key
from hpd_imaging.settings import PipelineConfig, load_config

logger = logging.getLogger(__name__)

WORK_DIR = ".work"
TABLES = (
    "series.csv",
    "lesions.csv",
    "lesions.parquet",
    "tracking.csv",
    "kinetics.csv",
    "response.csv",
    "targets.csv",
    "growth.csv",
    "concordance.csv",
    "radiomics.parquet",
    "radiomics_diagnostics.parquet",
    "radiomics_patient.parquet",
    "predictions.csv",
    "errors.csv",
)
#: every file a run writes at the top of OUT, and so may delete as stale when this run did not rebuild it
OWNED_FILES = (*TABLES, "report.html")
#: errors.csv: ERROR_COLUMNS plus the rule broken and the offending value, when known (issue 16)
ERRORS_CSV_COLUMNS = [*ERROR_COLUMNS, "rule", "value"]


@dataclass
class RunSummary:
    """What a run did; the CLI turns it into the exit code and the closing summary."""

    out_dir: Path
    n_patients: int
    n_failed: int
    n_skipped_resumed: int
    outputs: dict[str, Path] = field(default_factory=dict)
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ERROR_COLUMNS))
    timings_s: dict[str, float] = field(default_factory=dict)
    failed_patients: list[str] = field(default_factory=list)

    @property
    def n_error_rows(self) -> int:
        return int((self.errors["severity"] == "error").sum()) if len(self.errors) else 0

    @property
    def exit_code(self) -> int:
        """0: every patient done and no output missing; 1: some patient failed or some output is missing."""
        return 1 if self.n_failed or self.n_error_rows else 0


def _patient_key(
    pid: str, tps: Sequence[Timepoint], config: PipelineConfig, versions: dict[str, str | None], flags: str
) -> str:
    files = [f for tp in tps if tp.ct is not None for f in tp.ct.files] + [
        m.path for tp in tps for m in tp.masks
    ]
    return resume_key(files_fingerprint(files), config.config_hash(), versions, extra=f"{pid}|{flags}")


def _read_clinical(archive: Any, study_dir: Path, clinical_path: Path | None) -> pd.DataFrame | None:
    from hpd_imaging.archive import read_clinical

    path = clinical_path or archive.clinical_path or (study_dir / "clinical.csv")
    if path is None or not Path(path).exists():
        if clinical_path is not None:
            raise ConfigError(f"--clinical {clinical_path}: expected a clinical.csv file, got none")
        return None
    return read_clinical(Path(path), known_patients=archive.patients)


def run_study(
    study_dir: Path,
    out_dir: Path,
    config: PipelineConfig | Path | None = None,
    *,
    config_dir: Path | None = None,
    clinical_path: Path | None = None,
    model_path: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    dicom_out: bool = False,
    pseudonymize: bool = False,
    pseudonym_key: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run every stage on every patient of ``study_dir`` and write the cohort outputs into ``out_dir``.

    ``config``: a PipelineConfig, a YAML path (its folder then resolves relative resources) or None (the
    bundled pipelines/default.yaml). Raises ConfigError for bad usage (missing study folder, ``out_dir``
    inside the archive, missing pseudonym key, unreadable model); patient-level problems never raise, they
    are rows of errors.csv (see :attr:`RunSummary.exit_code`).
    """
    if config is None or isinstance(config, Path | str):
        if config is not None and config_dir is None:
            config_dir = Path(config).resolve().parent
        config = load_config(Path(config) if config is not None else None)
    study_dir, out_dir = outdir.check_folders(study_dir, out_dir)
    key = resolve_key(pseudonym_key) if pseudonymize else None
    started = dt.datetime.now(dt.UTC)
    model = None
    if model_path is not None:  # load (and verify) the model before any work, so a bad file fails fast
        from hpd_imaging.model import load_model

        try:
            model = load_model(Path(model_path))
        except HpdImagingError as exc:
            raise ConfigError(f"--model {model_path}: {exc}", path=str(model_path)) from exc
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise atomic.environment_fault(exc, out_dir) from exc
    with outdir.claim_out_dir(out_dir, out_dir / WORK_DIR):
        # progress.json (issue 21): counts and ETA for the user, rewritten atomically as patients finish
        notify = ProgressTracker(out_dir / PROGRESS_FILE, progress)
        try:
            summary = _run_owned(
                study_dir,
                out_dir,
                config,
                config_dir=config_dir,
                clinical_path=clinical_path,
                model=model,
                model_path=model_path,
                workers=workers,
                scheduler=scheduler,
                force=force,
                dicom_out=dicom_out,
                pseudonymize=pseudonymize,
                key=key,
                notify=notify,
                started=started,
            )
        except BaseException as exc:
            notify.stop(f"{type(exc).__name__}: {exc}"[:300])
            raise
        notify.finish(summary.n_patients, summary.failed_patients, summary.exit_code)
        return summary


def _run_owned(
    study_dir: Path,
    out_dir: Path,
    config: PipelineConfig,
    *,
    config_dir: Path | None,
    clinical_path: Path | None,
    model: Any,
    model_path: Path | None,
    workers: int | None,
    scheduler: str | None,
    force: bool,
    dicom_out: bool,
    pseudonymize: bool,
    key: Any,
    notify: ProgressTracker,
    started: dt.datetime,
) -> RunSummary:
    """run_study's work once OUT is claimed (created, writable, locked)."""
    from hpd_imaging.archive import scan_archive

    timings: dict[str, float] = {}
    outdir.remove_stale_temporaries(out_dir)
    previous_manifest = outdir.previous_manifest(out_dir)  # what the last run wrote: stale unless rewritten

    notify("stage", "index")
    t = time.perf_counter()
    # the header cache stores source patient IDs: a pseudonymised run does not keep one under OUT
    use_cache = config.archive.use_cache and not pseudonymize
    archive = scan_archive(
        study_dir,
        cache_dir=out_dir / WORK_DIR if use_cache else None,
        settings=_index_settings(config, workers, scheduler),
    )
    issue_patients = {i.patient_id for i in archive.issues if i.patient_id}
    ids = PatientIds(set(archive.patients) | issue_patients, key)
    series = ids.table(archive.series_table())
    outputs: dict[str, Path] = {"series": atomic.write_csv(out_dir / "series.csv", series)}
    timings["index_s"] = time.perf_counter() - t
    clinical = _read_clinical(archive, study_dir, clinical_path)
    if clinical is not None:
        clinical = ids.table(clinical)

    # archive issues: notices, unless the patient has nothing left to process (then the patient failed)
    errors: list[dict[str, str]] = [
        error_row(
            ids.alias(i.patient_id) if i.patient_id else "",
            "archive",
            ids.scrub(str(i.path or "")),
            ids.scrub(i.message),
            severity="warning" if i.patient_id in archive.timepoints else "error",
        )
        for i in archive.issues
    ]
    lost = sorted(ids.alias(p) for p in issue_patients - set(archive.timepoints))
    # identity and clinical facts against the archive: rows, and masks of another patient refused
    timepoints, identity_rows = identity.refuse_foreign_masks(archive.timepoints)
    identity_rows += identity.patient_id_splits(archive.timepoints)
    for row in identity_rows:
        row.update(
            patient_id=ids.alias(row["patient_id"])
            if row["patient_id"] in archive.timepoints
            else row["patient_id"],
            file=ids.scrub(row["file"]),
            message=ids.scrub(row["message"]),
            value=ids.scrub(row["value"]),
        )
    errors.extend(identity_rows)
    errors.extend(identity.clinical_date_rows(clinical, timepoints, ids.alias))

    versions = package_versions()
    flags = f"dicom_out={dicom_out}|pseudonymized={pseudonymize}"
    plan: list[tuple[str, Path]] = []  # (output patient id, result dir) in a stable order
    jobs: list[PatientJob] = []
    resumed: list[str] = []
    baseline_dates: dict[str, dt.date] = {}
    baseline_masks: dict[str, set[str]] = {}
    for source_pid in archive.patients:
        pid = ids.alias(source_pid)
        tps = assign_roles(timepoints[source_pid], _ici_start(clinical, pid))
        if not tps:
            continue
        base_tp = next((t for t in tps if t.role.value == "baseline"), tps[0])
        baseline_dates[pid] = base_tp.scan_date
        baseline_masks[pid] = {str(m.path) for m in base_tp.masks}
        result_dir = (
            out_dir / WORK_DIR / "patients" / _safe(pid) / _patient_key(pid, tps, config, versions, flags)
        )
        plan.append((pid, result_dir))
        if (
            not force
            and (result_dir / "done.json").exists()
            and verified_resume(result_dir, _input_files(tps))
        ):
            resumed.append(pid)
            continue
        (result_dir / "done.json").unlink(missing_ok=True)
        # an earlier run's start time would make the driver's time limit count from then (a task that waits
        # for its worker's patient slot has not written its own yet)
        (result_dir / STARTED_FILE).unlink(missing_ok=True)
        scanned = file_records(_input_files(tps), content=False)
        atomic.write_json(
            result_dir / SCANNED_FILE, [[r.get("size"), r.get("mtime_ns")] for r in scanned.values()]
        )
        patient_attrs = dict(ids.patient_attributes(pid))
        jobs.append(
            PatientJob(
                pid,
                tps,
                config,
                result_dir,
                config_dir,
                source_patient_id=source_pid,
                dicom_out_dir=out_dir / "dicom" if dicom_out else None,
                dicom_patient_attributes=patient_attrs,
            )
        )
    notify("patients", str(len(plan)))
    for pid in resumed:
        notify("patient_resumed", pid)
    logger.info("%d patients: %d to process, %d already done (resumed)", len(plan), len(jobs), len(resumed))

    notify("stage", "patients")
    t = time.perf_counter()
    ran = execute(
        jobs,
        workers if workers is not None else config.run.workers,
        scheduler or config.run.scheduler,
        notify,
        time_limit_s=config.run.patient_time_limit_s,
        cluster_lost_after_s=config.run.cluster_lost_after_s,
        on_status=notify.patient_status,
        log_dir=out_dir / LOG_DIR,
    )
    if ran.worker_log is not None:
        outputs["worker_log"] = ran.worker_log
    timings["patients_s"] = time.perf_counter() - t

    # collect every patient's stored result (fresh or resumed) in a stable order
    frames: dict[str, list[pd.DataFrame]] = {
        "lesions": [],
        "tracking": [],
        "radiomics": [],
        "radiomics_diagnostics": [],
    }
    snapshots: list = []
    patient_timings: dict[str, dict[str, float]] = {}
    failed = set(lost)
    for pid, rd in plan:
        errors.extend(json.loads((rd / "errors.json").read_text()) if (rd / "errors.json").exists() else [])
        if not (rd / "done.json").exists():
            failed.add(pid)
            continue
        patient_timings[pid] = json.loads((rd / "done.json").read_text()).get("timings_s", {})
        for name in frames:
            if (rd / f"{name}.parquet").exists():
                frames[name].append(pd.read_parquet(rd / f"{name}.parquet"))
        snapshots.extend(load_snapshots(rd / "snapshots.npz"))

    # a baseline lesion without a usable measurement withholds its patient's labels (never "measured 0")
    faulty = {  # patients with a loader error or warning on a segmentation of their baseline exam
        row["patient_id"]
        for row in errors
        if row.get("stage") == "load_masks" and row.get("file") in baseline_masks.get(row["patient_id"], ())
    }
    unmeasured = identity.unmeasured_baseline_lesions(
        cohort.concat(frames["lesions"], None, ["patient_id"]), baseline_dates, faulty
    )
    errors.extend(unmeasured)
    withheld = {row["patient_id"] for row in unmeasured}
    failed |= withheld
    errors = [outdir.relative_paths(row, study_dir, out_dir) for row in errors]
    outputs.update(
        cohort.write_cohort(
            out_dir, frames, clinical, model, config, config_dir, errors, timings, notify, withheld=withheld
        )
    )
    for row in errors:
        row.setdefault("severity", "error")
    errors_df = (
        pd.DataFrame(errors, columns=ERRORS_CSV_COLUMNS, dtype=object)
        .fillna("")
        .sort_values(["patient_id", "stage", "file", "message"], kind="stable")
    )
    outputs["errors"] = atomic.write_csv(out_dir / "errors.csv", errors_df)

    notify("stage", "report")
    t = time.perf_counter()
    not_produced = outdir.not_produced(outputs, TABLES, clinical is not None, model is not None)
    outputs.update(
        cohort.write_report(
            out_dir,
            outputs,
            clinical,
            snapshots,
            config,
            versions,
            errors_df,
            not_produced,
            workers=workers or config.run.workers or default_workers(len(plan)),
        )
    )
    timings["report_s"] = time.perf_counter() - t
    if "report" not in outputs:
        not_produced["report.html"] = "the report needs kinetics.csv (see kinetics.csv above)"
    # the report's patient pages are files of this run too (manifest, kept from the stale sweep), but not
    # listed one by one among the outputs
    from hpd_imaging.report.html import patient_pages

    written = [*outputs.values(), *(patient_pages(out_dir) if "report" in outputs else [])]
    stale = outdir.remove_stale(out_dir, [*OWNED_FILES, *previous_manifest], written)

    n_patients = len(plan) + len(lost)
    run_info = runinfo.run_info(
        run={
            "study_dir": ids.scrub(str(study_dir)),
            "out_dir": str(out_dir),
            "started_utc": started.isoformat(),
            "model": str(model_path) if model_path else None,
            "dicom_out": dicom_out,
            "pseudonymized": pseudonymize,
            "pseudonym_key_fingerprint": ids.key_fingerprint(),
            "workers": workers if workers is not None else config.run.workers,
            "scheduler": scheduler or config.run.scheduler,
        },
        config=config,
        versions=versions,
        series=series,
        patients={
            "n": n_patients,
            "processed": sorted(j.patient_id for j in jobs),
            "resumed": sorted(resumed),
            "failed": sorted(failed),
        },
        timings=timings,
        patient_timings=patient_timings,
        execution=ran,
        out_dir=out_dir,
        outputs=outputs,
        written=written,
        not_produced=not_produced,
        stale=stale,
    )
    outputs["run"] = atomic.write_json(out_dir / "run.json", run_info)
    return RunSummary(
        out_dir, n_patients, len(failed), len(resumed), outputs, errors_df, timings, sorted(failed)
    )


def _index_settings(config: PipelineConfig, workers: int | None, scheduler: str | None) -> Any:
    """The archive settings of the index: headers read by as many processes as the run has workers on this
    machine (``archive.workers`` when set explicitly). A cold index of a real cohort is thousands of headers
    at ~1 ms each, serial work in the driver that bounds a large cluster; the records do not depend on the
    number of readers. With an external scheduler the driver's machine is not the workers': its cores."""
    if "workers" in config.archive.model_fields_set:
        return config.archive
    n = (workers if workers is not None else config.run.workers) if scheduler is None else None
    return config.archive.model_copy(update={"workers": max(1, n or default_workers(1 << 30))})


def _input_files(tps: Sequence[Timepoint]) -> list[Path]:
    return [f for tp in tps if tp.ct is not None for f in tp.ct.files] + [
        m.path for tp in tps for m in tp.masks
    ]


def _ici_start(clinical: pd.DataFrame | None, pid: str) -> dt.date | None:
    if clinical is None or "ici_start_date" not in clinical.columns:
        return None
    rows = clinical.loc[clinical["patient_id"].astype(str) == pid, "ici_start_date"]
    if rows.empty or pd.isna(rows.iloc[0]):
        return None
    value = rows.iloc[0]
    return value if isinstance(value, dt.date) else pd.Timestamp(value).date()


def _safe(pid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in pid) or "_"
