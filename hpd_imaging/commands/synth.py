"""``hpd-imaging synth OUT_DIR``: write a synthetic longitudinal CT archive with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach the ``synth`` command to the main app."""

    @app.command("synth")
    def synth(
        out_dir: Path = typer.Argument(  # noqa: B008 - Typer idiom
            ..., help="Output folder (must be empty or absent)."
        ),
        patients: int = typer.Option(3, "--patients", min=1, help="Number of patients."),
        seed: int = typer.Option(0, "--seed", min=0, help="Random seed; same seed + options = same files."),
        matrix: int = typer.Option(128, "--matrix", help="In-plane voxels (rows = columns)."),
        fov_mm: float = typer.Option(360.0, "--fov-mm", help="In-plane field of view (mm)."),
        slice_thickness_mm: float = typer.Option(
            5.0, "--slice-thickness-mm", help="Slice thickness = spacing."
        ),
        scan_length_mm: float = typer.Option(240.0, "--scan-length-mm", help="Cranio-caudal extent (mm)."),
        mask_format: str = typer.Option("seg", "--mask-format", help="seg | rtstruct | nifti"),
        followups: int = typer.Option(2, "--followups", help="On-treatment scans per patient."),
        followup_interval_days: int = typer.Option(
            56, "--followup-interval-days", help="Days between on-treatment scans after the first."
        ),
        phenotype_mix: str | None = typer.Option(
            None,
            "--phenotype-mix",
            help='Weights, e.g. "hyperprogressor=0.15,progressor=0.25,stable=0.25,responder=0.25,'
            'pseudoprogression=0.1".',
        ),
        phenotypes: str | None = typer.Option(
            None,
            "--phenotypes",
            help="Explicit comma-separated phenotype per patient (cycled); overrides the mix.",
        ),
        signal_strength: float = typer.Option(
            1.0, "--signal-strength", help="Strength of the planted imaging signal; 0 = none."
        ),
        tracking_ids: bool = typer.Option(
            True,
            "--tracking-ids/--no-tracking-ids",
            help="--no-tracking-ids omits tracking IDs/UIDs and shuffles labels.",
        ),
        shift_mm: float = typer.Option(
            5.0, "--shift-mm", help="Max patient shift per axis between exams (mm)."
        ),
        rotation_deg: float = typer.Option(1.5, "--rotation-deg", help="Max roll about the long axis (deg)."),
        noise_hu: float = typer.Option(12.0, "--noise-hu", help="Image noise sd (HU)."),
        compression: str = typer.Option("none", "--compression", help="none | rle | jpeg2000 (lossless)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Processes (same output for any value)."),
        survival_hr: float = typer.Option(
            3.0, "--survival-hr", help="True death hazard ratio of hyperprogressors vs the others."
        ),
        survival_median_months: float = typer.Option(
            12.0, "--survival-median-months", help="Median survival after the last scan of the others."
        ),
        log_level: str = typer.Option("INFO", "--log-level"),
    ) -> None:
        """Generate a synthetic longitudinal archive (DICOM CT + SEG/RTSTRUCT/NIfTI masks, clinical.csv,
        ground_truth.json)."""
        from pydantic import ValidationError

        from hpd_imaging.commands._common import EXIT_USAGE, configure_logging, usage_errors

        configure_logging(log_level)
        import logging

        logging.getLogger("highdicom").setLevel(logging.WARNING)  # per-file chatter of the SEG constructor
        from rich.progress import Progress

        from hpd_imaging.errors import ConfigError
        from hpd_imaging.settings.synth import parse_phenotype_mix
        from hpd_imaging.synth import SynthSettings, generate_archive

        with usage_errors():
            try:
                kwargs: dict = {}
                if phenotype_mix:
                    kwargs["phenotype_mix"] = parse_phenotype_mix(phenotype_mix)
                if phenotypes:
                    kwargs["phenotypes"] = [p.strip() for p in phenotypes.split(",") if p.strip()]
                settings = SynthSettings(
                    n_patients=patients,
                    seed=seed,
                    matrix=matrix,
                    fov_mm=fov_mm,
                    slice_thickness_mm=slice_thickness_mm,
                    scan_length_mm=scan_length_mm,
                    mask_format=mask_format,
                    n_followups=followups,
                    followup_interval_days=followup_interval_days,
                    signal_strength=signal_strength,
                    tracking_ids=tracking_ids,
                    shift_mm=shift_mm,
                    rotation_deg=rotation_deg,
                    noise_hu=noise_hu,
                    compression=compression,
                    workers=workers,
                    survival_hazard_ratio_hpd=survival_hr,
                    survival_median_months=survival_median_months,
                    **kwargs,
                )
            except (ValidationError, ValueError) as exc:
                typer.secho(f"error: invalid synth options: {exc}", err=True, fg=typer.colors.RED)
                raise typer.Exit(EXIT_USAGE) from exc
            if out_dir.exists() and not out_dir.is_dir():
                raise ConfigError(f"{out_dir}: expected a folder, got a file", path=str(out_dir))
            with Progress(transient=True) as bar:
                task = bar.add_task("synthesising patients", total=settings.n_patients)
                truth = generate_archive(
                    out_dir, settings, progress=lambda done, total: bar.update(task, completed=done)
                )
        n_hpd = sum(p["phenotype"] == "hyperprogressor" for p in truth["patients"])
        typer.echo(f"wrote {len(truth['patients'])} patient(s) ({n_hpd} hyperprogressor(s)) to {out_dir}")
