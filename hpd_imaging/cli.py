"""The ``hpd-imaging`` command line: one thin command per stage plus ``run``.

Only this module (and hpd_imaging/commands/) configures logging and shows progress. Heavy libraries are
imported inside the command functions so that ``hpd-imaging --help`` stays fast.

Exit codes: 0 all good, 1 some patients failed (listed in errors.csv), 2 bad usage, configuration or input.
"""

from __future__ import annotations

import typer

from hpd_imaging import __version__
from hpd_imaging.commands import kinetics, measure, model, radiomics, rulers, run, survival, synth

app = typer.Typer(
    name="hpd-imaging",
    help=(
        "Hyperprogressive disease imaging pipeline: DICOM archive -> tracked lesion measurements -> "
        "RECIST/iRECIST, growth kinetics and every published HPD definition -> radiomics -> risk model -> "
        "tables, HTML report and DICOM SR/SEG."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"hpd-imaging {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """hpd-imaging: hyperprogression analysis of CT archives."""


for _module in (run, synth, measure, kinetics, survival, radiomics, model, rulers):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
