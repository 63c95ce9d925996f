"""Speed (and, with --accuracy, the worst errors over the test matrix) of measure_lesion. Not a test.

    uv run python tests/measure/bench_measure.py [--accuracy]

Times a 50 mm (and an 80 mm) ellipsoidal lesion at 0.7 mm isotropic spacing inside a 512 x 512 x 200 CT grid
(the crop to the bounding box is part of what is timed), and compares the hull-based 3D diameter with the
brute-force O(n^2) one over all surface vertices (same answer, timings side by side).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from measure_phantoms import ellipsoid  # noqa: E402

from hpd_imaging.domain import ImageGeometry, LesionMask  # noqa: E402
from hpd_imaging.measure import brute_force_max_diameter, max_diameter, measure_lesion  # noqa: E402
from hpd_imaging.measure.lesion import lesion_surface  # noqa: E402


def _in_full_ct(mask: LesionMask) -> LesionMask:
    shape = (200, 512, 512)
    big = np.zeros(shape, dtype=bool)
    s = mask.mask.shape
    big[60 : 60 + s[0], 150 : 150 + s[1], 150 : 150 + s[2]] = mask.mask
    g = ImageGeometry(shape=shape, spacing_mm=mask.geometry.spacing_mm, origin_mm=mask.geometry.origin_mm)
    return LesionMask(mask=big, geometry=g, label=mask.label, source=mask.source)


def _best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speed() -> None:
    for name, axes in (
        ("50 mm sphere", (25.0, 25.0, 25.0)),
        ("50x40x35 mm rotated", (25.0, 20.0, 17.5)),
        ("80 mm sphere", (40.0, 40.0, 40.0)),
    ):
        case = ellipsoid(axes, (0.7, 0.7, 0.7), angles_deg=(20.0, 30.0, 40.0))
        full = _in_full_ct(case.mask)
        t_crop = _best_of(lambda c=case: measure_lesion(c.mask))
        t_full = _best_of(lambda f=full: measure_lesion(f))
        verts, _ = lesion_surface(case.mask)
        t_hull = _best_of(lambda v=verts: max_diameter(v))
        t_brute = _best_of(lambda v=verts: brute_force_max_diameter(v), repeat=1)
        d_hull, d_brute = max_diameter(verts)[0], brute_force_max_diameter(verts)
        print(
            f"{name} at 0.7 mm: measure_lesion {t_crop * 1000:.0f} ms on the lesion's box, "
            f"{t_full * 1000:.0f} ms inside a 512x512x200 grid; {len(verts)} surface vertices; "
            f"3D diameter hull {t_hull * 1000:.1f} ms vs brute force {t_brute * 1000:.0f} ms "
            f"({d_hull:.6f} vs {d_brute:.6f} mm)"
        )


def accuracy() -> None:
    import test_measure_accuracy as matrix

    worst: dict[str, tuple[float, str]] = {}

    def update(key: str, value: float, case_id: str) -> None:
        if abs(value) > abs(worst.get(key, (0.0, ""))[0]):
            worst[key] = (value, case_id)

    for p in matrix._cases():
        axes, spacing, angles = p.values
        case = ellipsoid(axes, spacing, angles_deg=angles, offset_vox=(0.31, 0.17, 0.21))
        m = measure_lesion(case.mask)
        thin = max(spacing) <= 1.25
        size = "5mm" if 2 * max(axes) < 10 else ">=10mm"
        update("LD - truth (mm)", m.longest_axial_diameter_mm - case.recist_long_mm, p.id)
        update("SA - truth (mm)", m.short_axis_mm - case.recist_short_mm, p.id)
        update(
            f"3D - analytic (mm), {'thin' if thin else 'thick'}",
            m.max_3d_diameter_mm - case.max_3d_diameter_mm,
            p.id,
        )
        update(
            f"volume/analytic - 1, {size}, {'thin' if spacing[2] <= 1.25 else 'thick'}",
            m.volume_mm3 / case.volume_mm3 - 1,
            p.id,
        )
        if spacing[2] > 1.25:
            update(f"volume/sampled - 1, {size}, thick", m.volume_mm3 / case.sampled_volume_mm3 - 1, p.id)
        update(f"mesh/analytic - 1, {size}", m.mesh_volume_mm3 / case.volume_mm3 - 1, p.id)
    for key, (value, case_id) in sorted(worst.items()):
        print(f"{key:45s} {value:+.4f}  ({case_id})")


if __name__ == "__main__":
    speed()
    if "--accuracy" in sys.argv:
        accuracy()
