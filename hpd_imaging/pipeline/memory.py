"""The per-worker memory budget of one patient's work (issue 21; setting ``loader.memory_budget_mib``).

Checked *before* the allocation it bounds, from headers and shapes, so that a series or a region that would
not fit is an error row (file, rule, value) instead of a worker killed by the operating system:

* loading an exam: the CT voxels already decoded plus the new CT whole (rows x columns x slices x 2 bytes,
  int16 as integer rescaling gives; a float32 CT is counted at its real size), should it have to be decoded
  whole, plus the mask crops. The pipeline loads CTs lazily (issue 21): a CT holds only the slices decoded so
  far, so what is *held* counts decoded voxels, not declared ones;
* registration (tracking without declared identity) decodes every exam's CT whole: all of them, before;
* radiomics of a region: what is held, pyradiomics' whole-CT working copy (a SimpleITK image of the CT), the
  body mask and its labels when rings are asked for, and the region's own arrays
  (:func:`radiomics_region_bytes`).

The estimates count the patient's data, not the interpreter and its libraries (~0.4 GiB, measured), which
come on top of the budget. A need equal to the budget runs; one byte more does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hpd_imaging.domain import CtImage, LesionMask, SeriesRef
from hpd_imaging.errors import HpdImagingError

MIB = 2**20
#: bytes per decoded CT voxel assumed before decoding (int16: CTs with integer rescale slope/intercept)
CT_BYTES_PER_VOXEL = 2
#: body mask for peritumoral rings: the bool mask, ndimage.label's int32 labels and the ``HU > t`` array
BODY_MASK_BYTES_PER_VOXEL = 6
#: pyradiomics' arrays per voxel of the (resampled) region box: the image and mask as float64 / arrays,
#: the current filtered image, and the feature classes' per-voxel arrays ...
RADIOMICS_BASE_BYTES_PER_VOXEL = 48
#: ... plus the 8 coif1 sub-bands pywt computes at once (float64) when Wavelet is an image type ...
RADIOMICS_WAVELET_BYTES_PER_VOXEL = 64
#: ... plus the LoG-filtered image (float64) when LoG is
RADIOMICS_LOG_BYTES_PER_VOXEL = 8


class MemoryBudgetError(HpdImagingError):
    """A series or region whose estimated memory passes ``loader.memory_budget_mib``."""


def mib(n_bytes: float) -> float:
    return n_bytes / MIB


def ct_estimate_bytes(ref: SeriesRef) -> int:
    """Bytes of the decoded CT of ``ref`` from its headers (rows x columns x slices, int16)."""
    return int(ref.rows) * int(ref.columns) * int(ref.n_slices) * CT_BYTES_PER_VOXEL


def masks_bytes(masks: Iterable[LesionMask]) -> int:
    """Bytes of the masks' bounding-box crops."""
    return sum(int(m.crop.nbytes) for m in masks)


def held_bytes(exams: Iterable[Any]) -> int:
    """What the loaded exams hold: each CT's *decoded* voxels (``CtImage.decoded_nbytes``: an eager CT's
    array, 0 after :func:`without_voxels`, a lazy CT's decoded slices) and its masks' crops."""
    return sum(e.ct.decoded_nbytes + masks_bytes(e.masks) for e in exams)


def whole_bytes(ct: CtImage) -> int:
    """Bytes of the CT's voxels once every slice is decoded, from its grid and type (decodes nothing)."""
    return math.prod(ct.geometry.shape) * ct.dtype.itemsize


def without_voxels(ct: CtImage) -> CtImage:
    """The CT with its voxels released: same grid, UIDs, source and provenance; ``hu`` a read-only zero-stride
    view of one zero (no memory), for stages that need only the grid (DICOM SEG/SR outputs, geometry checks).
    The provenance says so, so that a reader of ``hu`` can tell. A lazy CT's decoded slices are dropped with
    its voxel source (nothing is decoded here)."""
    empty = np.broadcast_to(np.zeros((), dtype=ct.dtype), ct.geometry.shape)
    return CtImage(
        hu=empty,
        geometry=ct.geometry,
        frame_of_reference_uid=ct.frame_of_reference_uid,
        series_instance_uid=ct.series_instance_uid,
        source=ct.source,
        provenance={**ct.provenance, "voxels": "released after tracking (memory budget)"},
    )


def radiomics_region_bytes(
    box_shape_kji: Sequence[int], spacing_mm: Sequence[float], params: Mapping[str, Any]
) -> int:
    """Estimated bytes pyradiomics holds for one region whose box (plus the crop margin) is
    ``box_shape_kji`` on a grid of ``spacing_mm`` (i, j, k), with the parameter file's ``params``.

    The region is resampled to ``resampledPixelSpacing`` (when set) and padded by ``padDistance`` voxels on
    each side, as pyradiomics does; each of its voxels costs the bytes of the constants above.
    """
    setting = params.get("setting") or {}
    pad = int(setting.get("padDistance", 5))
    resampled = setting.get("resampledPixelSpacing")
    n = 1
    for axis, size in enumerate(box_shape_kji):
        spacing = float(spacing_mm[2 - axis])
        new = (
            float(resampled[2 - axis])
            if resampled is not None and float(resampled[2 - axis]) > 0
            else spacing
        )
        n *= math.ceil(size * spacing / new) + 2 * pad
    image_types = set(params.get("imageType") or {"Original": {}})
    per_voxel = RADIOMICS_BASE_BYTES_PER_VOXEL
    if "Wavelet" in image_types:
        per_voxel += RADIOMICS_WAVELET_BYTES_PER_VOXEL
    if "LoG" in image_types:
        per_voxel += RADIOMICS_LOG_BYTES_PER_VOXEL
    return n * per_voxel


def check_budget(need_bytes: int, budget_mib: float | None, what: str, path: str | None) -> None:
    """Raise :class:`MemoryBudgetError` when ``need_bytes`` passes the budget (equal is allowed)."""
    if budget_mib is None or need_bytes <= budget_mib * MIB:
        return
    raise MemoryBudgetError(
        f"{path + ': ' if path else ''}{what} needs an estimated {mib(need_bytes):.1f} MiB ({need_bytes} "
        f"bytes); expected at most "
        f"loader.memory_budget_mib={budget_mib:g} (raise it where the machine has the memory)",
        path=path,
    )
