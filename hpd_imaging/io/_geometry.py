"""Slice-stack geometry: sort by position, measure every gap, detect tilt, missing and duplicate slices.

Why hand-written: every established reader differs on these edge cases and several fail silently
(SimpleITK averages uneven spacing and models a gantry tilt as a rotation; specs/dicom_io_notes.md 1.2, 1.6).
The loader must own these rules and say exactly what it found. Rules (checklist item 3):

* slices are sorted by ImagePositionPatient projected on the slice normal (row cosine x column cosine),
  never by file name or InstanceNumber;
* all slices must share orientation, matrix and pixel spacing (mixed stacks are refused: they are
  several series or scouts, which the archive scan splits out);
* two slices at the same position are duplicates (refused: multi-phase or repeated acquisitions);
* a gap differing from the median by more than ``max(tol_mm, tol_rel * median)`` is uneven spacing;
  a gap close to an integer multiple of the median is reported as missing slices;
* a slice whose origin is shifted in-plane relative to the first slice means the IPP step is not parallel
  to the normal: gantry tilt (a sheared grid), reported with its angle. (0018,1120) is only a hint.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hpd_imaging.errors import GeometryError

log = logging.getLogger(__name__)

_ORIENTATION_TOL = 1e-4


@dataclass(frozen=True)
class PlaneHeader:
    """Geometry of one 2D image plane (one single-frame file, or one frame of an enhanced file)."""

    source: str  # file path, or "path [frame n]"
    position_mm: tuple[float, float, float]  # ImagePositionPatient (LPS)
    orientation: tuple[float, float, float, float, float, float]  # ImageOrientationPatient
    rows: int
    columns: int
    pixel_spacing_mm: tuple[float, float]  # DICOM order: (between rows, between columns)
    gantry_tilt_deg: float | None = None  # (0018,1120), a hint only


@dataclass
class StackGeometry:
    """Result of :func:`analyse_stack`: sorted order, measured gaps and what is irregular."""

    order: list[int]  # indices into the header list, sorted along the normal
    row_cosine: np.ndarray  # direction of increasing column index i
    column_cosine: np.ndarray  # direction of increasing row index j
    normal: np.ndarray  # row x column: direction of increasing k
    positions_mm: np.ndarray  # sorted IPP . normal
    inplane_offsets_mm: np.ndarray  # (n, 2) offsets of each IPP from the first along (row, column) cosines
    gaps_mm: np.ndarray  # consecutive differences of positions_mm
    pixel_spacing_mm: tuple[float, float]  # (i, j) = (between columns, between rows)
    rows: int
    columns: int
    tilt_deg: float = 0.0
    gantry_tilt_hint_deg: float | None = None
    problems: list[str] = field(default_factory=list)  # empty when the stack is a regular orthogonal grid
    slice_spacing_mm: float = 0.0  # regular spacing (median gap; or the fallback for a single slice)

    @property
    def is_regular(self) -> bool:
        return not self.problems

    @property
    def origin_mm(self) -> np.ndarray:
        """Position of the first voxel of the first sorted slice."""
        return self.first_position

    first_position: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def describe(self) -> str:
        return "; ".join(self.problems)


def _unit(v: np.ndarray, what: str, source: str) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-6:
        raise GeometryError(
            f"{source}: expected a non-zero {what} in ImageOrientationPatient, got {v.tolist()}"
        )
    return v / n


def analyse_stack(
    headers: Sequence[PlaneHeader],
    source: str,
    *,
    tol_mm: float = 0.01,
    tol_rel: float = 0.01,
    single_slice_spacing_mm: float = 1.0,
) -> StackGeometry:
    """Sort planes along their normal and measure the stack; raise on what no resampling can fix.

    Mixed orientation, mixed matrix or pixel spacing and duplicate positions raise :class:`GeometryError`
    at once. Irregular spacing, missing slices and gantry tilt are *listed* in ``problems``: the caller
    refuses or resamples according to its settings.
    """
    if not headers:
        raise GeometryError(f"{source}: expected at least one image slice, got none", path=source)
    first = headers[0]
    iop0 = np.asarray(first.orientation, dtype=float)
    for h in headers[1:]:
        if not np.allclose(h.orientation, iop0, atol=_ORIENTATION_TOL):
            raise GeometryError(
                f"{source}: mixed orientation: expected every slice to have ImageOrientationPatient "
                f"{_fmt(iop0)} (as {first.source}), got {_fmt(h.orientation)} in {h.source} "
                "(scouts or several series in one stack: split them first)",
                path=source,
            )
        if (h.rows, h.columns) != (first.rows, first.columns):
            raise GeometryError(
                f"{source}: mixed matrix: expected {first.rows}x{first.columns} (as {first.source}), "
                f"got {h.rows}x{h.columns} in {h.source}",
                path=source,
            )
        if not np.allclose(h.pixel_spacing_mm, first.pixel_spacing_mm, atol=1e-4):
            raise GeometryError(
                f"{source}: mixed pixel spacing: expected {_fmt(first.pixel_spacing_mm)} mm (as "
                f"{first.source}), "
                f"got {_fmt(h.pixel_spacing_mm)} mm in {h.source}",
                path=source,
            )
    row = _unit(iop0[:3], "row cosine", source)
    col = _unit(iop0[3:], "column cosine", source)
    if abs(float(row @ col)) > 1e-3:
        raise GeometryError(
            f"{source}: ImageOrientationPatient: expected orthogonal row and column cosines, got "
            f"{_fmt(iop0)}",
            path=source,
        )
    col = _unit(col - (col @ row) * row, "column cosine", source)  # remove rounding skew
    normal = np.cross(row, col)

    ipp = np.array([h.position_mm for h in headers], dtype=float)
    if not np.all(np.isfinite(ipp)):
        raise GeometryError(f"{source}: expected finite ImagePositionPatient values", path=source)
    proj = ipp @ normal
    order = [int(i) for i in np.argsort(proj, kind="stable")]
    positions = proj[order]
    sorted_ipp = ipp[order]
    gaps = np.diff(positions)
    pixel_ij = (float(first.pixel_spacing_mm[1]), float(first.pixel_spacing_mm[0]))

    for n, gap in enumerate(gaps):
        if gap < tol_mm:
            a, b = headers[order[n]].source, headers[order[n + 1]].source
            raise GeometryError(
                f"{source}: duplicate slice position: expected distinct positions along the slice "
                "normal, got "
                f"{positions[n]:.3f} mm twice ({a} and {b}; multi-phase or repeated acquisition: "
                "split it first)",
                path=source,
            )

    rel = sorted_ipp - sorted_ipp[0]
    offsets = np.stack([rel @ row, rel @ col], axis=1)
    stack = StackGeometry(
        order=order,
        row_cosine=row,
        column_cosine=col,
        normal=normal,
        positions_mm=positions,
        inplane_offsets_mm=offsets,
        gaps_mm=gaps,
        pixel_spacing_mm=pixel_ij,
        rows=first.rows,
        columns=first.columns,
        gantry_tilt_hint_deg=first.gantry_tilt_deg,
        first_position=sorted_ipp[0],
    )
    if len(headers) == 1:
        stack.slice_spacing_mm = single_slice_spacing_mm
        return stack

    median = float(np.median(gaps))
    stack.slice_spacing_mm = _without_float_noise(median)
    gap_tol = max(tol_mm, tol_rel * median)
    uneven = np.abs(gaps - median) > gap_tol
    if np.any(uneven):
        missing = []
        for n in np.flatnonzero(uneven):
            ratio = gaps[n] / median
            m = round(ratio)
            if m >= 2 and abs(gaps[n] - m * median) <= gap_tol * m:
                missing.append(
                    f"{m - 1} missing slice(s): gap {gaps[n]:.3f} mm between {positions[n]:.3f} and "
                    f"{positions[n + 1]:.3f} mm ({headers[order[n]].source} -> "
                    f"{headers[order[n + 1]].source}), "
                    f"{m}x the regular {median:.3f} mm"
                )
        if missing and len(missing) == int(np.count_nonzero(uneven)):
            stack.problems.extend(missing)
        else:
            worst = int(np.argmax(np.abs(gaps - median)))
            stack.problems.append(
                f"uneven slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm (median "
                f"{median:.3f} mm, "
                f"tolerance {gap_tol:.3f} mm); largest deviation: gap {gaps[worst]:.3f} mm between "
                f"{positions[worst]:.3f} and {positions[worst + 1]:.3f} mm "
                f"({headers[order[worst]].source} -> {headers[order[worst + 1]].source})"
            )

    # gantry tilt: in-plane offset of the slice origins grows along the normal (a shear, not a rotation)
    inplane_tol = max(tol_mm, tol_rel * min(pixel_ij))
    extent = float(positions[-1] - positions[0])
    max_offset = float(np.max(np.linalg.norm(offsets, axis=1)))
    if max_offset > inplane_tol:
        # least-squares slope of offset vs position along the normal gives the shear direction and angle
        z = positions - positions[0]
        slope = (offsets.T @ z) / float(z @ z)
        stack.tilt_deg = math.degrees(math.atan(float(np.linalg.norm(slope))))
        residual = float(np.max(np.linalg.norm(offsets - np.outer(z, slope), axis=1)))
        msg = (
            f"gantry tilt {stack.tilt_deg:.1f} deg (ImagePositionPatient step not parallel to the "
            "slice normal: "
            f"in-plane shift {max_offset:.2f} mm over {extent:.2f} mm"
        )
        if stack.gantry_tilt_hint_deg is not None:
            msg += f"; GantryDetectorTilt (0018,1120) says {stack.gantry_tilt_hint_deg:g} deg"
        if residual > inplane_tol:
            msg += f"; slices also shifted irregularly in-plane by up to {residual:.2f} mm"
        stack.problems.append(msg + ")")
    elif stack.gantry_tilt_hint_deg:
        log.info(
            "%s: GantryDetectorTilt (0018,1120) is %g deg but ImagePositionPatient shows no shear; "
            "treating the stack as orthogonal (the positions are authoritative)",
            source,
            stack.gantry_tilt_hint_deg,
        )
    return stack


def _without_float_noise(gap_mm: float) -> float:
    """The median gap without the float noise of subtracting positions (1.2, not 1.200000000000001).

    Why: positions are decimal strings (DS), so a regular gap is a short decimal, but the difference of two
    parsed positions carries ~1e-15 mm of binary rounding, which then differed from SimpleITK's spacing and
    from the SEG's SpacingBetweenSlices in the last bits. Only a change below 1e-9 mm is taken (rounding to
    1e-6 mm), so a genuinely long decimal gap stays as measured; the regularity checks use the raw gaps.
    """
    rounded = round(gap_mm, 6)
    return rounded if abs(rounded - gap_mm) <= 1e-9 else gap_mm


def regular_direction(stack: StackGeometry) -> tuple[float, ...]:
    """Row-major 3x3 direction (columns: i, j, k axes in LPS) of the stack's orthogonal grid."""
    m = np.stack([stack.row_cosine, stack.column_cosine, stack.normal], axis=1)
    return tuple(float(x) for x in m.ravel())


def _fmt(values: Sequence[float] | np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
