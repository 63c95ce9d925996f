"""Helpers shared by the CLI commands: logging set-up, exit codes, error reporting.

This is the only place (with hpd_imaging/cli.py) where logging is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2


def configure_logging(level: str = "INFO", log_file: Path | None = None, quiet: bool = False) -> None:
    """Configure the root logger: rich console output (unless quiet) plus an optional log file."""
    from rich.console import Console
    from rich.logging import RichHandler

    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise typer.BadParameter(f"expected one of DEBUG, INFO, WARNING, ERROR, got {level!r}")
    # stderr, so that machine-readable stdout (``measure --json``) is never mixed with log lines;
    # --quiet keeps warnings and errors on the console while the --log-file still gets the asked level
    console = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
    console.setLevel(max(numeric, logging.WARNING) if quiet else numeric)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(fh)
    logging.basicConfig(level=numeric, handlers=handlers, force=True, format="%(message)s")
    # pyradiomics configures its own logger at import; keep it quiet unless asked
    # (its per-lesion notices such as "GLCM is symmetrical" would flood the console of a cohort run)
    # Dask's scheduler/nanny lifecycle messages are INFO noise for a user of `run`
    logging.getLogger("distributed").setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
    logging.getLogger("radiomics").setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.ERROR)


@contextmanager
def usage_errors() -> Iterator[None]:
    """Turn our input/config errors and environment faults (OSError: full disk, read-only or unwritable
    folder) into a clear one-line message and exit code 2, never a traceback."""
    from hpd_imaging.errors import HpdImagingError, shorten

    try:
        yield
    except HpdImagingError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_USAGE) from exc
    except OSError as exc:  # the machine (disk, permissions) rather than the input: one sentence, exit 2
        where = f" {exc.filename}" if exc.filename else ""
        typer.secho(
            shorten(
                f"error: {type(exc).__name__}{where}: {exc.strerror or exc}; check that the path exists, is "
                "writable and that the disk has space, then rerun (finished patients resume)"
            ),
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(EXIT_USAGE) from exc
