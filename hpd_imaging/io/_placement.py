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

    # match_geometry also accepts integer strides (it would subsample a finer grid): refuse those here, a
    # different spacing is a different lattice. An axis of length 1 has no meaningful spacing.
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
    vol = hd.Volume(array=array, affine=hd_affine(geometry), coordinate_system="PATIENT")
    try:
        matched = vol.match_geometry(hd_volume_geometry(target), tol=tol)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
    return np.asarray(matched.array)
