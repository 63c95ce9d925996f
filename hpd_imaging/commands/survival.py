"""``hpd-imaging survival``: landmark survival by every HPD definition column of a kinetics table.

Heavy imports (pandas, lifelines, matplotlib) live inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach ``survival`` to the main app."""

    @app.command("survival")
    def survival(
        kinetics: Annotated[
            Path,
            typer.Argument(help="KINETICS.csv: one row per patient, first_eval_date and hpd_<key> columns."),
        ],
        clinical: Annotated[
            Path,
            typer.Option(
                "--clinical",
                help="CLINICAL.csv: patient_id, ici_start_date, death_date, last_followup_date "
                "[, progression_date, age, ecog_baseline, ldh_above_uln, n_metastatic_sites].",
            ),
        ],
        out: Annotated[
            Path, typer.Option("--out", help="Folder for survival.csv, the ranking and KM plots.")
        ],
        measurements: Annotated[
            Path | None,
            typer.Option(
                "--measurements",
                help="MEASUREMENTS.csv: checks follow-up against the last scan; writes lesion_kinetics.csv.",
            ),
        ] = None,
        response: Annotated[
            Path | None,
            typer.Option("--response", help="response.csv (per scan): also write best_response.csv."),
        ] = None,
        confirm_response: Annotated[
            bool,
            typer.Option(
                "--confirm-response",
                help="RECIST 1.1 best response with CR/PR confirmation (non-randomised trial designs).",
            ),
        ] = False,
        log_level: Annotated[
            str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
        ] = "INFO",
        quiet: Annotated[bool, typer.Option("--quiet", help="Only warnings and errors.")] = False,
    ) -> None:
        """OS (and PFS) from the first evaluation by HPD label: KM medians, log-rank, Cox HR, C-index."""
        from hpd_imaging.commands._common import EXIT_USAGE, configure_logging, usage_errors

        configure_logging(log_level, quiet=quiet)
        with usage_errors():
            import pandas as pd

            from hpd_imaging.archive import read_clinical
            from hpd_imaging.errors import ClinicalDataError
            from hpd_imaging.outcome import RANKING_CAVEAT
            from hpd_imaging.outcome.stage import outcome_tables, run_survival
            from hpd_imaging.report.outcome import write_outcome_tables, write_survival
            from hpd_imaging.settings.outcome import OutcomeSettings

            if not kinetics.is_file():
                raise ClinicalDataError(f"{kinetics}: expected a kinetics CSV file, got nothing there")
            kin = pd.read_csv(kinetics, dtype=str, keep_default_na=False).replace("", None)
            if "patient_id" not in kin.columns or "first_eval_date" not in kin.columns:
                raise ClinicalDataError(
                    f"{kinetics.name}: expected columns patient_id and first_eval_date, "
                    f"got {list(kin.columns)}"
                )
            meas = None
            if measurements is not None:
                if not measurements.is_file():
                    raise ClinicalDataError(f"{measurements}: expected a measurement CSV, got nothing there")
                meas = pd.read_csv(measurements, dtype=str, keep_default_na=False).replace("", None)
            resp = None
            if response is not None:
                if not response.is_file():
                    raise ClinicalDataError(f"{response}: expected a response CSV, got nothing there")
                resp = pd.read_csv(response, dtype=str, keep_default_na=False).replace("", None)
            clin = read_clinical(clinical)
            if not {"death_date", "last_followup_date"} & set(clin.columns):
                raise ClinicalDataError(
                    f"{clinical.name}: expected death_date and/or last_followup_date columns for survival, "
                    f"got {list(clin.columns)}"
                )
            result = run_survival(kin, clin, meas, clinical_source=clinical.name)
            try:
                paths = write_survival(result, kin, out)
                if resp is not None or meas is not None:
                    settings = OutcomeSettings(confirmation_required=confirm_response)
                    paths.update(write_outcome_tables(outcome_tables(kin, resp, clin, meas, settings), out))
            except OSError as exc:
                typer.secho(f"error: cannot write to {out}: {exc.strerror}", err=True, fg=typer.colors.RED)
                raise typer.Exit(EXIT_USAGE) from exc
        if not quiet:
            excluded = result.os.n_excluded
            typer.echo(
                f"{len(kin)} patient(s); OS landmark analysis at the first evaluation"
                + (f", left out: {excluded}" if excluded else "")
            )
            for _, row in result.os.ranking.head(5).iterrows():
                hr = row["hr"]
                ci = (
                    f"HR {hr:.2f} ({row['hr_ci_low']:.2f}-{row['hr_ci_high']:.2f})"
                    if hr is not None
                    else "HR -"
                )
                chi2 = row["logrank_chi2"]
                typer.echo(
                    f"  {row['definition']}: {ci}, log-rank chi2 "
                    + (f"{chi2:.2f}" if chi2 is not None else "-")
                )
            typer.echo(RANKING_CAVEAT)
            typer.echo(f"wrote {len(paths)} file(s) to {out}")
