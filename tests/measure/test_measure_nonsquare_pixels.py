"""RECIST long and short axes on grids whose pixels are not square (column spacing != row spacing).

Truth is analytic. The lesions are prisms (the same 2D section on 3 slices) of a rotated ellipse or rotated
rectangle, rasterised at pixel centres in the grid's mm frame (x = column * spacing_i, y = row * spacing_j):
* ellipse with semi-axes (a, b): long axis 2a, short axis 2b (its longest chord perpendicular to the major
  axis is the minor axis);
* rectangle L x W (L >= W): the longest chord is the diagonal d = sqrt(L^2 + W^2); a chord perpendicular to
  the diagonal between the two long sides has the constant length W * d / L (parallel lines cut by one
  direction), and it is the longest such chord, so the short axis is W * d / L.
Tolerance: max(1 mm, 3 %) of the truth, the one documented in test_measure_accuracy.py.

The swap test transposes each slice and swaps the two in-plane spacings: the physical shape is then mirrored
across x = y, so LD and SA are unchanged and every end point has its x and y swapped. A mutation that reads
spacing_mm[0] where spacing_mm[1] is meant (or scales rows by the column spacing) stretches the shape by 2 on
one of the two grids and fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpd_imaging.domain import ImageGeometry, LesionMask, MaskSource
from hpd_imaging.measure import measure_lesion

N_SLICES = 3
SLICE_MM = 2.0
CENTRE_XY = np.array([20.3, 19.7])  # mm in the grid frame, off the pixel centres


def _tol(truth: float) -> float:
    return max(1.0, 0.03 * truth)


def _grid(s_i: float, s_j: float, extent_mm: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    n_i, n_j = int(round(extent_mm / s_i)), int(round(extent_mm / s_j))
    x = np.arange(n_i) * s_i
    y = np.arange(n_j) * s_j
    yy, xx = np.meshgrid(y, x, indexing="ij")  # [row, column]
    return xx, yy


def _local(xx: np.ndarray, yy: np.ndarray, theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) the shape's long axis, rotated by theta from +x."""
    t = np.radians(theta_deg)
    dx, dy = xx - CENTRE_XY[0], yy - CENTRE_XY[1]
    return dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)


def _ellipse(s_i: float, s_j: float, a: float, b: float, theta_deg: float) -> np.ndarray:
    u, v = _local(*_grid(s_i, s_j), theta_deg)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _rectangle(s_i: float, s_j: float, length: float, width: float, theta_deg: float) -> np.ndarray:
    u, v = _local(*_grid(s_i, s_j), theta_deg)
    return (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2)


def _mask(section: np.ndarray, s_i: float, s_j: float) -> LesionMask:
    volume = np.zeros((N_SLICES + 2, *section.shape), dtype=bool)
    volume[1 : 1 + N_SLICES] = section
    geometry = ImageGeometry(shape=volume.shape, spacing_mm=(s_i, s_j, SLICE_MM), origin_mm=(0.0, 0.0, 0.0))
    return LesionMask(mask=volume, geometry=geometry, label="prism", source=MaskSource.LABELMAP)


SHAPES = [  # (kind, p, q, theta): ellipse semi-axes (p, q) or rectangle sides (p, q)
    ("ellipse", 15.0, 6.0, 30.0),
    ("ellipse", 15.0, 6.0, 0.0),
    ("ellipse", 12.0, 7.0, 100.0),
    ("rectangle", 30.0, 12.0, 25.0),
    ("rectangle", 24.0, 10.0, 120.0),
]


def _truth(kind: str, p: float, q: float) -> tuple[float, float]:
    if kind == "ellipse":
        return 2 * p, 2 * q
    diagonal = float(np.hypot(p, q))
    return diagonal, q * diagonal / p


def _section(kind: str, p: float, q: float, theta: float, s_i: float, s_j: float) -> np.ndarray:
    return _ellipse(s_i, s_j, p, q, theta) if kind == "ellipse" else _rectangle(s_i, s_j, p, q, theta)


@pytest.mark.parametrize("spacing", [(0.5, 1.0), (1.0, 0.5)], ids=["col0.5-row1.0", "col1.0-row0.5"])
@pytest.mark.parametrize(("kind", "p", "q", "theta"), SHAPES)
def test_long_and_short_axis_on_non_square_pixels(
    kind: str, p: float, q: float, theta: float, spacing: tuple[float, float]
) -> None:
    s_i, s_j = spacing
    long_mm, short_mm = _truth(kind, p, q)
    m = measure_lesion(_mask(_section(kind, p, q, theta, s_i, s_j), s_i, s_j))
    assert abs(m.longest_axial_diameter_mm - long_mm) <= _tol(long_mm), (m.longest_axial_diameter_mm, long_mm)
    assert abs(m.short_axis_mm - short_mm) <= _tol(short_mm), (m.short_axis_mm, short_mm)
    # the end points lie in the patient frame: their distance is the reported axis, and the long axis of an
    # ellipse points along theta (the direction is defined modulo 180 degrees)
    a, b = (np.asarray(e) for e in m.long_axis_endpoints_mm)
    c, d = (np.asarray(e) for e in m.short_axis_endpoints_mm)
    assert np.linalg.norm(b - a) == pytest.approx(m.longest_axial_diameter_mm, abs=1e-6)
    assert np.linalg.norm(d - c) == pytest.approx(m.short_axis_mm, abs=1e-6)
    # the two axes are perpendicular
    assert abs(float((b - a) @ (d - c))) <= 1e-6 * m.longest_axial_diameter_mm * m.short_axis_mm
    if kind == "ellipse":
        direction = (b - a)[:2] / np.linalg.norm((b - a)[:2])
        t = np.radians(theta)
        assert abs(float(direction @ np.array([np.cos(t), np.sin(t)]))) == pytest.approx(1.0, abs=0.01)
        midpoint = (a + b)[:2] / 2
        assert np.allclose(midpoint, CENTRE_XY, atol=max(s_i, s_j))


@pytest.mark.parametrize(("kind", "p", "q", "theta"), SHAPES)
def test_swapping_row_and_column_spacing_gives_the_transposed_answer(
    kind: str, p: float, q: float, theta: float
) -> None:
    s_i, s_j = 0.5, 1.0
    section = _section(kind, p, q, theta, s_i, s_j)
    m = measure_lesion(_mask(section, s_i, s_j))
    # transposed slices on the swapped grid: the same shape mirrored across x = y
    t = measure_lesion(_mask(np.ascontiguousarray(section.T), s_j, s_i))
    assert t.longest_axial_diameter_mm == pytest.approx(m.longest_axial_diameter_mm, abs=1e-9)
    assert t.short_axis_mm == pytest.approx(m.short_axis_mm, abs=1e-9)
    assert t.long_axis_slice_index == m.long_axis_slice_index
    # and the wrong reading (the swapped spacing applied to the untransposed slices) is a different shape:
    # the test can tell the two apart
    wrong = measure_lesion(_mask(section, s_j, s_i))
    long_mm, _ = _truth(kind, p, q)
    assert abs(wrong.longest_axial_diameter_mm - long_mm) > 3 * _tol(long_mm)
    swap = [1, 0, 2]
    if theta % 90 == 0:  # an axis-aligned shape has mirror-image tied chords; which one wins is arbitrary
        return
    m_long = sorted(tuple(round(v, 9) for v in np.asarray(e)[swap]) for e in m.long_axis_endpoints_mm)
    t_long = sorted(tuple(round(v, 9) for v in e) for e in t.long_axis_endpoints_mm)
    np.testing.assert_allclose(t_long, m_long, atol=1e-9)
