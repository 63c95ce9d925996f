"""``hpd-imaging rulers SR_FOLDER --out MEASUREMENTS.csv``: radiologists' ruler SRs -> the kinetics input.

A cohort measured on rulers (OHIF, 3D Slicer: DICOM SR TID 1500 with Long axis / Short axis / Length) has
no masks; this command turns every ruler SR under a folder into the one-row-per-lesion-per-scan table that
``hpd-imaging kinetics`` reads (io/rulers.py). An SR that cannot be used is a warning line; exit code 1
when any SR failed, 0 otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach ``rulers`` to the main app."""

    @app.command("rulers")
    def rulers(
        folder: Annotated[Path, typer.Argument(exists=True, help="Folder with DICOM SR ruler reports.")],
        out: Annotated[Path, typer.Option("--out", help="MEASUREMENTS.csv to write (kinetics input).")],
    ) -> None:
        """Read TID 1500 ruler measurements (long/short axis, length) into a kinetics measurement table."""
        from hpd_imaging.commands._common import configure_logging, usage_errors

        configure_logging("WARNING", quiet=True)
        with usage_errors():
            from hpd_imaging.io.rulers import read_ruler_folder

            table, problems = read_ruler_folder(folder)
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out, index=False)
        for path, message in problems:
            typer.secho(f"warning: {path}: {message}", err=True, fg=typer.colors.YELLOW)
        n_patients = table["patient_id"].nunique()
        typer.echo(f"{len(table)} ruler measurement(s) of {n_patients} patient(s) -> {out}")
        if problems:
            raise typer.Exit(1)
