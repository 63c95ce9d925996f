"""Resample an irregular (uneven, gapped or gantry-tilted) slice stack onto a regular orthogonal grid.

Reference behaviour: dcm2niix's ``_Tilt`` / ``_Eq`` outputs (specs/dicom_io_notes.md 1.3): slices resliced
perpendicular to the normal, equidistant at the *smallest* acquired gap, the slice count capped at
``max_slice_factor`` x the acquired count. Interpolation is linear in physical space:

* all acquired planes share the orientation, so every target plane is parallel to them; a target voxel at
  normal coordinate ``z`` lies between the two acquired planes that bracket ``z``;
* within each of those planes the voxel's in-plane index is the target index shifted by the plane's
  in-plane offset (the shear), interpolated bilinearly with ``scipy.ndimage.affine_transform``;
* the two in-plane results are blended linearly along the normal.

This is exactly trilinear interpolation on the sheared, unevenly spaced source lattice, without building a
full coordinate array. Voxels outside the acquired field of view get ``fill_value``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from hpd_imaging.domain import ImageGeometry
from hpd_imaging.io._geometry import StackGeometry, regular_direction


def target_grid(stack: StackGeometry, max_slice_factor: float) -> tuple[ImageGeometry, float]:
    """Regular orthogonal grid covering every acquired voxel; returns (geometry, slice spacing in mm)."""
    n_src = len(stack.positions_mm)
    extent = float(stack.positions_mm[-1] - stack.positions_mm[0])
    spacing_k = float(np.min(stack.gaps_mm)) if n_src > 1 else stack.slice_spacing_mm
    # never coarser than the smallest gap, and the last target plane lands on the last acquired plane
    n_k = int(math.ceil(extent / spacing_k - 1e-6)) + 1 if n_src > 1 else 1
    cap = max(int(math.floor(max_slice_factor * n_src)), n_src)
    n_k = min(n_k, cap)
    if n_k > 1:
        spacing_k = extent / (n_k - 1)
    sx, sy = stack.pixel_spacing_mm
    u = stack.inplane_offsets_mm[:, 0]
    v = stack.inplane_offsets_mm[:, 1]
    u0, u1 = float(u.min()), float(u.max()) + (stack.columns - 1) * sx
    v0, v1 = float(v.min()), float(v.max()) + (stack.rows - 1) * sy
    n_i = int(math.floor((u1 - u0) / sx + 1e-6)) + 1
    n_j = int(math.floor((v1 - v0) / sy + 1e-6)) + 1
    origin = stack.first_position + u0 * stack.row_cosine + v0 * stack.column_cosine
    geometry = ImageGeometry(
        shape=(n_k, n_j, n_i),
        spacing_mm=(sx, sy, spacing_k),
        origin_mm=tuple(float(x) for x in origin),
        direction=regular_direction(stack),
    )
    return geometry, spacing_k


def resample_stack(
    volume: np.ndarray, stack: StackGeometry, target: ImageGeometry, fill_value: float
) -> np.ndarray:
    """Resample ``volume`` ([k, j, i] in sorted stack order) onto ``target`` (float32)."""
    n_k, n_j, n_i = target.shape
    sx, sy, sz = target.spacing_mm
    # in-plane offset of the target origin relative to the first acquired slice, along (row, column) cosines
    rel = np.asarray(target.origin_mm) - stack.first_position
    tu, tv = float(rel @ stack.row_cosine), float(rel @ stack.column_cosine)
    z_src = stack.positions_mm - stack.positions_mm[0]
    out = np.empty(target.shape, dtype=np.float32)
    cache: dict[int, np.ndarray] = {}

    def in_target_plane(k: int) -> np.ndarray:
        # acquired slice k on the target in-plane lattice: target (j, i) -> source (j + dj, i + di)
        if k not in cache:
            if len(cache) > 2:
                cache.pop(min(cache))
            dj = (tv - stack.inplane_offsets_mm[k, 1]) / sy
            di = (tu - stack.inplane_offsets_mm[k, 0]) / sx
            cache[k] = ndimage.affine_transform(
                volume[k].astype(np.float32, copy=False),
                matrix=np.ones(2),
                offset=(dj, di),
                output_shape=(n_j, n_i),
                order=1,
                mode="constant",
                cval=fill_value,
            )
        return cache[k]

    for t in range(n_k):
        z = t * sz
        k = int(np.searchsorted(z_src, z, side="right") - 1)
        k = min(max(k, 0), len(z_src) - 1)
        if k == len(z_src) - 1 or abs(z - z_src[k]) < 1e-6:
            out[t] = in_target_plane(k)
            continue
        w = float((z - z_src[k]) / (z_src[k + 1] - z_src[k]))
        out[t] = (1.0 - w) * in_target_plane(k) + w * in_target_plane(k + 1)
    return out
