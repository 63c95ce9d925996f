"""Settings of the radiomics stage (owned by the radiomics stage). Kept apart from radiomics.py so that
reading a config never imports pyradiomics."""

from __future__ import annotations

from pathlib import Path

from hpd_imaging.settings_base import Section


class RadiomicsSettings(Section):
    enabled: bool = True
    params_file: Path = Path("pipelines/radiomics_ct.yaml")
