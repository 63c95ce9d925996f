"""Settings of the response stage (owned by the response stage)."""

from __future__ import annotations

from pathlib import Path

from hpd_imaging.settings.base import Section


class ResponseSettings(Section):
    # thresholds, comparators and policies of every HPD definition (specs/hpd_kinetics.md section 7)
    definitions_file: Path = Path("pipelines/hpd_definitions.yaml")
