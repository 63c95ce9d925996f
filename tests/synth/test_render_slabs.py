"""render_anatomy slab by slab gives the same pixels as the whole volume at once (the memory fix of #21)."""

from __future__ import annotations

import numpy as np
import pytest

from hpd_imaging.settings.synth import SynthSettings
from hpd_imaging.synth import anatomy
from hpd_imaging.synth.plan import plan_patient
from hpd_imaging.synth.render import ExamGrid


@pytest.mark.parametrize("exam", [0, 1])
def test_slabs_equal_whole_volume(monkeypatch: pytest.MonkeyPatch, exam: int) -> None:
    settings = SynthSettings(n_patients=1, seed=21, matrix=96, slice_thickness_mm=6.0, n_followups=1)
    plan = plan_patient(settings, 0)
    grid = ExamGrid.from_settings(settings)
    pose = plan.poses[exam]
    assert pose.roll_deg != 0.0  # a rotated pose, so x and y mix in the product
    args = (plan.anatomy, pose, grid.shape, grid.spacing_mm, grid.origin_mm)
    monkeypatch.setattr(anatomy, "_SLAB_SLICES", grid.shape[0])  # one slab = the whole volume
    whole = anatomy.render_anatomy(*args)
    monkeypatch.setattr(anatomy, "_SLAB_SLICES", 3)  # 40 slices: 13 slabs of 3 and one of 1
    slabs = anatomy.render_anatomy(*args)
    assert grid.shape[0] % 3 != 0
    assert whole.dtype == slabs.dtype == np.float32
    np.testing.assert_array_equal(whole.view(np.uint32), slabs.view(np.uint32))
    # the phantom is there (not an empty volume equal to another): air, lung and bone HU all present
    assert whole.min() < -900 and whole.max() > 500 and ((whole > -900) & (whole < -700)).any()


def test_scanner_grid_k_range_is_the_slice_of_the_whole_grid() -> None:
    shape, spacing, origin = (7, 4, 5), (0.7, 0.7, 1.2), (-1.0, -2.0, 0.6)
    whole = anatomy.scanner_grid(shape, spacing, origin)
    part = anatomy.scanner_grid(shape, spacing, origin, k_range=(2, 5))
    for w, p in zip(whole, part, strict=True):
        assert p.shape == (3, 4, 5)
        np.testing.assert_array_equal(w[2:5], p)
    assert part[2][0, 0, 0] == pytest.approx(0.6 + 2 * 1.2)
