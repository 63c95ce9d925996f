"""Benchmark 3: lesion measurement, hull-based 3D diameter vs the brute-force O(n^2) search.

The maximum 3D diameter is the largest distance between two points of the lesion's surface mesh. A user
without our code computes it as pyradiomics does: every pair of surface vertices, O(n^2). We take the convex
hull first (scipy Qhull, O(n log n)) and search its few hundred vertices only. Both are timed on the same
marching-cubes vertices (``hpd_imaging.measure.lesion.lesion_surface``), and their answers must be equal.

Lesions: rotated ellipsoids (axes d, 0.8 d, 0.65 d) sampled at isotropic spacing (0.7 mm by default, a
thin-slice CT), so the vertex count grows with the lesion's surface. ``measure_lesion`` (all measurements of
one lesion: mesh, volumes, RECIST axes, 3D diameter, fragments) is timed too, as ms per lesion.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from benchmarks._common import (
    BenchOptions,
    figure,
    log,
    ratio,
    result_head,
    time_blocks,
    timestamp,
    write_result,
)

NAME = "measure_diameters"


def ellipsoid_mask(diameter_mm: float, spacing_mm: float) -> Any:
    """A rotated ellipsoid (semi-axes d/2, 0.4 d, 0.325 d; rotated 20/30/40 degrees) as a LesionMask."""
    from scipy.spatial.transform import Rotation  # type: ignore[import-untyped]

    from hpd_imaging.domain import ImageGeometry, LesionMask, MaskSource

    semi = np.array([0.5, 0.4, 0.325]) * diameter_mm
    n = int(np.ceil(diameter_mm / spacing_mm)) + 6
    centre = (n - 1) / 2.0 + np.array([0.31, 0.17, 0.21])  # off-grid centre: no lucky symmetry
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float),) * 3, indexing="ij")
    xyz = np.stack([i, j, k], axis=-1).reshape(-1, 3) - centre
    xyz *= spacing_mm
    rot = Rotation.from_euler("xyz", [20.0, 30.0, 40.0], degrees=True).as_matrix()
    local = xyz @ rot  # coordinates in the ellipsoid's own axes
    inside = (np.sum((local / semi) ** 2, axis=1) <= 1.0).reshape(n, n, n)
    geometry = ImageGeometry(shape=(n, n, n), spacing_mm=(spacing_mm,) * 3, origin_mm=(0.0, 0.0, 0.0))
    return LesionMask(mask=inside, geometry=geometry, label=f"{diameter_mm:g}mm", source=MaskSource.LABELMAP)


def run(opts: BenchOptions) -> dict[str, Any]:
    from hpd_imaging.measure import brute_force_max_diameter, max_diameter, measure_lesion
    from hpd_imaging.measure.lesion import lesion_surface

    started = timestamp()
    cases = []
    figures = []
    for d_mm in opts.lesion_sizes_mm:
        mask = ellipsoid_mask(d_mm, opts.lesion_spacing_mm)
        verts, _faces = lesion_surface(mask)
        # the O(n^2) search takes seconds per call on a 50 mm lesion: fewer repeats there
        repeats = opts.repeats if len(verts) < 8000 else max(1, min(opts.repeats, 3))
        log(f"{NAME}: {d_mm:g} mm lesion, {len(verts)} surface vertices, {repeats} repeats")
        timings, last = time_blocks(
            {
                "hull_max_diameter": partial(lambda v: max_diameter(v)[0], verts),
                "brute_force_max_diameter": partial(brute_force_max_diameter, verts),
                "measure_lesion": partial(measure_lesion, mask),
            },
            repeats,
        )
        d_hull, d_brute = float(last["hull_max_diameter"]), float(last["brute_force_max_diameter"])
        assert abs(d_hull - d_brute) <= 1e-9 * d_brute, f"hull {d_hull} != brute force {d_brute}"
        d_measured = float(last["measure_lesion"].max_3d_diameter_mm)
        assert abs(d_measured - d_brute) <= 1e-9 * d_brute, f"measure_lesion {d_measured} != {d_brute}"
        hull, brute, full = (
            timings[k] for k in ("hull_max_diameter", "brute_force_max_diameter", "measure_lesion")
        )
        figures.append(
            figure(
                f"3D diameter, {d_mm:g} mm lesion at {opts.lesion_spacing_mm:g} mm: brute force / hull",
                ratio(brute, hull),
                context=f"{len(verts)} vertices; {hull.median_s * 1000:.1f} ms vs "
                f"{brute.median_s * 1000:.0f} ms; measure_lesion {full.median_s * 1000:.0f} ms/lesion",
            )
        )
        cases.append(
            {
                "diameter_mm": d_mm,
                "spacing_mm": opts.lesion_spacing_mm,
                "voxels": int(mask.voxel_count),
                "surface_vertices": int(len(verts)),
                "max_3d_diameter_mm": {"hull": d_hull, "brute_force": d_brute, "measure_lesion": d_measured},
                "timings": {k: v.as_json() for k, v in timings.items()},
                "measure_lesion_ms_per_lesion": round(full.median_s * 1000, 2),
            }
        )
    payload = {
        **result_head(
            NAME,
            "3D diameter: convex hull vs brute-force O(n^2); measure_lesion ms per lesion",
            started,
        ),
        "options": {
            "repeats": opts.repeats,
            "lesion_sizes_mm": list(opts.lesion_sizes_mm),
            "lesion_spacing_mm": opts.lesion_spacing_mm,
        },
        "cases": cases,
        "checks": {"hull_equals_brute_force_rel_1e-9": True},
        "figures": figures,
        "notes": [
            "Both diameter searches run on the same marching-cubes vertices.",
            "Timed in blocks per candidate (warm-up + repeats), not interleaved: see _common.time_blocks.",
        ],
    }
    write_result(opts.results_dir, NAME, payload)
    return payload
