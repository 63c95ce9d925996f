"""Settings of lesion tracking and measurement (owned by the tracking/measurement stage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpd_imaging.settings.base import Section


class MeasureSettings(Section):
    """How lesions are measured (hpd_imaging/measure/)."""

    # connectivity of the pieces of a fragmented lesion: 26 (faces, edges, corners) or 6 (faces only)
    fragment_connectivity: Literal[6, 26] = 26
    # pieces smaller than this do not count as RECIST fragments (their voxels still count in the volume)
    min_fragment_volume_mm3: float = Field(0.0, ge=0)
