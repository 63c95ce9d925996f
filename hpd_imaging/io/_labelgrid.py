"""Label values on the CT grid: shared by the plain label-map reader and the 3D Slicer segmentation reader.

Placement without interpolation (highdicom ``match_geometry``: permute, flip, crop, pad), refusal or
nearest-neighbour resampling of another grid, label tables and connected components.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from hpd_imaging.domain import CtImage, ImageGeometry
from hpd_imaging.errors import GeometryError, MaskError
from hpd_imaging.io._limits import check_mask_count
from hpd_imaging.io._placement import match_to_grid
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

log = logging.getLogger(__name__)

# value -> (lesion_id, organ, is_lymph_node); or MaskRef.label_table rows (value, lesion_id, organ, is_ln)
LabelTable = Mapping[int, tuple[str, str, bool]] | Iterable[tuple[int, str, str, bool]]


def normalise_label_table(table: LabelTable | None) -> dict[int, tuple[str, str, bool]]:
    """Accept a mapping or MaskRef.label_table rows; return {value: (lesion_id, organ, is_lymph_node)}."""
    if table is None:
        return {}
    if isinstance(table, Mapping):
        return {int(k): (str(v[0]), str(v[1]), bool(v[2])) for k, v in table.items()}
    return {int(row[0]): (str(row[1]), str(row[2]), bool(row[3])) for row in table}


def place_on_ct_grid(
    image: Any, path: Any, ct: CtImage, settings: LoaderSettings = DEFAULT_LOADER_SETTINGS
) -> tuple[np.ndarray, list[str]]:
    """A scalar SimpleITK label image's integer values on ``ct``'s grid ([k, j, i]), plus notes."""
    import SimpleITK as sitk  # noqa: N813

    try:
        geometry = ImageGeometry.from_sitk(image)
    except GeometryError as exc:
        raise MaskError(f"{path}: {exc}", path=str(path)) from exc
    values = sitk.GetArrayFromImage(image)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise MaskError(f"{path}: expected integer label values, got non-integer floats", path=str(path))
        values = values.astype(np.int32)
    notes: list[str] = []
    target = ct.geometry
    same_lattice = sorted(geometry.shape) == sorted(target.shape)
    if same_lattice:
        try:
            placed = match_to_grid(values, geometry, target, tol=settings.labelmap_tolerance_mm)
        except ValueError:
            same_lattice = False
        else:
            if not np.allclose(geometry.voxel_volume_mm3, target.voxel_volume_mm3, rtol=1e-4):
                same_lattice = False
    if same_lattice:
        if not geometry.is_close(
            target, tol_mm=settings.labelmap_tolerance_mm, tol_direction=settings.labelmap_tolerance_direction
        ):
            notes.append(
                f"label map axes reordered/flipped onto the CT grid (stored direction {geometry.direction})"
            )
        return placed, notes
    difference = target.describe_difference(geometry)
    if settings.labelmap_mismatch == "refuse":
        raise MaskError(
            f"{path}: label map grid does not match the CT grid ({ct.source or 'CT'}): {difference} "
            "(label map vs CT); set loader.labelmap_mismatch: resample to resample nearest-neighbour",
            path=str(path),
        )
    reference = sitk.Image([int(n) for n in reversed(target.shape)], sitk.sitkUInt8)
    target.apply_to_sitk(reference)
    resampled = sitk.Resample(
        image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, image.GetPixelID()
    )
    note = f"label map resampled nearest-neighbour onto the CT grid ({difference})"
    log.warning("%s: %s", path, note)
    notes.append(note)
    return sitk.GetArrayFromImage(resampled), notes


def connected_components(
    mask: np.ndarray,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    where: str = "mask",
    *,
    grid_shape: tuple[int, ...] | None = None,
) -> list[np.ndarray]:
    """26-connected components of a boolean mask, largest first (scipy.ndimage.label), each an array of
    ``mask``'s shape (pass a lesion's crop: the parts are crops with the same offset).

    ``grid_shape``: the CT grid the mask is cut from, for the limit on the number of masks (default: the
    mask's own shape)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    check_mask_count(n, grid_shape or mask.shape, settings, where, "connected components")
    if n <= 1:
        return [mask] if n == 1 else []
    sizes = np.bincount(labels.ravel())[1:]
    return [labels == (int(i) + 1) for i in np.argsort(-sizes, kind="stable")]
