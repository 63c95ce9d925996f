"""``hpd-imaging kinetics``: RECIST / iRECIST / immune criteria, growth kinetics and every HPD definition
from a measurement spreadsheet alone (no images). Heavy imports live inside the command (fast --help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach ``kinetics`` to the main app."""

    @app.command("kinetics")
    def kinetics(
        measurements: Annotated[Path, typer.Argument(help="MEASUREMENTS.csv: one row per lesion per scan.")],
        clinical: Annotated[
            Path, typer.Option("--clinical", help="CLINICAL.csv: patient_id, ici_start_date...")
        ],
        out: Annotated[Path, typer.Option("--out", help="KINETICS.csv to write (one row per patient).")],
        config: Annotated[
            Path | None,
            typer.Option("--config", help="HPD definitions YAML (default: pipelines/hpd_definitions.yaml)."),
        ] = None,
        response_out: Annotated[
            Path | None, typer.Option("--response-out", help="response.csv (default: next to KINETICS.csv).")
        ] = None,
        concordance_out: Annotated[
            Path | None, typer.Option("--concordance-out", help="concordance.csv, written with > 1 patient.")
        ] = None,
        targets_out: Annotated[
            Path | None, typer.Option("--targets-out", help="targets.csv (target selection).")
        ] = None,
        growth_out: Annotated[
            Path | None, typer.Option("--growth-out", help="growth.csv (growth-model fits).")
        ] = None,
        log_level: Annotated[
            str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
        ] = "INFO",
        quiet: Annotated[bool, typer.Option("--quiet", help="Only warnings and errors.")] = False,
    ) -> None:
        """RECIST 1.1/iRECIST/irRC/irRECIST/imRECIST per timepoint, TGR/TGK kinetics and every HPD label."""
        from hpd_imaging.commands._common import configure_logging, usage_errors

        configure_logging(log_level, quiet=quiet)
        with usage_errors():
            from hpd_imaging.archive import read_clinical
            from hpd_imaging.response import load_response_config, read_table, run_response, write_outputs

            cfg = load_response_config(config)
            result = run_response(
                read_table(measurements),
                # the file is checked by the same reader as in `run` and `survival` (one set of rules and
                # messages naming line, column and value); the course adapter then only converts
                read_clinical(clinical),
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
            kin = result.kinetics
            n_hpd = int((kin["hpd_champiat2017"] == "hpd").sum()) if len(kin) else 0
            typer.echo(f"{len(result.kinetics)} patient(s); champiat2017 HPD: {n_hpd}")
            for name, path in paths.items():
                typer.echo(f"wrote {name}: {path}")
