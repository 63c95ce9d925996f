"""Diameters of point sets: 3D Feret diameter via the convex hull, 2D long and short axes of an outline.

Why hull-based: the two points farthest apart in a finite set are both vertices of its convex hull, so the
maximum pairwise distance only needs the hull vertices (hundreds to a few thousand) instead of every surface
vertex (tens of thousands). ``brute_force_max_diameter`` is the O(n^2) reference used in the tests and the
benchmark to show that both give the same answer.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import ConvexHull, QhullError

logger = logging.getLogger(__name__)

# Rows per block when computing pairwise distances, so that memory stays ~ block x n x 8 bytes.
_BLOCK = 1024


def _farthest_pair(points: np.ndarray) -> tuple[float, int, int]:
    """Largest pairwise distance of ``points`` (n, d) by blocked exhaustive search: (distance, i, j)."""
    n = len(points)
    if n < 2:
        return 0.0, 0, 0
    best = -1.0
    best_ij = (0, 0)
    sq_norm = np.einsum("ij,ij->i", points, points)
    for start in range(0, n, _BLOCK):
        block = points[start : start + _BLOCK]
        # squared distances |a|^2 + |b|^2 - 2 a.b for the block against every point
        d2 = sq_norm[start : start + _BLOCK, None] + sq_norm[None, :] - 2.0 * (block @ points.T)
        flat = int(np.argmax(d2))
        r, c = divmod(flat, n)
        if d2[r, c] > best:
            best = float(d2[r, c])
            best_ij = (start + r, c)
    i, j = best_ij
    # recompute the winning distance directly (the expanded form loses a few ulps)
    return float(np.linalg.norm(points[i] - points[j])), i, j


def brute_force_max_diameter(points: np.ndarray) -> float:
    """O(n^2) maximum pairwise distance over *all* points (reference for tests and benchmarks)."""
    pts = np.asarray(points, dtype=float)
    return _farthest_pair(pts)[0]


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """Indices of the convex-hull vertices of ``points``; all points when the hull is degenerate.

    A flat or collinear set (a one-slice lesion in 3D, a one-row outline in 2D) has no full-dimensional hull;
    Qhull raises and we fall back to every point, which is then few enough for the exhaustive search.
    """
    pts = np.asarray(points, dtype=float)
    if len(pts) <= pts.shape[1] + 1:
        return np.arange(len(pts))
    try:
        return np.asarray(ConvexHull(pts).vertices)
    except QhullError:
        unique = np.unique(pts, axis=0)
        if len(unique) > 20000:  # a flat but huge set: drop the degenerate dimension via Qhull's joggle
            return np.asarray(ConvexHull(pts, qhull_options="QJ").vertices)
        return np.arange(len(pts))


def max_diameter(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Largest distance between two of ``points`` (n, d), computed on the convex hull vertices only.

    Returns (distance, point_a, point_b).
    """
    pts = np.asarray(points, dtype=float)
    if len(pts) == 0:
        return 0.0, np.zeros(pts.shape[1]), np.zeros(pts.shape[1])
    candidates = pts[hull_vertices(pts)]
    d, i, j = _farthest_pair(candidates)
    return d, candidates[i], candidates[j]


def perpendicular_width(
    edges_a: np.ndarray, edges_b: np.ndarray, axis_a: np.ndarray, axis_b: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Longest chord of a 2D outline perpendicular to the segment ``axis_a``-``axis_b``.

    ``edges_a[n]``-``edges_b[n]`` are the outline's edges (all closed contours of the slice, in mm). Along a
    line perpendicular to the long axis at abscissa ``u`` the chord runs from the lowest to the highest
    crossing of the outline, so its length is ``w(u) = v_max(u) - v_min(u)``. Between two consecutive vertex
    abscissae ``v_max`` is a maximum of linear functions (convex) and ``v_min`` a minimum (concave), so
    ``w`` is convex on each interval and its maximum lies at a vertex abscissa: evaluating it at every vertex
    abscissa is therefore exact, not a sampling. Hand-written because no library offers this RECIST rule.

    Returns (width, end_point_low, end_point_high) with the end points in the outline's 2D frame.
    """
    a = np.asarray(edges_a, dtype=float)
    b = np.asarray(edges_b, dtype=float)
    axis = np.asarray(axis_b, dtype=float) - np.asarray(axis_a, dtype=float)
    length = float(np.linalg.norm(axis))
    if length == 0.0 or len(a) == 0:
        p = np.asarray(axis_a, dtype=float)
        return 0.0, p, p
    e_u = axis / length
    e_v = np.array([-e_u[1], e_u[0]])
    origin = np.asarray(axis_a, dtype=float)
    ua, va = (a - origin) @ e_u, (a - origin) @ e_v
    ub, vb = (b - origin) @ e_u, (b - origin) @ e_v
    u_lo, u_hi = np.minimum(ua, ub), np.maximum(ua, ub)
    du = ub - ua
    candidates = np.unique(np.concatenate([ua, ub]))
    best_w, best_u, best_lo, best_hi = -1.0, 0.0, 0.0, 0.0
    for start in range(0, len(candidates), _BLOCK):
        c = candidates[start : start + _BLOCK, None]
        crosses = (u_lo[None, :] <= c) & (c <= u_hi[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(du[None, :] != 0.0, (c - ua[None, :]) / du[None, :], 0.0)
        v_at = va[None, :] + t * (vb - va)[None, :]
        # an edge parallel to the chord (du == 0) contributes both of its end points
        v_hi_edge = np.where(du[None, :] == 0.0, np.maximum(va, vb)[None, :], v_at)
        v_lo_edge = np.where(du[None, :] == 0.0, np.minimum(va, vb)[None, :], v_at)
        v_max = np.where(crosses, v_hi_edge, -np.inf).max(axis=1)
        v_min = np.where(crosses, v_lo_edge, np.inf).min(axis=1)
        w = np.where(np.isfinite(v_max) & np.isfinite(v_min), v_max - v_min, -1.0)
        k = int(np.argmax(w))
        if w[k] > best_w:
            best_w, best_u, best_lo, best_hi = float(w[k]), float(c[k, 0]), float(v_min[k]), float(v_max[k])
    lo = origin + best_u * e_u + best_lo * e_v
    hi = origin + best_u * e_u + best_hi * e_v
    return max(best_w, 0.0), lo, hi
