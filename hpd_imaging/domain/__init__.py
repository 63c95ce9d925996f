"""Core domain types shared by every stage.

Conventions (see ../shared/ARCHITECTURE.md):

* Arrays are indexed ``[k, j, i]`` = ``[slice, row, column]``, exactly as ``SimpleITK.GetArrayFromImage``
  returns them, so that conversion to and from SimpleITK never copies or transposes.
* Geometry vectors (spacing, origin, direction columns) are in ``(i, j, k)`` = ``(column, row, slice)``
  order and in the DICOM patient frame (LPS, millimetres), again as SimpleITK stores them.
* ``direction`` is the 3x3 matrix whose *columns* are the unit vectors of the i, j and k index axes in LPS;
  it is stored row-major as 9 floats (SimpleITK's ``GetDirection`` layout).
* Units live in field names (``_mm``, ``_mm3``, ``_days``); dates are ``datetime.date``.

Types check their invariants when built (valid by construction): a mask whose shape differs from its grid,
a non-positive spacing or a non-orthonormal direction raise :class:`~hpd_imaging.errors.GeometryError`
naming the rule and the value.

The package is split by what the types describe (enumerations, grids and references, images in memory, the
course); every name is imported from here, ``hpd_imaging.domain``.
"""

from __future__ import annotations

from hpd_imaging.domain._enums import HpdLabel, LesionRole, MaskSource, TimepointRole, coerce_enum
from hpd_imaging.domain.course import (
    ClinicalFacts,
    HpdAssessment,
    Lesion,
    LesionMeasurement,
    PatientCourse,
    TrackingMatch,
)
from hpd_imaging.domain.geometry import ImageGeometry, MaskRef, SeriesRef, Timepoint
from hpd_imaging.domain.images import CtImage, LesionMask, VoxelSource, tight_box

__all__ = [
    "TimepointRole",
    "LesionRole",
    "MaskSource",
    "HpdLabel",
    "coerce_enum",
    "ImageGeometry",
    "SeriesRef",
    "MaskRef",
    "Timepoint",
    "CtImage",
    "VoxelSource",
    "tight_box",
    "LesionMask",
    "Lesion",
    "LesionMeasurement",
    "TrackingMatch",
    "ClinicalFacts",
    "PatientCourse",
    "HpdAssessment",
]
