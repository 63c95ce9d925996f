"""Lesion measurement: RECIST axes, 3D diameter, volumes and shape (conventions: specs/measurement.md).

The public names are resolved lazily (PEP 562): importing this package must not pull in scikit-image and
scipy for every ``hpd-imaging --help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpd_imaging.measure.diameters import brute_force_max_diameter, max_diameter, perpendicular_width
    from hpd_imaging.measure.lesion import absent_measurement, measure_lesion
    from hpd_imaging.measure.table import LESIONS_COLUMNS, lesions_table
    from hpd_imaging.settings.measure import MeasureSettings

_EXPORTS = {
    "brute_force_max_diameter": "hpd_imaging.measure.diameters",
    "max_diameter": "hpd_imaging.measure.diameters",
    "perpendicular_width": "hpd_imaging.measure.diameters",
    "absent_measurement": "hpd_imaging.measure.lesion",
    "measure_lesion": "hpd_imaging.measure.lesion",
    "MeasureSettings": "hpd_imaging.settings.measure",
    "LESIONS_COLUMNS": "hpd_imaging.measure.table",
    "lesions_table": "hpd_imaging.measure.table",
}

__all__ = [
    "LESIONS_COLUMNS",
    "MeasureSettings",
    "absent_measurement",
    "brute_force_max_diameter",
    "lesions_table",
    "max_diameter",
    "measure_lesion",
    "perpendicular_width",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hpd_imaging.measure' has no attribute {name!r}")
