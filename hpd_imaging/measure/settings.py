"""Settings of lesion tracking and measurement (owned by the tracking/measurement stage)."""

from __future__ import annotations

from hpd_imaging.settings_base import Section


class TrackingSettings(Section):
    max_match_distance_mm: float = 20.0


class MeasureSettings(Section):
    pass
