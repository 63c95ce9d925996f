"""Analytic ellipsoids rasterised at voxel centres, with their exact (sampled) RECIST truth.

Why "sampled" truth for RECIST: a radiologist (and our code) can only measure on the slice planes that were
acquired. The truth of the long axis of a rasterised ellipsoid is therefore the largest long axis among the
ellipsoid's exact sections by the planes through the voxel centres sampled, not the analytic long axis
of the continuous shape (with 5 mm slices the central section can be missed by up to 2.5 mm, which shortens
a 10 mm lesion's largest section by several percent). The short-axis truth is the section's minor axis on
that same plane (an ellipse's longest chord perpendicular to its major axis is its minor axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpd_imaging.domain import ImageGeometry, LesionMask, MaskSource


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from Euler angles in degrees (x, then y, then z)."""
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class EllipsoidCase:
    mask: LesionMask
    semi_axes_mm: tuple[float, float, float]
    volume_mm3: float  # analytic 4/3 pi abc
    sampled_volume_mm3: float  # sum over sampled planes of exact section area x slice spacing
    max_3d_diameter_mm: float  # analytic 2 max(a, b, c)
    recist_long_mm: float  # largest exact section major axis over the sampled planes
    recist_short_mm: float  # minor axis of that section
    recist_slice_index: int
    centre_lps: np.ndarray


def ellipsoid(
    semi_axes_mm: tuple[float, float, float],
    spacing_mm: tuple[float, float, float],
    *,
    angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    offset_vox: tuple[float, float, float] = (0.31, 0.17, 0.43),
    margin_vox: int = 3,
) -> EllipsoidCase:
    """Rasterise an ellipsoid (semi-axes in mm, rotated by ``angles_deg``) on a grid of ``spacing_mm``.

    ``offset_vox`` moves the centre off the voxel centres so that no symmetry flatters the result;
    ``direction`` (3x3, columns = i, j, k axes in LPS) makes an oblique grid.
    """
    a = np.asarray(semi_axes_mm, dtype=float)
    spacing = np.asarray(spacing_mm, dtype=float)
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    r_lps = rotation(*angles_deg)
    form_lps = r_lps @ np.diag(1.0 / a**2) @ r_lps.T  # (p - c)^T form (p - c) <= 1
    # in the grid's own mm frame q = D^T (p - origin) the form is D^T F D
    form = d.T @ form_lps @ d
    half_extent = np.sqrt(np.diag(np.linalg.inv(form)))  # bounding half-widths along the grid axes
    n = np.ceil(2 * half_extent / spacing).astype(int) + 2 * margin_vox + 1  # (i, j, k)
    centre_q = (n // 2 + np.asarray(offset_vox)) * spacing
    origin = np.array([-12.5, 40.25, -301.0])
    centre_lps = origin + d @ centre_q
    qi, qj, qk = (np.arange(n[0]) * spacing[0], np.arange(n[1]) * spacing[1], np.arange(n[2]) * spacing[2])
    qq = np.stack(np.meshgrid(qk, qj, qi, indexing="ij")[::-1], axis=-1) - centre_q  # [k, j, i, (x,y,z)]
    inside = np.einsum("...a,ab,...b->...", qq, form, qq) <= 1.0
    geometry = ImageGeometry(
        shape=(int(n[2]), int(n[1]), int(n[0])),
        spacing_mm=tuple(spacing),
        origin_mm=tuple(origin),
        direction=tuple(d.ravel()),
    )
    mask = LesionMask(mask=inside, geometry=geometry, label="ellipsoid", source=MaskSource.LABELMAP)

    # exact sections by the sampled planes q_z = z_k: in-plane form P = form[:2,:2], coupling b = form[:2,2]
    p_form, b_vec, c_zz = form[:2, :2], form[:2, 2], form[2, 2]
    schur = c_zz - b_vec @ np.linalg.solve(p_form, b_vec)
    eig = np.linalg.eigvalsh(p_form)  # ascending
    best = (0.0, 0.0, -1)
    sampled_volume = 0.0
    for k, z in enumerate(qk - centre_q[2]):
        rhs = 1.0 - z * z * schur
        if rhs <= 0:
            continue
        long_mm, short_mm = 2 * np.sqrt(rhs / eig[0]), 2 * np.sqrt(rhs / eig[1])
        sampled_volume += np.pi * rhs / np.sqrt(eig[0] * eig[1]) * spacing[2]
        if long_mm > best[0]:
            best = (long_mm, short_mm, k)
    return EllipsoidCase(
        mask=mask,
        semi_axes_mm=tuple(a),
        volume_mm3=4.0 / 3.0 * np.pi * np.prod(a),
        sampled_volume_mm3=float(sampled_volume),
        max_3d_diameter_mm=2.0 * float(a.max()),
        recist_long_mm=float(best[0]),
        recist_short_mm=float(best[1]),
        recist_slice_index=int(best[2]),
        centre_lps=centre_lps,
    )
