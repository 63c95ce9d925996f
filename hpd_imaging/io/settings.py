"""Settings of the CT and mask loaders (owned by the io stage)."""

from __future__ import annotations

from typing import Literal

from hpd_imaging.settings_base import Section


class LoaderSettings(Section):
    # what to do with gaps, uneven spacing or gantry tilt: refuse (default) or resample onto a regular grid
    irregular_geometry: Literal["refuse", "resample"] = "refuse"
    # label maps whose grid differs from the CT: refuse (default) or resample nearest-neighbour
    labelmap_mismatch: Literal["refuse", "resample"] = "refuse"
