"""Regions of interest around a lesion: the body mask and peritumoral rings (physical distances in mm).

Peritumoral rings follow Vaidya et al., J Immunother Cancer 2020;8:e001343, where texture in a 5-10 mm band
around the tumour was the most predictive of hyperprogression. A ring of width N mm is every voxel whose
centre lies within N mm of a lesion voxel centre (Euclidean distance in physical space, so anisotropic voxels
are handled), minus the lesion, clipped to the body.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def region_name(width_mm: float) -> str:
    """Name of the ring region in feature tables: ``ring5mm``, ``ring7.5mm``."""
    return f"ring{float(width_mm):g}mm"


def body_mask(hu: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    """Patient body: the largest 6-connected component of ``HU > threshold_hu``, holes filled slice by slice.

    WHY this rule: -500 HU separates soft tissue and bone from air. Filling holes in each axial slice puts the
    lungs and airways (which are < -500 HU but enclosed by the chest wall) back inside the body, so that a
    ring around a lung nodule keeps its lung parenchyma while air outside the patient, and the CT table (a
    separate component), do not count. Limits: a body cut by the field of view leaves cavities open to the
    image edge unfilled in those slices.
    """
    above = np.asarray(hu) > threshold_hu
    labels, n = ndimage.label(above)
    if n == 0:
        return np.zeros(above.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def ring_mask(lesion: np.ndarray, spacing_mm: Sequence[float], width_mm: float,
              body: np.ndarray | None = None) -> np.ndarray:
    """Voxels within ``width_mm`` of the lesion (centre to centre), not in the lesion, inside ``body`` if
    given.

    ``lesion`` is a boolean [k, j, i] array; ``spacing_mm`` is in (i, j, k) order as in ImageGeometry. The
    whole-grid form of :func:`ring_crop` (same voxels).
    """
    lesion = np.asarray(lesion, dtype=bool)
    ring = np.zeros(lesion.shape, dtype=bool)
    if not lesion.any():
        return ring
    idx = np.argwhere(lesion)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    crop, start = ring_crop(lesion[box], (int(lo[0]), int(lo[1]), int(lo[2])), lesion.shape, spacing_mm,
                            width_mm, body)
    if crop.size:
        ring[tuple(slice(o, o + n) for o, n in zip(start, crop.shape, strict=True))] = crop
    return ring


def ring_crop(lesion_crop: np.ndarray, offset: Sequence[int], grid_shape: Sequence[int],
              spacing_mm: Sequence[float], width_mm: float, body: np.ndarray | None = None,
              ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The ring of a lesion given as its crop (``offset`` = grid index of ``lesion_crop[0, 0, 0]`` on a grid
    of ``grid_shape``), as the ring's own tight crop and offset ((0, 0, 0) shape when empty).

    The distance transform runs on the lesion's box grown by the ring width only (same result as on the
    whole grid, much less work); ``body`` is the whole-grid body mask (read in that box only).
    """
    lesion_crop = np.asarray(lesion_crop, dtype=bool)
    empty = np.zeros((0, 0, 0), dtype=bool), (0, 0, 0)
    if not lesion_crop.any():
        return empty
    spacing_zyx = np.asarray(spacing_mm, dtype=float)[::-1]
    margin = [math.ceil(width_mm / s) + 1 for s in spacing_zyx]
    lo = [max(int(o) - m, 0) for o, m in zip(offset, margin, strict=True)]
    hi = [min(int(o) + n + m, g)
          for o, n, m, g in zip(offset, lesion_crop.shape, margin, grid_shape, strict=True)]
    sub = np.zeros(tuple(b - a for a, b in zip(lo, hi, strict=True)), dtype=bool)
    sub[tuple(slice(int(o) - a, int(o) - a + n)
              for o, a, n in zip(offset, lo, lesion_crop.shape, strict=True))] = lesion_crop
    distance = ndimage.distance_transform_edt(~sub, sampling=spacing_zyx)
    ring = (distance <= width_mm) & ~sub
    if body is not None:
        ring &= body[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    hits = [np.flatnonzero(ring.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(h.size == 0 for h in hits):
        return empty
    box = tuple(slice(int(h[0]), int(h[-1]) + 1) for h in hits)
    return ring[box].copy(), (lo[0] + box[0].start, lo[1] + box[1].start, lo[2] + box[2].start)
