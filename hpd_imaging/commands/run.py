"""``hpd-imaging run STUDY_DIR --out OUT``: the whole pipeline on an archive, with progress and a summary."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from hpd_imaging.commands._common import configure_logging, usage_errors


def run(
    study_dir: Annotated[
        Path,
        typer.Argument(
            help="Imaging archive: any folder layout of DICOM CT, SEG, "
            "RTSTRUCT, NIfTI/NRRD label maps and clinical.csv."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (created; never inside the archive).")
    ],
    config: Annotated[
        Path | None, typer.Option(help="Pipeline settings YAML (default: pipelines/default.yaml).")
    ] = None,
    clinical: Annotated[
        Path | None, typer.Option(help="clinical.csv (default: STUDY_DIR/clinical.csv).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="HPD risk model (.skops with its card) -> predictions.csv.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Worker processes for the patients (Dask) and the report pages (default: cores)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute patients already finished.")] = False,
    dicom_out: Annotated[
        bool, typer.Option("--dicom-out", help="Write DICOM SEG + TID 1500 SR per timepoint.")
    ] = False,
    pseudonymize: Annotated[
        bool,
        typer.Option(
            "--pseudonymize",
            help="Replace patient IDs by keyed hashes (HMAC-SHA256) in every table, the report and the "
            "DICOM outputs.",
        ),
    ] = False,
    pseudonym_key: Annotated[
        str | None,
        typer.Option(
            help="Secret key of --pseudonymize (at least 16 characters; default: $HPD_PSEUDONYM_KEY). "
            "The same key gives the same pseudonyms across runs.",
            envvar="HPD_PSEUDONYM_KEY",
            show_envvar=True,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; warnings and errors only.")
    ] = False,
    log_file: Annotated[Path | None, typer.Option(help="Also write the log to this file.")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run every stage on every patient: series.csv, lesions, kinetics + HPD labels, radiomics, predictions,
    errors.csv, run.json and report.html in OUT. Exit code 0: all patients done; 1: some failed (listed in
    errors.csv); 2: bad usage or configuration."""
    import time

    # pyradiomics (and our module around it) set the "radiomics" logger's level on import, and so does Dask
    # (its config sets "distributed" to INFO on first import: every scheduler/nanny lifecycle message of a
    # cluster run would reach the console): import both first, so that configure_logging has the last word
    import distributed  # noqa: F401

    import hpd_imaging.radiomics.extract  # noqa: F401

    configure_logging(log_level, log_file, quiet)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hpd_imaging.pipeline import run_study
    from hpd_imaging.settings import load_config

    console = Console(stderr=True, quiet=quiet)
    started = time.perf_counter()
    with usage_errors():
        cfg = load_config(config)

    stages = ["index", "patients", "kinetics", "radiomics", *(["model"] if model else []), "report"]
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        disable=quiet,
        transient=False,
    ) as bar:
        stage_task = bar.add_task("stages", total=len(stages), counts="")
        patient_task = bar.add_task("patients", total=None, counts="")

        def progress(event: str, detail: str) -> None:
            if event == "stage":
                done = stages.index(detail) if detail in stages else 0
                bar.update(stage_task, completed=done, description=f"stage: {detail}")
            elif event == "progress":  # counts and ETA, as written to OUT/progress.json
                bar.update(patient_task, counts=_counts_text(json.loads(detail)))
            elif event == "patients":
                bar.update(patient_task, total=int(detail))
            elif event == "patient_start":
                bar.update(patient_task, description=f"patients (last started {detail})")
            elif event in {"patient_done", "patient_failed", "patient_resumed"}:
                bar.advance(patient_task)
                if event == "patient_failed":
                    console.print(f"[red]patient {detail} failed[/red] (see errors.csv)")

        with usage_errors():
            summary = run_study(
                study_dir,
                out,
                cfg,
                config_dir=config.parent if config else None,
                clinical_path=clinical,
                model_path=model,
                workers=workers,
                scheduler=scheduler,
                force=force,
                dicom_out=dicom_out,
                pseudonymize=pseudonymize,
                pseudonym_key=pseudonym_key,
                progress=progress,
            )
        bar.update(stage_task, completed=len(stages), description="stages: done")
        bar.update(patient_task, description="patients")

    n_warn = int((summary.errors["severity"] == "warning").sum()) if len(summary.errors) else 0
    console.print(
        f"{summary.n_patients} patients: {summary.n_patients - summary.n_failed} done "
        f"({summary.n_skipped_resumed} resumed), {summary.n_failed} failed; {summary.n_error_rows} error and "
        f"{n_warn} warning rows in errors.csv; {time.perf_counter() - started:.1f} s; "
        f"outputs in {summary.out_dir}"
    )
    if summary.failed_patients:
        console.print(
            f"[red]failed patients:[/red] {', '.join(summary.failed_patients)} (details in errors.csv)"
        )
    raise typer.Exit(summary.exit_code)


def _counts_text(snap: dict) -> str:
    """The console's patient counts from a progress.json snapshot, e.g.
    "done 12 · failed 1 · left 87 · ETA 0:41:10 (21.3 s/patient, 4 at once)"."""
    p = snap.get("patients", {})
    if p.get("total") is None:
        return ""
    text = f"done {p['done']} · failed {p['failed']} · left {p['remaining']}"
    eta = snap.get("eta_s")
    if eta is not None and p.get("remaining"):
        text += f" · ETA {dt.timedelta(seconds=round(eta))}"
        if snap.get("seconds_per_patient") is not None:
            text += f" ({snap['seconds_per_patient']:.1f} s/patient, {snap['workers']} at once)"
    return text


def register(app: typer.Typer) -> None:
    app.command("run")(run)
