"""CLI command(s) for the model stage (being built; see the issue that owns it)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the main app (placeholder until the stage lands)."""
