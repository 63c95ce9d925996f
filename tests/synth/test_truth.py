"""The truth itself: analytic shapes, convergence of the fine sampling, fine rasterisation, kinetics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpd_imaging.settings.synth import PHENOTYPES, SynthSettings
from hpd_imaging.synth.anatomy import Pose
from hpd_imaging.synth.kinetics import MONTH_DAYS
from hpd_imaging.synth.lesions import TRUTH_DIAMETER_TOL_MM, LesionShape
from hpd_imaging.synth.plan import plan_patient


def _ellipsoid(axes: tuple[float, float, float], roll_deg: float = 0.0) -> LesionShape:
    a = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    return LesionShape(np.zeros(3), rot, np.array(axes), np.ones(3) / 3, np.zeros((0, 3)), np.zeros(0), ())


@pytest.mark.parametrize("roll", [0.0, 33.0])
def test_plain_ellipsoid_measures_analytically(roll: float) -> None:
    shape = _ellipsoid((15.0, 10.0, 5.0), roll)
    m = shape.measure(shape.axes_ref_mm)
    assert m["volume_mm3"] == pytest.approx(4 / 3 * math.pi * 750, rel=1e-9)
    assert m["longest_axial_diameter_mm"] == pytest.approx(30.0, abs=TRUTH_DIAMETER_TOL_MM)
    assert m["short_axis_mm"] == pytest.approx(20.0, abs=TRUTH_DIAMETER_TOL_MM)
    assert m["max_3d_diameter_mm"] == pytest.approx(30.0, abs=TRUTH_DIAMETER_TOL_MM)


@pytest.fixture(scope="module")
def irregular_lesions() -> list[LesionShape]:
    plans = [plan_patient(SynthSettings(n_patients=3, seed=3), i) for i in range(3)]
    return [les.shape for p in plans for les in p.lesions][:2]


def test_diameters_converge_on_a_finer_surface_sampling(irregular_lesions: list[LesionShape]) -> None:
    for shape in irregular_lesions:
        coarse = shape.measure(shape.axes_ref_mm)
        fine = shape.measure(shape.axes_ref_mm, n_theta=181, n_phi=360)
        for key in ("longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm"):
            assert coarse[key] == pytest.approx(fine[key], abs=TRUTH_DIAMETER_TOL_MM), key


def test_volume_and_centroid_match_a_fine_rasterisation(irregular_lesions: list[LesionShape]) -> None:
    """0.3 mm grid (about 10x finer than the CT grids here), voxel-centre sampling."""
    for shape in irregular_lesions:
        axes = shape.axes_ref_mm
        r = float(axes.max()) * shape.max_radial + 1
        h = 0.3
        n = int(2 * r / h) + 2
        origin = shape.centre_body_mm - r
        _, frac, centres = shape.fraction_on_grid(
            Pose((0, 0, 0), 0.0), axes, np.full(3, h), origin, (n, n, n), supersample=(1, 1, 1)
        )
        inside = shape.normalised_radius(centres.reshape(-1, 3), axes).reshape(frac.shape) <= 1
        vol = inside.sum() * h**3
        assert vol == pytest.approx(shape.volume_mm3(axes), rel=3e-3)
        np.testing.assert_allclose(centres[inside].mean(0), shape.centroid_body_mm(axes), atol=0.05)


def test_phenotype_kinetics_separate_hpd_from_the_rest() -> None:
    """Volumetric TGR ratio and volume change at the first evaluation, from the planned smooth volumes."""
    settings = SynthSettings(n_patients=40, seed=8, phenotypes=list(PHENOTYPES))
    for i in range(settings.n_patients):
        plan = plan_patient(settings, i)
        pre, base, first = plan.schedule.scan_dates[:3]
        base_lesions = [les for les in plan.lesions if not les.is_new]
        v = [
            sum(
                les.v_ref_mm3 * math.exp(les.growth.log_volume_ratio(d, les.v_ref_mm3))
                for les in base_lesions
            )
            for d in (pre, base, first)
        ]
        tgr_ref = 100 * math.expm1(math.log(v[1] / v[0]) / ((base - pre).days / MONTH_DAYS))
        tgr_exp = 100 * math.expm1(math.log(v[2] / v[1]) / ((first - base).days / MONTH_DAYS))
        if plan.phenotype == "hyperprogressor":
            assert tgr_exp > 2 * tgr_ref and tgr_exp - tgr_ref > 50, (i, tgr_ref, tgr_exp)
            assert v[2] / v[1] > 1.728  # RECIST PD equivalent (+20 % diameter) on volume
        else:
            assert tgr_exp < 2 * max(tgr_ref, 0.0) + 5.0 or tgr_exp < 0, (plan.phenotype, tgr_ref, tgr_exp)
        if plan.phenotype == "responder":
            assert v[2] / v[1] < 0.6  # clear shrinkage (typically RECIST PR)


def test_signal_strength_zero_makes_texture_independent_of_phenotype() -> None:
    n = 40
    s0 = SynthSettings(n_patients=n, seed=21, signal_strength=0.0)
    s1 = SynthSettings(n_patients=n, seed=21, signal_strength=1.5)
    plans0 = [plan_patient(s0, i) for i in range(n)]
    plans1 = [plan_patient(s1, i) for i in range(n)]
    latent = np.array([p.latent_risk for p in plans0])
    hpd = np.array([p.phenotype == "hyperprogressor" for p in plans0])
    # strength 0: texture is exactly the phenotype-blind base draw, no rim
    assert all(p.texture == p.texture_base for p in plans0)
    assert all(p.texture.rim_hu == 0.0 for p in plans0)
    # the same patient with another phenotype gets the same texture at strength 0
    forced = [
        plan_patient(SynthSettings(n_patients=n, seed=21, signal_strength=0.0, phenotypes=[ph]), 4)
        for ph in ("hyperprogressor", "responder")
    ]
    assert forced[0].texture == forced[1].texture
    sd0 = np.log([p.texture.sd_hu for p in plans0])
    sd1 = np.log([p.texture.sd_hu for p in plans1])
    assert abs(np.corrcoef(latent, sd0)[0, 1]) < 0.35
    assert np.corrcoef(latent, sd1)[0, 1] > 0.7
    # and the latent risk does carry the phenotype (so the signal at s > 0 is informative)
    assert latent[hpd].mean() > latent[~hpd].mean() + 0.4
