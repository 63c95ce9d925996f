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
    distance transform runs on the lesion's bounding box grown by the ring width only (same result, much less
    work).
    """
    lesion = np.asarray(lesion, dtype=bool)
    ring = np.zeros(lesion.shape, dtype=bool)
    if not lesion.any():
        return ring
    spacing_zyx = np.asarray(spacing_mm, dtype=float)[::-1]
    idx = np.argwhere(lesion)
    margin = [math.ceil(width_mm / s) + 1 for s in spacing_zyx]
    lo = [max(int(a) - m, 0) for a, m in zip(idx.min(axis=0), margin, strict=True)]
    hi = [min(int(b) + m + 1, n) for b, m, n in zip(idx.max(axis=0), margin, lesion.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = lesion[box]
    distance = ndimage.distance_transform_edt(~sub, sampling=spacing_zyx)
    ring[box] = (distance <= width_mm) & ~sub
    if body is not None:
        ring &= body
    return ring
