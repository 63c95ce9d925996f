"""``hpd-imaging kinetics``: RECIST / iRECIST / immune criteria, growth kinetics and every HPD definition from a
measurement spreadsheet alone (no images). Heavy imports live inside the command so ``--help`` stays fast."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach ``kinetics`` to the main app."""

    @app.command("kinetics")
    def kinetics(
        measurements: Path = typer.Argument(..., help="MEASUREMENTS.csv: one row per lesion per scan (lesions.csv)."),
        clinical: Path = typer.Option(..., "--clinical", help="CLINICAL.csv: patient_id, ici_start_date, ..."),
        out: Path = typer.Option(..., "--out", help="KINETICS.csv to write (one row per patient)."),
        config: Path | None = typer.Option(
            None, "--config", help="HPD definitions YAML (default: pipelines/hpd_definitions.yaml)."
        ),
        response_out: Path | None = typer.Option(
            None, "--response-out", help="response.csv (default: next to KINETICS.csv)."
        ),
        concordance_out: Path | None = typer.Option(
            None, "--concordance-out", help="concordance.csv, written with > 1 patient (default: next to KINETICS.csv)."
        ),
        targets_out: Path | None = typer.Option(None, "--targets-out", help="targets.csv (default: next to it)."),
        growth_out: Path | None = typer.Option(None, "--growth-out", help="growth.csv (default: next to it)."),
        log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
        quiet: bool = typer.Option(False, "--quiet", help="Only warnings and errors."),
    ) -> None:
        """Compute RECIST 1.1/iRECIST/irRC/irRECIST/imRECIST per timepoint, TGR/TGK kinetics and all HPD labels."""
        from hpd_imaging.commands._common import configure_logging, usage_errors

        configure_logging(log_level, quiet=quiet)
        with usage_errors():
            from hpd_imaging.response import load_response_config, read_table, run_response, write_outputs

            cfg = load_response_config(config)
            result = run_response(
                read_table(measurements),
                read_table(clinical),
                cfg,
                measurements_source=str(measurements),
                clinical_source=str(clinical),
            )
            paths = write_outputs(
                result,
                out,
                response_path=response_out,
                concordance_path=concordance_out,
                targets_path=targets_out,
                growth_path=growth_out,
            )
        if not quiet:
            n_hpd = int((result.kinetics.get("hpd_champiat2017") == "hpd").sum()) if len(result.kinetics) else 0
            typer.echo(f"{len(result.kinetics)} patient(s); champiat2017 HPD: {n_hpd}")
            for name, path in paths.items():
                typer.echo(f"wrote {name}: {path}")
