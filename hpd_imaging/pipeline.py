"""run_study(): every stage, for every patient of an archive, on Dask, resumably.

Wiring only: each stage is a plain function of its own module; this module decides what runs where, stores
per-patient results so that a rerun skips finished patients, isolates failures (one failing patient is rows in
errors.csv, never the end of the batch) and assembles the cohort tables and the report.

Per patient (on a worker; it receives paths, never pixel arrays)::

    load CTs + masks (io) -> track + measure (tracking/measure) -> baseline radiomics -> snapshots
    -> optional DICOM SEG + TID 1500 SR per timepoint

Per cohort (in the driver, from the per-patient results)::

    lesions.csv/.parquet -> kinetics, response, concordance (response) -> radiomics_patient (aggregation)
    -> predictions (model, when given) -> errors.csv, run.json, report.html

Resume: a patient's results live in ``OUT/.work/patients/<patient_id>/<key>/`` where ``key`` hashes the input
files (path, size, mtime), the config and the package versions; ``done.json`` is written last, atomically, so
a run killed at any moment leaves either a complete result or none. Every cohort file is written atomically too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.config import PipelineConfig, resolve_resource
from hpd_imaging.domain import Timepoint, TimepointRole
from hpd_imaging.errors import ConfigError, HpdImagingError
from hpd_imaging.provenance import files_fingerprint, package_versions, resume_key

logger = logging.getLogger(__name__)

ERROR_COLUMNS = ["patient_id", "stage", "file", "message"]
WORK_DIR = ".work"
Progress = Callable[[str, str], None]  # (event, patient_id): "patient_done" / "patient_failed" / "stage"


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

    @property
    def exit_code(self) -> int:
        return 1 if self.n_failed else 0


# --------------------------------------------------------------------------------------------------
# Timepoint roles
# --------------------------------------------------------------------------------------------------


def assign_roles(timepoints: Sequence[Timepoint], ici_start: dt.date | None) -> list[Timepoint]:
    """Baseline = last scan on or before ICI start; pre-baseline = the scans before; later = follow-up.

    Same rule as the response stage (specs/hpd_kinetics.md section 0). Without an ICI start date, roles stay
    UNASSIGNED and the first exam serves as the tracking reference.
    """
    tps = sorted(timepoints, key=lambda t: t.scan_date)
    if ici_start is None:
        return tps
    before = [t for t in tps if t.scan_date <= ici_start]
    baseline = before[-1].scan_date if before else None
    out = []
    for t in tps:
        if baseline is None:
            role = TimepointRole.FOLLOW_UP
        elif t.scan_date < baseline:
            role = TimepointRole.PRE_BASELINE
        elif t.scan_date == baseline:
            role = TimepointRole.BASELINE
        else:
            role = TimepointRole.FOLLOW_UP
        out.append(dataclasses.replace(t, role=role))
    return out


def _baseline(tps: Sequence[Timepoint]) -> Timepoint:
    for t in tps:
        if t.role is TimepointRole.BASELINE:
            return t
    return tps[0]


# --------------------------------------------------------------------------------------------------
# One patient (runs on a worker)
# --------------------------------------------------------------------------------------------------


@dataclass
class PatientJob:
    """Everything a worker needs for one patient: paths and settings, no pixels."""

    patient_id: str
    timepoints: list[Timepoint]
    config: PipelineConfig
    result_dir: Path  # OUT/.work/patients/<pid>/<key>
    config_dir: Path | None
    dicom_out_dir: Path | None = None
    snapshots: bool = True


def _error(patient_id: str, stage: str, path: str | None, exc: BaseException | str) -> dict[str, str]:
    message = str(exc) if not isinstance(exc, str) else exc
    if isinstance(exc, BaseException) and not isinstance(exc, HpdImagingError):
        # an unexpected exception is a bug or an unforeseen input: keep its type for the report
        message = f"{type(exc).__name__}: {exc}"
        logger.debug("patient %s stage %s:\n%s", patient_id, stage, traceback.format_exc())
    return {"patient_id": patient_id, "stage": stage, "file": path or "", "message": message}


def process_patient(job: PatientJob) -> dict[str, Any]:
    """Load, track, measure, extract radiomics and cut snapshots for one patient; store the results.

    Returns a small status dict (the tables are on disk under ``job.result_dir``), so that a remote Dask
worker     sends back kilobytes, not images. Raises nothing for patient-level problems: they become error rows.
    """
    from hpd_imaging.io import load_ct, load_masks
    from hpd_imaging.measure import lesions_table
    from hpd_imaging.tracking import ExamMasks, track_lesions, tracking_table

    pid = job.patient_id
    cfg = job.config
    errors: list[dict[str, str]] = []
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    exams: list[ExamMasks] = []
    for tp in job.timepoints:
        try:
            ct = load_ct(list(tp.ct.files), cfg.loader)
        except HpdImagingError as exc:
            errors.append(_error(pid, "load_ct", exc.path or str(tp.ct.files[0].parent), exc))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad series must not end the batch
            errors.append(_error(pid, "load_ct", str(tp.ct.files[0].parent), exc))
            continue
        masks = []
        for ref in tp.masks:
            try:
                table = {v: (lid, organ, node) for v, lid, organ, node in ref.label_table} or None
                masks.extend(load_masks(ref.path, ct, settings=cfg.loader, label_table=table))
            except Exception as exc:  # noqa: BLE001
                errors.append(_error(pid, "load_masks", str(ref.path), exc))
        if not tp.masks:
            errors.append(
                _error(
                    pid,
                    "load_masks",
                    str(tp.ct.files[0].parent),
                    f"exam {tp.scan_date}: expected a lesion segmentation paired with the CT, got none",
                )
            )
        exams.append(ExamMasks(tp.scan_date, ct, masks, tp))
    timings["load_s"] = time.perf_counter() - t0

    if len(exams) != len(job.timepoints) or any(e["stage"] == "load_masks" for e in errors):
        # a patient with an unreadable exam cannot be tracked or assessed faithfully
        return _finish(job, errors, timings, ok=False)

    t1 = time.perf_counter()
    try:
        course = track_lesions(pid, exams, cfg.tracking, measure_settings=cfg.measure)
    except Exception as exc:  # noqa: BLE001
        errors.append(_error(pid, "tracking", None, exc))
        return _finish(job, errors, timings, ok=False)
    lesions = lesions_table([course])
    tracking = tracking_table([course])
    timings["track_measure_s"] = time.perf_counter() - t1

    label_to_id = _label_to_lesion_id(course)
    base_tp = _baseline(job.timepoints)
    base_exam = next(e for e in exams if e.scan_date == base_tp.scan_date)

    t2 = time.perf_counter()
    features = diagnostics = None
    if cfg.radiomics.enabled:
        features, diagnostics, radiomics_errors = _radiomics(job, exams, base_exam, label_to_id)
        errors.extend(radiomics_errors)
    timings["radiomics_s"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    snapshots = _snapshots(job, exams, course, label_to_id, errors) if job.snapshots else []
    if job.dicom_out_dir is not None:
        _dicom_outputs(job, exams, course, label_to_id, errors)
    timings["outputs_s"] = time.perf_counter() - t3

    rd = job.result_dir
    atomic.write_parquet(rd / "lesions.parquet", lesions)
    atomic.write_parquet(rd / "tracking.parquet", tracking)
    if features is not None:
        atomic.write_parquet(rd / "radiomics.parquet", features)
        atomic.write_parquet(rd / "radiomics_diagnostics.parquet", diagnostics)
    _save_snapshots(rd / "snapshots.npz", snapshots)
    return _finish(job, errors, timings, ok=True)


def _label_to_lesion_id(course: Any) -> dict[tuple[dt.date, str], str]:
    """(scan date, mask label) -> lesion_id, from the tracker's evidence."""
    return {
        (m.scan_date, m.label): m.lesion_id for m in course.tracking if m.method != "disappeared" and m.label
    }


def _radiomics(job: PatientJob, exams: list, base_exam: Any, label_to_id: dict) -> tuple:
    from hpd_imaging.radiomics import extract_lesion_features, load_params

    cfg = job.config.radiomics
    params = load_params(resolve_resource(cfg.params_file, job.config_dir))
    chosen = exams if cfg.timepoints == "all" else [base_exam]
    feats, diags, errors = [], [], []
    for exam in chosen:
        masks = [m for m in exam.masks if (exam.scan_date, m.label) in label_to_id]
        if not masks:
            continue
        ids = [label_to_id[(exam.scan_date, m.label)] for m in masks]
        result = extract_lesion_features(
            exam.ct,
            masks,
            params,
            ring_widths_mm=cfg.ring_widths_mm,
            lesion_ids=ids,
            patient_id=job.patient_id,
            scan_date=exam.scan_date,
            body_threshold_hu=cfg.body_threshold_hu,
            workers=cfg.lesion_workers,
            fast_shape=cfg.fast_shape,
        )
        feats.append(result.features)
        diags.append(result.diagnostics)
        errors.extend(
            _error(job.patient_id, "radiomics", exam.ct.source, f"lesion {lid}: {msg}")
            for lid, msg in result.errors
        )
    features = pd.concat(feats, ignore_index=True) if feats else pd.DataFrame()
    diagnostics = pd.concat(diags, ignore_index=True) if diags else pd.DataFrame()
    return features, diagnostics, errors


def _snapshots(job: PatientJob, exams: list, course: Any, label_to_id: dict, errors: list) -> list:
    from hpd_imaging.report.inputs import make_snapshot

    out = []
    by_key = {(m.scan_date, m.lesion_id): m for m in course.measurements}
    for exam in exams:
        for mask in exam.masks:
            lid = label_to_id.get((exam.scan_date, mask.label))
            meas = by_key.get((exam.scan_date, lid))
            if lid is None or meas is None or meas.voxel_count == 0:
                continue
            try:
                out.append(
                    make_snapshot(
                        exam.ct, mask, dataclasses.replace(meas, lesion_id=lid), patient_id=job.patient_id
                    )
                )
            except Exception as exc:  # noqa: BLE001 - a missing picture must not lose the numbers
                errors.append(_error(job.patient_id, "snapshot", mask.source_path, exc))
    return out


def _dicom_outputs(job: PatientJob, exams: list, course: Any, label_to_id: dict, errors: list) -> None:
    from hpd_imaging.io.dicom_out import write_dicom_outputs

    assert job.dicom_out_dir is not None
    for exam in exams:
        meas = [m for m in course.measurements if m.scan_date == exam.scan_date and m.voxel_count > 0]
        masks = {
            label_to_id[(exam.scan_date, m.label)]: m
            for m in exam.masks
            if (exam.scan_date, m.label) in label_to_id
        }
        meas = [m for m in meas if m.lesion_id in masks]
        if not meas:
            continue
        folder = job.dicom_out_dir / job.patient_id / exam.scan_date.strftime("%Y%m%d")
        try:
            write_dicom_outputs(
                list(exam.timepoint.ct.files),
                exam.ct,
                masks,
                meas,
                list(course.lesions),
                folder,
                scan_date=exam.scan_date,
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(_error(job.patient_id, "dicom_out", str(folder), exc))


def _save_snapshots(path: Path, snapshots: list) -> None:
    """Snapshots as one npz (arrays) + JSON metadata: no pickle, so results stay safe to read back."""
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for n, s in enumerate(snapshots):
        arrays[f"hu{n}"] = s.hu
        arrays[f"mask{n}"] = s.mask
        meta.append(
            {
                "patient_id": s.patient_id,
                "lesion_id": s.lesion_id,
                "scan_date": s.scan_date.isoformat(),
                "pixel_spacing_mm": list(s.pixel_spacing_mm),
                "long_axis_xy": s.long_axis_xy,
                "short_axis_xy": s.short_axis_xy,
                "long_axis_mm": s.long_axis_mm,
                "short_axis_mm": s.short_axis_mm,
                "slice_index": s.slice_index,
            }
        )
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    atomic._atomic(path, write)


def load_snapshots(path: Path) -> list:
    from hpd_imaging.report.inputs import LesionSnapshot

    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        out = []
        for n, m in enumerate(meta):
            out.append(
                LesionSnapshot(
                    patient_id=m["patient_id"],
                    lesion_id=m["lesion_id"],
                    scan_date=dt.date.fromisoformat(m["scan_date"]),
                    hu=data[f"hu{n}"],
                    mask=data[f"mask{n}"],
                    pixel_spacing_mm=tuple(m["pixel_spacing_mm"]),
                    long_axis_xy=_pairs(m["long_axis_xy"]),
                    short_axis_xy=_pairs(m["short_axis_xy"]),
                    long_axis_mm=m["long_axis_mm"],
                    short_axis_mm=m["short_axis_mm"],
                    slice_index=m["slice_index"],
                )
            )
    return out


def _pairs(value: Any) -> Any:
    return None if value is None else tuple(tuple(float(v) for v in p) for p in value)


def _finish(
    job: PatientJob, errors: list[dict[str, str]], timings: dict[str, float], ok: bool
) -> dict[str, Any]:
    status = {"patient_id": job.patient_id, "ok": ok, "errors": errors, "timings_s": timings}
    atomic.write_json(job.result_dir / "errors.json", errors)
    if ok:
        atomic.write_json(job.result_dir / "done.json", {"patient_id": job.patient_id, "timings_s": timings})
    return status


# --------------------------------------------------------------------------------------------------
# The study (driver)
# --------------------------------------------------------------------------------------------------


def _patient_key(
    pid: str, tps: Sequence[Timepoint], config: PipelineConfig, versions: dict[str, str], flags: str
) -> str:
    files = [f for tp in tps for f in tp.ct.files] + [m.path for tp in tps for m in tp.masks]
    return resume_key(files_fingerprint(files), config.config_hash(), versions, extra=f"{pid}|{flags}")


def _read_clinical(archive: Any, study_dir: Path, clinical_path: Path | None) -> pd.DataFrame | None:
    from hpd_imaging.archive import read_clinical

    path = clinical_path or archive.clinical_path or (study_dir / "clinical.csv")
    if path is None or not Path(path).exists():
        return None
    return read_clinical(Path(path), known_patients=archive.patients)


def run_study(
    study_dir: Path,
    out_dir: Path,
    config: PipelineConfig,
    *,
    config_dir: Path | None = None,
    clinical_path: Path | None = None,
    model_path: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    dicom_out: bool = False,
    progress: Progress | None = None,
) -> RunSummary:
    """Run every stage on every patient of ``study_dir`` and write the cohort outputs into ``out_dir``."""
    from hpd_imaging.archive import scan_archive

    study_dir, out_dir = Path(study_dir).resolve(), Path(out_dir).resolve()
    if not study_dir.is_dir():
        raise ConfigError(
            f"study folder not found: expected a directory, got {study_dir}", path=str(study_dir)
        )
    if out_dir == study_dir or study_dir in out_dir.parents:
        raise ConfigError(
            f"--out {out_dir}: expected a folder outside the input archive {study_dir} "
            "(the archive is never written to)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    notify = progress or (lambda event, pid: None)
    timings: dict[str, float] = {}
    started = dt.datetime.now(dt.UTC)
    model = None
    if model_path is not None:  # load (and verify) the model before any work, so a bad file fails fast
        from hpd_imaging.model import load_model

        model = load_model(Path(model_path))

    t = time.perf_counter()
    archive = scan_archive(
        study_dir, cache_dir=out_dir / WORK_DIR if config.archive.use_cache else None, settings=config.archive
    )
    series = archive.series_table()
    atomic.write_csv(out_dir / "series.csv", series)
    timings["index_s"] = time.perf_counter() - t
    clinical = _read_clinical(archive, study_dir, clinical_path)
    errors: list[dict[str, str]] = [
        {
            "patient_id": i.patient_id or "",
            "stage": "archive",
            "file": str(i.path or ""),
            "message": i.message,
        }
        for i in archive.issues
    ]

    versions = package_versions()
    flags = f"dicom_out={dicom_out}"
    jobs: list[PatientJob] = []
    resumed = 0
    for pid in archive.patients:
        ici = _ici_start(clinical, pid)
        tps = assign_roles(archive.timepoints[pid], ici)
        if not tps:
            continue
        key = _patient_key(pid, tps, config, versions, flags)
        result_dir = out_dir / WORK_DIR / "patients" / _safe(pid) / key
        if not force and (result_dir / "done.json").exists():
            resumed += 1
            notify("patient_resumed", pid)
            continue
        jobs.append(
            PatientJob(
                pid,
                tps,
                config,
                result_dir,
                config_dir,
                dicom_out_dir=out_dir / "dicom" if dicom_out else None,
            )
        )
    logger.info(
        "%d patients: %d to process, %d already done (resumed)", len(archive.patients), len(jobs), resumed
    )

    t = time.perf_counter()
    statuses = _execute(
        jobs,
        workers if workers is not None else config.run.workers,
        scheduler or config.run.scheduler,
        notify,
    )
    timings["patients_s"] = time.perf_counter() - t
    failed = {s["patient_id"] for s in statuses if not s["ok"]}

    # collect every patient's stored result (fresh or resumed) in a stable order
    frames: dict[str, list[pd.DataFrame]] = {
        "lesions": [],
        "tracking": [],
        "radiomics": [],
        "radiomics_diagnostics": [],
    }
    snapshots: list = []
    patient_timings: dict[str, dict[str, float]] = {}
    for pid in archive.patients:
        tps = assign_roles(archive.timepoints[pid], _ici_start(clinical, pid))
        if not tps:
            continue
        rd = out_dir / WORK_DIR / "patients" / _safe(pid) / _patient_key(pid, tps, config, versions, flags)
        errors.extend(json.loads((rd / "errors.json").read_text()) if (rd / "errors.json").exists() else [])
        if not (rd / "done.json").exists():
            failed.add(pid)
            continue
        patient_timings[pid] = json.loads((rd / "done.json").read_text()).get("timings_s", {})
        for name in frames:
            if (rd / f"{name}.parquet").exists():
                frames[name].append(pd.read_parquet(rd / f"{name}.parquet"))
        snapshots.extend(load_snapshots(rd / "snapshots.npz"))

    outputs = _write_cohort(out_dir, frames, clinical, model, config, config_dir, errors, timings)
    errors_df = pd.DataFrame(errors, columns=ERROR_COLUMNS).sort_values(
        ["patient_id", "stage", "file"], kind="stable"
    )
    outputs["errors"] = atomic.write_csv(out_dir / "errors.csv", errors_df)

    t = time.perf_counter()
    outputs.update(_write_report(out_dir, outputs, clinical, snapshots, config))
    timings["report_s"] = time.perf_counter() - t

    run_info = {
        "hpd_imaging_run": {
            "study_dir": str(study_dir),
            "out_dir": str(out_dir),
            "started_utc": started.isoformat(),
            "model": str(model_path) if model_path else None,
            "dicom_out": dicom_out,
        },
        "versions": versions,
        "config": config.model_dump(mode="json"),
        "config_hash": config.config_hash(),
        "input_series": series.to_dict(orient="records"),
        "patients": {"n": len(archive.patients), "failed": sorted(failed), "resumed": resumed},
        "timings_s": {"stages": timings, "per_patient": patient_timings},
        "outputs": {k: str(v.relative_to(out_dir)) for k, v in sorted(outputs.items())},
    }
    outputs["run"] = atomic.write_json(out_dir / "run.json", run_info)
    return RunSummary(out_dir, len(archive.patients), len(failed), resumed, outputs, errors_df, timings)


def _write_cohort(
    out_dir: Path,
    frames: dict,
    clinical: pd.DataFrame | None,
    model: Any,
    config: PipelineConfig,
    config_dir: Path | None,
    errors: list,
    timings: dict,
) -> dict[str, Path]:
    from hpd_imaging.measure import LESIONS_COLUMNS

    outputs: dict[str, Path] = {}
    lesions = _concat(frames["lesions"], LESIONS_COLUMNS, ["patient_id", "scan_date", "lesion_id"])
    outputs["lesions_csv"] = atomic.write_csv(out_dir / "lesions.csv", lesions)
    outputs["lesions_parquet"] = atomic.write_parquet(out_dir / "lesions.parquet", lesions)
    tracking = _concat(frames["tracking"], None, ["patient_id", "scan_date", "lesion_id"])
    outputs["tracking"] = atomic.write_csv(out_dir / "tracking.csv", tracking)

    t = time.perf_counter()
    kinetics = None
    if clinical is None:
        errors.append(
            {
                "patient_id": "",
                "stage": "kinetics",
                "file": "clinical.csv",
                "message": "no clinical.csv (ici_start_date per patient): kinetics and HPD labels skipped",
            }
        )
    elif len(lesions):
        from hpd_imaging.response import concordance_table, load_response_config, run_response

        cfg = load_response_config(resolve_resource(config.response.definitions_file, config_dir))
        result = run_response(
            lesions, clinical, cfg, measurements_source="lesions.csv", clinical_source="clinical.csv"
        )
        kinetics = result.kinetics
        for name in ("kinetics", "response", "targets", "growth"):
            outputs[name] = atomic.write_csv(out_dir / f"{name}.csv", _clean(getattr(result, name)))
        outputs["concordance"] = atomic.write_csv(
            out_dir / "concordance.csv", _clean(concordance_table(result.kinetics))
        )
    timings["kinetics_s"] = time.perf_counter() - t

    t = time.perf_counter()
    features = _concat(frames["radiomics"], None, ["patient_id", "lesion_id", "region"])
    patient_features = None
    if len(features):
        from hpd_imaging.radiomics_ext.aggregate import aggregate_patient

        outputs["radiomics"] = atomic.write_parquet(out_dir / "radiomics.parquet", features)
        diag = _concat(frames["radiomics_diagnostics"], None, ["patient_id", "lesion_id", "region"])
        outputs["radiomics_diagnostics"] = atomic.write_parquet(
            out_dir / "radiomics_diagnostics.parquet", diag
        )
        patient_features = aggregate_patient(features, lesions)
        outputs["radiomics_patient"] = atomic.write_parquet(
            out_dir / "radiomics_patient.parquet", patient_features
        )
    timings["aggregate_s"] = time.perf_counter() - t

    if model is not None:
        from hpd_imaging.model import predict

        if patient_features is None:
            errors.append(
                {
                    "patient_id": "",
                    "stage": "model",
                    "file": "",
                    "message": "a model was given but no radiomics features were computed; "
                    "predictions skipped",
                }
            )
        else:
            try:
                preds = predict(model, patient_features, kinetics, clinical=clinical)
                outputs["predictions"] = atomic.write_csv(out_dir / "predictions.csv", preds)
            except HpdImagingError as exc:
                errors.append({"patient_id": "", "stage": "model", "file": "", "message": str(exc)})
    return outputs


def _write_report(
    out_dir: Path, outputs: dict, clinical: pd.DataFrame | None, snapshots: list, config: PipelineConfig
) -> dict[str, Path]:
    if "kinetics" not in outputs:
        return {}
    from hpd_imaging.report import write_report
    from hpd_imaging.report.inputs import ReportInputs

    def read(name: str) -> pd.DataFrame | None:
        return pd.read_csv(outputs[name], dtype={"patient_id": str}) if name in outputs else None

    concordance = read("concordance")
    inputs = ReportInputs(
        lesions=read("lesions_csv"),
        kinetics=read("kinetics"),
        response=read("response"),
        concordance=concordance
        if concordance is not None
        else pd.DataFrame(columns=["definition_a", "definition_b", "jaccard"]),
        predictions=read("predictions"),
        clinical=clinical,
        snapshots=snapshots,
        provenance={"config_hash": config.config_hash(), **package_versions()},
        primary_definition=f"{config.model.definition}"
        if f"hpd_{config.model.definition}" in pd.read_csv(outputs["kinetics"], nrows=0).columns
        else None,
    )
    return {"report": write_report(out_dir, inputs)}


def _execute(
    jobs: list[PatientJob], workers: int | None, scheduler: str | None, notify: Progress
) -> list[dict]:
    """Run patient jobs in-process (one job or one worker) or on Dask (LocalCluster or a given scheduler)."""
    if not jobs:
        return []
    n_workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    if scheduler is None and (n_workers == 1 or len(jobs) == 1):
        statuses = []
        for job in jobs:
            statuses.append(_safe_process(job))
            notify("patient_done" if statuses[-1]["ok"] else "patient_failed", job.patient_id)
        return statuses

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        # one thread per worker process: the stages are CPU-bound numpy/ITK code, and processes keep
        # pyradiomics/SimpleITK state apart; memory is one patient's images per worker at a time
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.WARNING,
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {
            client.submit(
                _safe_process, job, key=f"patient-{job.patient_id}-{job.result_dir.name}", pure=False
            ): job
            for job in jobs
        }
        statuses = []
        for future in as_completed(futures):
            job = futures[future]
            try:
                status = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died (e.g. out of memory)
                status = {
                    "patient_id": job.patient_id,
                    "ok": False,
                    "errors": [_error(job.patient_id, "worker", None, exc)],
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


def _safe_process(job: PatientJob) -> dict[str, Any]:
    """process_patient with a last-resort guard: an unexpected exception is that patient's error row."""
    try:
        return process_patient(job)
    except Exception as exc:  # noqa: BLE001
        return _finish(job, [_error(job.patient_id, "pipeline", None, exc)], {}, ok=False)


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


def _concat(parts: list[pd.DataFrame], columns: Sequence[str] | None, sort: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(columns) if columns else None)
    df = pd.concat(parts, ignore_index=True)
    keys = [c for c in sort if c in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    """No inf or NaN in a CSV cell: undefined values are empty cells (specs/hpd_kinetics.md section A)."""
    return df.replace([np.inf, -np.inf], np.nan)
