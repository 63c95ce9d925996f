"""The cohort part of a run, in the driver: from every patient's stored result to the cohort tables (lesions,
tracking, kinetics/response/outcome, radiomics and its patient aggregation, predictions) and the report.

Split out of :mod:`.study` (which keeps indexing, resume and the run's bookkeeping) to keep both readable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging import atomic
from hpd_imaging.errors import HpdImagingError
from hpd_imaging.pipeline.patient import error_row
from hpd_imaging.pipeline.progress import Progress
from hpd_imaging.settings import PipelineConfig, resolve_resource


def write_cohort(
    out_dir: Path,
    frames: dict,
    clinical: pd.DataFrame | None,
    model: Any,
    config: PipelineConfig,
    config_dir: Path | None,
    errors: list,
    timings: dict,
    notify: Progress,
    *,
    withheld: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, Path]:
    from hpd_imaging.measure import LESIONS_COLUMNS

    notify("stage", "kinetics")
    outputs: dict[str, Path] = {}
    lesions = concat(frames["lesions"], LESIONS_COLUMNS, ["patient_id", "scan_date", "lesion_id"])
    outputs["lesions_csv"] = atomic.write_csv(out_dir / "lesions.csv", lesions)
    outputs["lesions_parquet"] = atomic.write_parquet(out_dir / "lesions.parquet", lesions)
    tracking = concat(frames["tracking"], None, ["patient_id", "scan_date", "lesion_id"])
    outputs["tracking"] = atomic.write_csv(out_dir / "tracking.csv", tracking)

    t = time.perf_counter()
    kinetics = None
    lesion_roles = lesions  # lesions.csv + the RECIST role per lesion once the course roles are known
    if clinical is None:
        errors.append(
            error_row(
                "",
                "kinetics",
                "clinical.csv",
                "no clinical.csv (ici_start_date per patient): kinetics and HPD labels skipped",
                severity="warning",
            )
        )
    elif len(lesions):
        from hpd_imaging.response import load_response_config, response_tables, run_response

        cfg = load_response_config(resolve_resource(config.response.definitions_file, config_dir))
        try:
            # a withheld patient gets no kinetics row at all (its errors.csv rows say why): a row of
            # "not_evaluable: no baseline scan" would give a false reason for a missing label
            usable = lesions[~lesions["patient_id"].astype(str).isin(withheld)] if withheld else lesions
            usable_clinical = (
                clinical[~clinical["patient_id"].astype(str).isin(withheld)] if withheld else clinical
            )
            result = run_response(
                usable,
                usable_clinical,
                cfg,
                measurements_source="lesions.csv",
                clinical_source="clinical.csv",
            )
        except HpdImagingError as exc:
            errors.append(error_row("", "kinetics", "lesions.csv", exc))
        else:
            kinetics = result.kinetics
            roles = result.targets[["patient_id", "lesion_id", "role"]]
            lesion_roles = lesions.merge(roles, on=["patient_id", "lesion_id"], how="left")
            for name, table in response_tables(result).items():  # the one writer of `kinetics` too
                outputs[name] = atomic.write_csv(out_dir / f"{name}.csv", table)
            try:  # best response, lesion kinetics, survival by definition (outcome stage, issue 19)
                from hpd_imaging.outcome import run_outcome
                from hpd_imaging.report.outcome import write_outcome

                def bad_dates(pid: str, exc: HpdImagingError) -> None:
                    errors.append(error_row(pid, "outcome", "clinical.csv", exc))

                outcome = run_outcome(
                    kinetics, result.response, clinical, lesions, config.outcome, cfg, bad_dates
                )
                outputs.update(write_outcome(outcome, kinetics, out_dir))
            except HpdImagingError as exc:
                errors.append(error_row("", "outcome", "clinical.csv", exc))
    timings["kinetics_s"] = time.perf_counter() - t

    notify("stage", "radiomics")
    t = time.perf_counter()
    features = concat(frames["radiomics"], None, ["patient_id", "scan_date", "lesion_id", "region"])
    patient_features = None
    if len(features):
        from hpd_imaging.radiomics.aggregate import aggregate_patient

        outputs["radiomics"] = atomic.write_parquet(out_dir / "radiomics.parquet", features)
        diag = concat(
            frames["radiomics_diagnostics"], None, ["patient_id", "scan_date", "lesion_id", "region"]
        )
        outputs["radiomics_diagnostics"] = atomic.write_parquet(
            out_dir / "radiomics_diagnostics.parquet", diag
        )
        # one row per patient (and per extracted timepoint): lesions of the dates radiomics ran on
        # (radiomics.timepoints "baseline": the baseline exam only)
        if "scan_date" in features.columns:
            dates = set(_keys(features))
            patient_features = aggregate_patient(
                features, lesion_roles[[k in dates for k in _keys(lesion_roles)]]
            )
        else:
            patient_features = aggregate_patient(features, lesion_roles)
        outputs["radiomics_patient"] = atomic.write_parquet(
            out_dir / "radiomics_patient.parquet", patient_features
        )
    timings["aggregate_s"] = time.perf_counter() - t

    if model is not None:
        notify("stage", "model")
        t = time.perf_counter()
        from hpd_imaging.model import predict

        if patient_features is None:
            errors.append(
                error_row(
                    "",
                    "model",
                    "",
                    "a model was given but no radiomics features were computed; predictions skipped",
                )
            )
        else:
            try:
                preds = predict(model, patient_features, kinetics, clinical=clinical)
                outputs["predictions"] = atomic.write_csv(out_dir / "predictions.csv", preds)
            except HpdImagingError as exc:
                errors.append(error_row("", "model", "radiomics_patient.parquet", exc))
        timings["model_s"] = time.perf_counter() - t
    return outputs


def write_report(
    out_dir: Path,
    outputs: dict,
    clinical: pd.DataFrame | None,
    snapshots: list,
    config: PipelineConfig,
    versions: dict[str, str | None],
    errors: pd.DataFrame | None = None,
    not_produced: dict[str, str] | None = None,
    workers: int = 1,
) -> dict[str, Path]:
    """report.html and its patient pages (rendered by ``workers`` processes), from the written tables."""
    if "kinetics" not in outputs:
        return {}
    from hpd_imaging.report import write_report
    from hpd_imaging.report.inputs import ReportInputs

    def read(name: str) -> pd.DataFrame | None:
        return pd.read_csv(outputs[name], dtype={"patient_id": str}) if name in outputs else None

    concordance = read("concordance")
    kinetics_columns = pd.read_csv(outputs["kinetics"], nrows=0).columns
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
        provenance={"config_hash": config.config_hash(), **versions},
        primary_definition=config.model.definition
        if f"hpd_{config.model.definition}" in kinetics_columns
        else None,
    )
    return {
        "report": write_report(out_dir, inputs, issues=errors, not_produced=not_produced, workers=workers)
    }


def _keys(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(df["patient_id"].astype(str), df["scan_date"].astype(str), strict=True))


def concat(parts: list[pd.DataFrame], columns: Sequence[str] | None, sort: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(columns) if columns else None)
    df = pd.concat(parts, ignore_index=True)
    keys = [c for c in sort if c in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df
