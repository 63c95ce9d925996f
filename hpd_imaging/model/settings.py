"""Settings of the HPD risk model (owned by the model stage)."""

from __future__ import annotations

from hpd_imaging.settings_base import Section


class ModelSettings(Section):
    definition: str = "champiat2017"
