"""Measurement of one lesion at one timepoint (conventions: ../shared/specs/measurement.md).

Everything is measured on the *outline* of the mask, not between voxel centres: the 3D surface is the
iso-surface at 0.5 of the mask padded by one voxel (marching cubes, as IBSI defines it), the 2D outline of a
slice its iso-contour at 0.5 (marching squares). Work is done on the mask's bounding box only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours, marching_cubes, mesh_surface_area

from hpd_imaging.domain import ImageGeometry, LesionMask, LesionMeasurement
from hpd_imaging.errors import MeasurementError
from hpd_imaging.measure.diameters import max_diameter, perpendicular_width
from hpd_imaging.measure.uncertainty import GRID, grid_uncertainty, surface_voxel_count
from hpd_imaging.settings.measure import MeasureSettings

logger = logging.getLogger(__name__)

Point3 = tuple[float, float, float]


@dataclass(frozen=True)
class AxialMeasurement:
    """RECIST long and short axis of one connected piece of a lesion, on its key slice."""

    long_axis_mm: float
    short_axis_mm: float
    slice_index: int  # k index on the CT grid
    long_axis_endpoints_mm: tuple[Point3, Point3]
    short_axis_endpoints_mm: tuple[Point3, Point3]


def _mesh_volume_mm3(verts_mm: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed triangle mesh (divergence theorem: sum of signed tetrahedra).

    Hand-written because scikit-image offers the surface area but not the enclosed volume; this is the
    formula IBSI gives for the mesh volume (and what pyradiomics computes).
    """
    a, b, c = verts_mm[faces[:, 0]], verts_mm[faces[:, 1]], verts_mm[faces[:, 2]]
    return float(abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0)


def _to_lps(geometry: ImageGeometry, kji: np.ndarray) -> np.ndarray:
    """Continuous array indices ``(..., [k, j, i])`` to LPS millimetres."""
    return geometry.index_to_lps(np.asarray(kji, dtype=float)[..., ::-1])


def _as_point(p: np.ndarray) -> Point3:
    return (float(p[0]), float(p[1]), float(p[2]))


def _axial_measurement(piece: np.ndarray, offset: np.ndarray, geometry: ImageGeometry) -> AxialMeasurement:
    """RECIST axes of one connected piece (bool [k, j, i], already zero-padded in j and i).

    Each slice's outline is its marching-squares contour at 0.5 in physical mm (x = column * spacing_i,
    y = row * spacing_j; the in-plane axes are orthonormal, so this frame is isometric to the patient's).
    The long axis is the slice's largest outline chord (convex hull); the short axis the longest chord
    perpendicular to it on the same slice.
    """
    s_i, s_j = geometry.spacing_mm[0], geometry.spacing_mm[1]
    scale = np.array([s_i, s_j])
    best: tuple[float, int, np.ndarray, np.ndarray, list[np.ndarray]] | None = None
    for k in np.flatnonzero(piece.any(axis=(1, 2))):
        contours = find_contours(piece[k].astype(np.float32), 0.5)
        if not contours:
            continue
        xy = [c[:, ::-1] * scale for c in contours]  # (row, col) -> (x_mm, y_mm)
        d, a, b = max_diameter(np.concatenate(xy))
        if best is None or d > best[0] + 1e-9:
            best = (d, int(k), a, b, xy)
    if best is None:  # cannot happen for a non-empty piece; keep the message useful anyway
        raise MeasurementError("no outline found on any slice of a non-empty lesion piece")
    long_mm, k, a, b, xy = best
    edges_a = np.concatenate([c[:-1] for c in xy])
    edges_b = np.concatenate([c[1:] for c in xy])
    short_mm, s_lo, s_hi = perpendicular_width(edges_a, edges_b, a, b)

    def lps(p2: np.ndarray) -> Point3:
        kji = np.array([k, p2[1] / s_j, p2[0] / s_i]) + offset
        return _as_point(_to_lps(geometry, kji))

    return AxialMeasurement(
        long_axis_mm=float(long_mm),
        short_axis_mm=float(short_mm),
        slice_index=int(k + offset[0]),
        long_axis_endpoints_mm=(lps(a), lps(b)),
        short_axis_endpoints_mm=(lps(s_lo), lps(s_hi)),
    )


def _crop(mask: LesionMask, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The mask's bounding box (its stored crop) padded by one voxel, and the array index of its first
    voxel."""
    if mask.is_empty:
        where = mask.source_path or "mask"
        raise MeasurementError(
            f"{where}: lesion {name!r} (label {mask.label!r}): expected a non-empty mask, got 0 voxels",
            path=mask.source_path or None,
        )
    return np.pad(mask.crop, 1), np.array([o - 1 for o in mask.offset], dtype=float)


def _mean_index(crop: np.ndarray) -> np.ndarray:
    """Mean (k, j, i) index of the True voxels of ``crop``: ``np.argwhere(crop).mean(axis=0)`` without the
    (n, 3) index array (336 MB for a 7-litre lesion). Each coordinate sum is an exact integer (projection
    counts times indices) divided once by n, which is what the mean of the index array computes too (its
    float64 partial sums of integers are exact below 2**53), so the value is the same to the last bit."""
    n = int(np.count_nonzero(crop))
    out = np.empty(3)
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        counts = np.count_nonzero(crop, axis=other).astype(np.int64)
        out[axis] = float(int(counts @ np.arange(crop.shape[axis], dtype=np.int64))) / n
    return out


def _surface(crop: np.ndarray, spacing_kji: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes iso-surface at 0.5 of a padded crop: vertices in mm of the (k, j, i) frame, faces."""
    verts_mm, faces, _, _ = marching_cubes(crop.astype(np.float32), level=0.5, spacing=tuple(spacing_kji))
    return verts_mm, faces


def lesion_surface(mask: LesionMask) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's 3D outline as a triangle mesh: vertices (n, 3) in LPS mm and faces (m, 3).

    For drawings, exports and the brute-force diameter benchmark; ``measure_lesion`` uses the same mesh.
    """
    crop, offset = _crop(mask, mask.lesion_id or mask.label)
    spacing_kji = np.asarray(mask.geometry.spacing_mm[::-1], dtype=float)
    verts_mm, faces = _surface(crop, spacing_kji)
    return _to_lps(mask.geometry, verts_mm / spacing_kji + offset), faces


def measure_lesion(
    mask: LesionMask, *, lesion_id: str | None = None, settings: MeasureSettings | None = None
) -> LesionMeasurement:
    """Measure one lesion mask: volumes, surface, RECIST axes, 3D diameter, centroid and fragments.

    ``lesion_id`` overrides the identity the mask declares (the tracker passes the tracked id). A mask made
    of several connected pieces is a fragmented lesion: per RECIST 1.1 the long (and short) axes of the
    pieces are summed and ``is_fragmented`` is set; the key slice and axis end points are those of the piece
    with the longest axis. Volumes, surface and the 3D diameter are those of the whole mask.
    """
    settings = settings or MeasureSettings()
    name = lesion_id or mask.lesion_id or mask.label
    geometry = mask.geometry
    crop, offset = _crop(mask, name)  # offset: array index of crop[0, 0, 0]
    voxel_count = int(np.count_nonzero(crop))
    spacing_kji = np.asarray(geometry.spacing_mm[::-1], dtype=float)

    # 3D surface: marching cubes in the (k, j, i) frame scaled to mm (isometric to LPS)
    verts_mm, faces = _surface(crop, spacing_kji)
    surface_area = float(mesh_surface_area(verts_mm, faces))
    mesh_volume = _mesh_volume_mm3(verts_mm, faces)
    sphericity = (
        float((36.0 * np.pi * mesh_volume**2) ** (1.0 / 3.0) / surface_area) if surface_area > 0 else 0.0
    )
    max_3d, _, _ = max_diameter(verts_mm)

    centroid_kji = _mean_index(crop) + offset
    centroid = _as_point(_to_lps(geometry, centroid_kji))

    # connected pieces (fragments), 26-connectivity by default
    structure = ndimage.generate_binary_structure(3, 3 if settings.fragment_connectivity == 26 else 1)
    labels, n_pieces = ndimage.label(crop, structure=structure)
    objects = ndimage.find_objects(labels)
    sizes = ndimage.sum_labels(crop, labels, index=np.arange(1, n_pieces + 1))  # voxels per piece
    min_voxels = settings.min_fragment_volume_mm3 / geometry.voxel_volume_mm3
    kept = [index for index in range(1, n_pieces + 1) if n_pieces == 1 or sizes[index - 1] >= min_voxels]
    if not kept:  # every piece below the fragment threshold: measure the largest one
        kept = [int(np.argmax(sizes)) + 1]
    pieces: list[AxialMeasurement] = []
    for index in kept:
        obj = objects[index - 1]
        piece = np.pad(labels[obj] == index, ((0, 0), (1, 1), (1, 1)))
        piece_offset = offset + np.array([obj[0].start, obj[1].start - 1, obj[2].start - 1], dtype=float)
        pieces.append(_axial_measurement(piece, piece_offset, geometry))
    key = max(pieces, key=lambda p: p.long_axis_mm)
    if len(pieces) > 1:
        logger.info("lesion %s is fragmented into %d pieces: RECIST axes summed", name, len(pieces))

    long_axis = float(sum(p.long_axis_mm for p in pieces))
    short_axis = float(sum(p.short_axis_mm for p in pieces))
    # discretisation error of this mask on this grid (issue 17, measure/uncertainty.py)
    sd = grid_uncertainty(
        geometry.spacing_mm,
        longest_axial_diameter_mm=long_axis,
        short_axis_mm=short_axis,
        volume_mm3=voxel_count * geometry.voxel_volume_mm3,
        n_surface_voxels=surface_voxel_count(crop),
    )
    return LesionMeasurement(
        lesion_id=name,
        voxel_count=voxel_count,
        volume_mm3=voxel_count * geometry.voxel_volume_mm3,
        longest_axial_diameter_mm=long_axis,
        short_axis_mm=short_axis,
        longest_axial_diameter_sd_mm=sd.longest_axial_diameter_sd_mm,
        short_axis_sd_mm=sd.short_axis_sd_mm,
        volume_sd_mm3=sd.volume_sd_mm3,
        uncertainty_source=GRID,
        max_3d_diameter_mm=float(max_3d),
        mesh_volume_mm3=mesh_volume,
        surface_area_mm2=surface_area,
        sphericity=sphericity,
        centroid_mm=centroid,
        organ=mask.organ,
        is_lymph_node=mask.is_lymph_node,
        label=mask.label,
        is_fragmented=len(pieces) > 1,
        n_fragments=len(pieces),
        mask_source=str(mask.source.value if hasattr(mask.source, "value") else mask.source),
        lesion_rule=mask.lesion_rule,
        long_axis_slice_index=key.slice_index,
        long_axis_endpoints_mm=key.long_axis_endpoints_mm,
        short_axis_endpoints_mm=key.short_axis_endpoints_mm,
    )


def absent_measurement(
    lesion_id: str, *, organ: str = "", is_lymph_node: bool = False, label: str = "", mask_source: str = ""
) -> LesionMeasurement:
    """The record of a lesion that is not seen at a timepoint (disappeared or coalesced): 0 mm, 0 voxels."""
    return LesionMeasurement(
        lesion_id=lesion_id,
        voxel_count=0,
        volume_mm3=0.0,
        longest_axial_diameter_mm=0.0,
        short_axis_mm=0.0,
        max_3d_diameter_mm=0.0,
        organ=organ,
        is_lymph_node=is_lymph_node,
        label=label,
        n_fragments=0,
        mask_source=mask_source,
    )
