"""Per-lesion measurement uncertainty: one standard deviation for each RECIST size (issue 17).

Why here: the error of a size is a property of how it was measured (the mask's grid, the reader, the
scanner), so the model sits next to the measurement (ARCHITECTURE.md: "measure/ ... measurement
uncertainty"); the response stage only propagates it (response/stability.py). Model and sources:
docs/label_stability.md.

Discretisation error of a mask on its grid (the part the images tell us):

* **Caliper diameters** (long axis, short axis). Each end point of an in-plane chord lies somewhere within
  the boundary pixel: a uniform error over one pixel width ``p`` (SD ``p/sqrt(12)``); two independent end
  points give ``p/sqrt(6)``. The axial long axis is measured on a slice, which may miss the lesion's widest
  level by up to half a slice ``t/2``: for a locally spherical lesion of radius ``r`` the chord deficit is
  ``z^2/r`` with ``z ~ U(0, t/2)``, SD ``(2/sqrt(45)) (t/2)^2 / r``. Both are added in quadrature.
* **Voxel-count volume**. Each surface voxel is partly inside the true surface; counting it whole or not at
  all errs by a fraction roughly uniform and independent from voxel to voxel: SD ``v sqrt(n_surface / 12)``
  with ``v`` the voxel volume. On top of that, at the two end caps along each axis a whole slab of voxels
  enters or leaves together (dominant for thick slices): SD ``~ 0.33 r h^2`` per axis of spacing ``h``, ``r``
  the equivalent-sphere radius (see :func:`volume_sd_from_surface`). When the mask itself is not at hand (a
  table with a pixel spacing), ``n_surface`` is estimated from the sphere of the same volume.

Repeat-scan / inter-observer variability (what the images cannot tell us) is a coefficient of variation
from test-retest CT studies (settings/hpd.py StabilitySettings, with citations); it is the default when a
measurement carries no SD of its own, and can be added to the grid SD (``add_repeatability``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hpd_imaging.domain import LesionMeasurement
from hpd_imaging.settings.hpd import StabilitySettings

GRID = "grid"  # discretisation of the mask on its CT grid
TABLE = "table"  # SD columns of the measurement table
LITERATURE = "literature"  # repeat-scan coefficients of variation (no SD given)


def diameter_sd_from_grid(
    in_plane_spacing_mm: float, slice_thickness_mm: float = 0.0, diameter_mm: float | None = None
) -> float:
    """SD (mm) of a caliper diameter measured on a pixel grid: end-point quantisation plus slice sampling."""
    if in_plane_spacing_mm <= 0 or slice_thickness_mm < 0:
        raise ValueError(
            f"expected a pixel spacing > 0 and a slice thickness >= 0, got {in_plane_spacing_mm!r} and "
            f"{slice_thickness_mm!r}"
        )
    var = in_plane_spacing_mm**2 / 6.0
    if diameter_mm is not None and diameter_mm > 0 and slice_thickness_mm > 0:
        radius = diameter_mm / 2.0
        half = min(slice_thickness_mm / 2.0, radius)
        var += (2.0 / math.sqrt(45.0) * half**2 / radius) ** 2
    return math.sqrt(var)


# SD of the end-cap error per axis, in units of r * h^2 (see volume_sd_from_surface): per cap, the area slope
# 2 pi r times h^2 times the SD of the periodic midpoint-rule error B2(phi)/2 = (phi^2 - phi + 1/6)/2 for a
# uniform offset phi, sqrt(1/180)/2; two caps, independent when the lesion length is not a whole number of
# slices: x sqrt(2) -> 0.331. (When it is, they add coherently and the error is up to sqrt(2) larger.)
CAP_COEFFICIENT = 2.0 * math.pi * math.sqrt(1.0 / 180.0) / 2.0 * math.sqrt(2.0)


def volume_sd_from_surface(
    n_surface_voxels: float,
    voxel_volume_mm3: float,
    spacing_mm: tuple[float, float, float] | None = None,
    radius_mm: float | None = None,
) -> float:
    """SD (mm3) of a voxel-count volume with ``n_surface_voxels`` partly covered boundary voxels.

    Two parts in quadrature: the boundary voxels' independent partial coverage ``v sqrt(n/12)``, and, per
    axis of spacing ``h``, the coherent error at the lesion's two end caps, where a whole slab of voxels
    enters or leaves the mask together: a midpoint-rule error of a cross-section whose area rises linearly
    (slope ``2 pi r``) from the cap, ``~ c r h^2``. The second part dominates on thick slices (5 mm),
    where the first alone underestimates the error about fourfold."""
    if n_surface_voxels < 0 or voxel_volume_mm3 <= 0:
        raise ValueError(
            f"expected n_surface_voxels >= 0 and a voxel volume > 0, got {n_surface_voxels!r} and "
            f"{voxel_volume_mm3!r}"
        )
    var = voxel_volume_mm3**2 * n_surface_voxels / 12.0
    if spacing_mm is not None and radius_mm:
        var += sum((CAP_COEFFICIENT * radius_mm * h * h) ** 2 for h in spacing_mm)
    return math.sqrt(var)


def surface_voxel_count(mask: np.ndarray) -> int:
    """Voxels of a binary mask with at least one face neighbour outside it (6-connectivity)."""
    inside = np.asarray(mask, dtype=bool)
    if not inside.any():
        return 0
    padded = np.pad(inside, 1)
    eroded = ndimage.binary_erosion(padded, structure=ndimage.generate_binary_structure(3, 1))
    return int(np.count_nonzero(padded & ~eroded))


def estimated_surface_voxels(volume_mm3: float, spacing_mm: tuple[float, float, float]) -> float:
    """Surface voxels of the sphere of this volume on a grid (a shell one mean voxel extent thick)."""
    if volume_mm3 <= 0:
        return 0.0
    sx, sy, sz = spacing_mm
    radius = (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    area = 4.0 * math.pi * radius**2
    return area * ((sx + sy + sz) / 3.0) / (sx * sy * sz)


@dataclass(frozen=True)
class GridUncertainty:
    longest_axial_diameter_sd_mm: float
    short_axis_sd_mm: float
    volume_sd_mm3: float


def grid_uncertainty(
    spacing_mm: tuple[float, float, float],
    *,
    longest_axial_diameter_mm: float | None,
    short_axis_mm: float | None,
    volume_mm3: float | None,
    n_surface_voxels: float | None = None,
) -> GridUncertainty:
    """The discretisation SDs of one lesion measured on a grid of ``spacing_mm`` (x, y, z = slice)."""
    sx, sy, sz = (float(v) for v in spacing_mm)
    if min(sx, sy, sz) <= 0:
        raise ValueError(f"expected a voxel spacing > 0 on every axis, got {spacing_mm!r}")
    pixel = max(sx, sy)
    if n_surface_voxels is None:
        n_surface_voxels = estimated_surface_voxels(volume_mm3 or 0.0, (sx, sy, sz))

    def caliper(d: float | None) -> float:
        return 0.0 if not d else diameter_sd_from_grid(pixel, sz, d)

    return GridUncertainty(
        longest_axial_diameter_sd_mm=caliper(longest_axial_diameter_mm),
        short_axis_sd_mm=caliper(short_axis_mm),
        volume_sd_mm3=0.0
        if not volume_mm3
        else volume_sd_from_surface(
            n_surface_voxels, sx * sy * sz, (sx, sy, sz), (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
        ),
    )


@dataclass(frozen=True)
class ResolvedSd:
    """The SDs the response stage uses for one measurement and where they came from."""

    longest_axial_diameter_sd_mm: float
    short_axis_sd_mm: float
    volume_sd_mm3: float
    source: str


def _cv(value: float | None, cv_pct: float) -> float:
    return 0.0 if value is None else value * cv_pct / 100.0


def resolve_sds(m: LesionMeasurement, settings: StabilitySettings) -> ResolvedSd:
    """SDs of one measurement: its own (grid or table) where present, else the literature CVs; a size of 0
    (a disappeared lesion) has SD 0, since a disappearance is a categorical call, not a caliper reading."""
    own = (m.longest_axial_diameter_sd_mm, m.short_axis_sd_mm, m.volume_sd_mm3)
    values = (m.longest_axial_diameter_mm, m.short_axis_mm, m.volume_mm3)
    cvs = (settings.diameter_repeat_cv_pct, settings.diameter_repeat_cv_pct, settings.volume_repeat_cv_pct)
    out = []
    used_own = used_literature = False
    for sd, value, cv in zip(own, values, cvs, strict=True):
        if not value:
            out.append(0.0)
            continue
        if sd is None:
            out.append(_cv(value, cv))
            used_literature = True
        else:
            extra = _cv(value, cv) if settings.add_repeatability else 0.0
            out.append(math.hypot(sd, extra))
            used_own = True
            used_literature = used_literature or settings.add_repeatability
    if used_own:
        source = m.uncertainty_source or TABLE
        if used_literature:
            source += "+literature"
    else:
        source = LITERATURE
    return ResolvedSd(out[0], out[1], out[2], source)
