"""Put a mask volume onto the CT grid without resampling, through highdicom's ``Volume.match_geometry``.

``match_geometry`` permutes, flips, crops or pads an array whose voxels coincide with the CT's (NIfTI's
RAS vs DICOM's LPS, a SEG that omits empty frames, a label map stored LAS). It never interpolates; a grid that
is not the same lattice raises ``RuntimeError``/``ValueError`` and the caller refuses or resamples.
"""

from __future__ import annotations

import numpy as np

from hpd_imaging.domain import ImageGeometry


def hd_affine(geometry: ImageGeometry) -> np.ndarray:
    """highdicom affine (array axes 0, 1, 2 = k, j, i) of one of our [k, j, i] geometries."""
    a = geometry.affine
    return a[:, [2, 1, 0, 3]]


def hd_volume_geometry(geometry: ImageGeometry, frame_of_reference_uid: str | None = None):  # noqa: ANN201
    import highdicom as hd

    return hd.VolumeGeometry(
        affine=hd_affine(geometry),
        spatial_shape=geometry.shape,
        coordinate_system="PATIENT",
        frame_of_reference_uid=frame_of_reference_uid or None,
    )


def geometry_from_hd_affine(affine: np.ndarray, spatial_shape: tuple[int, int, int]) -> ImageGeometry:
    """Our ImageGeometry of a highdicom Volume (array [k, j, i] in its own axis order)."""
    cols = affine[:3, :3][:, [2, 1, 0]]
    spacing = np.linalg.norm(cols, axis=0)
    return ImageGeometry(
        shape=tuple(int(n) for n in spatial_shape),  # type: ignore[arg-type]
        spacing_mm=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        origin_mm=tuple(float(x) for x in affine[:3, 3]),  # type: ignore[arg-type]
        direction=tuple(float(x) for x in (cols / spacing[None, :]).ravel()),
    )


def match_to_grid(
    array: np.ndarray, geometry: ImageGeometry, target: ImageGeometry, tol: float
) -> np.ndarray:
    """Return ``array`` (on ``geometry``) re-indexed onto ``target`` without interpolation.

    Raises ``ValueError`` when the two grids are not the same lattice (up to permutation, flip, crop, pad).
    """
    import highdicom as hd

    check_same_spacing(geometry, target, tol)
    vol = hd.Volume(array=array, affine=hd_affine(geometry), coordinate_system="PATIENT")
    try:
        matched = vol.match_geometry(hd_volume_geometry(target), tol=tol)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    return np.asarray(matched.array)


def check_same_spacing(geometry: ImageGeometry, target: ImageGeometry, tol: float) -> None:
    """Raise ``ValueError`` when an axis of ``geometry`` has another spacing than the matching ``target``
    axis.

    match_geometry also accepts integer strides (it would subsample a finer grid): refused here, a different
    spacing is a different lattice. An axis of length 1 has no meaningful spacing.
    """
    src_dirs, dst_dirs = geometry.direction_matrix, target.direction_matrix
    src_shape_ijk = geometry.shape[::-1]
    for axis in range(3):
        dots = np.abs(src_dirs.T @ dst_dirs[:, axis])
        match = int(np.argmax(dots))
        if src_shape_ijk[match] == 1:
            continue
        if abs(geometry.spacing_mm[match] - target.spacing_mm[axis]) > tol:
            raise ValueError(
                f"spacing {geometry.spacing_mm[match]:.6g} mm vs {target.spacing_mm[axis]:.6g} mm "
                f"along axis {axis}"
            )


def sub_geometry(
    geometry: ImageGeometry, start_kji: tuple[int, int, int], shape: tuple[int, ...]
) -> ImageGeometry:
    """The grid of the box of ``geometry`` starting at index ``start_kji`` with ``shape`` (same lattice)."""
    origin = geometry.index_to_lps(np.asarray(start_kji[::-1], dtype=float))
    return ImageGeometry(
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        spacing_mm=geometry.spacing_mm,
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=geometry.direction,
    )


def match_crop_to_grid(
    crop: np.ndarray,
    source: ImageGeometry,
    crop_start_kji: tuple[int, int, int],
    target: ImageGeometry,
    tol: float,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A box of a mask volume put onto ``target`` as a crop: (array on target's axes, its (k, j, i) offset).

    ``crop`` is ``volume[box]`` of a volume on ``source`` (``crop_start_kji`` the box's first index). Why not
    :func:`match_to_grid` on the whole volume: that returns the whole target grid (65 MB a lesion on a
    512x512x250 CT); here highdicom's ``match_geometry`` maps the crop onto the target box it covers only, so
    the work and the result are lesion-sized. Voxels outside the target grid are dropped (the caller counts
    them). The spacings are checked on the whole ``source`` grid (a crop one voxel thin would skip an axis).
    Raises ``ValueError`` when the grids are not the same lattice.
    """
    check_same_spacing(source, target, tol)
    if crop.size == 0:
        return np.zeros((0, 0, 0), dtype=crop.dtype), (0, 0, 0)
    box_geometry = sub_geometry(source, crop_start_kji, crop.shape)
    corners_ijk = np.array(
        [
            [i, j, k]
            for k in (0, crop.shape[0] - 1)
            for j in (0, crop.shape[1] - 1)
            for i in (0, crop.shape[2] - 1)
        ],
        dtype=float,
    )
    on_target = target.lps_to_index(box_geometry.index_to_lps(corners_ijk))[:, ::-1]  # (8, [k, j, i])
    lo = np.rint(on_target.min(axis=0)).astype(int)
    hi = np.rint(on_target.max(axis=0)).astype(int) + 1
    lo_c = np.maximum(lo, 0)
    hi_c = np.minimum(hi, np.asarray(target.shape))
    if np.any(hi_c <= lo_c):  # wholly outside the target grid
        return np.zeros((0, 0, 0), dtype=crop.dtype), (0, 0, 0)
    start = (int(lo_c[0]), int(lo_c[1]), int(lo_c[2]))
    placed = match_to_grid(crop, box_geometry, sub_geometry(target, start, tuple(hi_c - lo_c)), tol)
    return placed, start
