"""measure_lesion on reference data (IBSI), fragments, errors; the diameter helpers; lesions_table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from measure_phantoms import ellipsoid

from hpd_imaging.domain import (
    ImageGeometry,
    Lesion,
    LesionMask,
    LesionMeasurement,
    MaskSource,
    PatientCourse,
)
from hpd_imaging.errors import MeasurementError
from hpd_imaging.measure import (
    LESIONS_COLUMNS,
    brute_force_max_diameter,
    lesions_table,
    max_diameter,
    measure_lesion,
    perpendicular_width,
)
from hpd_imaging.settings.measure import MeasureSettings


def _read_mask(path: Path) -> LesionMask:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.ReadImage(str(path))
    return LesionMask(
        mask=sitk.GetArrayFromImage(image) > 0,
        geometry=ImageGeometry.from_sitk(image),
        label=path.name,
        source=MaskSource.LABELMAP,
        source_path=str(path),
    )


def test_ibsi_digital_phantom_morphology(shared_data):
    """IBSI 1 reference values (value; tolerance) for the digital phantom's morphological features."""
    path = shared_data / "ibsi" / "ibsi_1_digital_phantom" / "nifti" / "mask" / "mask.nii.gz"
    if not path.exists():
        pytest.skip(f"IBSI digital phantom not found at {path}")
    m = measure_lesion(_read_mask(path))
    assert m.mesh_volume_mm3 == pytest.approx(556, abs=4)  # morph_volume
    assert m.volume_mm3 == pytest.approx(592, abs=4)  # morph_vol_approx
    assert m.surface_area_mm2 == pytest.approx(388, abs=3)  # morph_area_mesh
    assert m.sphericity == pytest.approx(0.843, abs=0.005)  # morph_sphericity
    assert m.max_3d_diameter_mm == pytest.approx(13.1, abs=0.1)  # morph_diam


@pytest.mark.parametrize(("case", "voxels"), [("STS_001", 117_145), ("STS_025", 9_655)])
def test_ibsi_sarcoma_reference_mask_volume(real_data, case, voxels):
    """The voxel-count volume equals the IBSI/MIRP reference mask's voxel count x voxel volume, exactly."""
    import SimpleITK as sitk  # noqa: N813

    path = real_data / "ibsi_sts" / "nifti" / case / "CT_mask.nii.gz"
    if not path.exists():
        pytest.skip(f"IBSI sarcoma reference mask not found at {path}")
    image = sitk.ReadImage(str(path))
    reference = int(np.count_nonzero(sitk.GetArrayFromImage(image)))
    voxel_volume = float(np.prod(image.GetSpacing()))
    assert reference == voxels
    m = measure_lesion(_read_mask(path))
    assert m.voxel_count == voxels
    assert m.volume_mm3 == voxels * voxel_volume
    # a real tumour: diameters are consistent with each other
    assert m.short_axis_mm <= m.longest_axial_diameter_mm <= m.max_3d_diameter_mm + 1e-9
    assert 0 < m.sphericity < 1


def _sphere_mask(geometry: ImageGeometry, centres_mm, radii_mm) -> np.ndarray:
    k, j, i = np.indices(geometry.shape)
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    xyz = geometry.index_to_lps(ijk)
    out = np.zeros(geometry.shape, dtype=bool)
    for c, r in zip(centres_mm, radii_mm, strict=True):
        out |= np.sum((xyz - np.asarray(c)) ** 2, axis=-1) <= r * r
    return out


def test_fragmented_lesion_sums_long_axes():
    """RECIST 1.1: the long axes of the fragments of one lesion are summed, and the record is flagged."""
    g = ImageGeometry(shape=(30, 60, 80), spacing_mm=(0.8, 0.8, 1.0), origin_mm=(0.0, 0.0, 0.0))
    centres, radii = [(16.0, 24.0, 15.0), (44.0, 24.3, 14.6)], [9.0, 6.0]
    both = LesionMask(_sphere_mask(g, centres, radii), g, "L1", MaskSource.SEG)
    one = measure_lesion(LesionMask(_sphere_mask(g, centres[:1], radii[:1]), g, "a", MaskSource.SEG))
    two = measure_lesion(LesionMask(_sphere_mask(g, centres[1:], radii[1:]), g, "b", MaskSource.SEG))
    m = measure_lesion(both)
    assert m.is_fragmented and m.n_fragments == 2
    assert m.longest_axial_diameter_mm == pytest.approx(
        one.longest_axial_diameter_mm + two.longest_axial_diameter_mm
    )
    assert m.short_axis_mm == pytest.approx(one.short_axis_mm + two.short_axis_mm)
    assert m.voxel_count == one.voxel_count + two.voxel_count
    # the 3D diameter is the whole mask's (spans both pieces): about 44-16 + 9 + 6 = 43 mm
    assert m.max_3d_diameter_mm == pytest.approx(43.0, abs=1.0)
    # the key slice and end points are those of the larger fragment
    assert m.long_axis_slice_index == one.long_axis_slice_index
    # a threshold on fragment size drops the small piece from the RECIST sum, not from the volume
    big_only = measure_lesion(both, settings=MeasureSettings(min_fragment_volume_mm3=1000.0))
    assert not big_only.is_fragmented
    assert big_only.longest_axial_diameter_mm == pytest.approx(one.longest_axial_diameter_mm)
    assert big_only.voxel_count == m.voxel_count


def test_diagonal_neighbours_are_one_piece_by_default():
    g = ImageGeometry(shape=(3, 4, 4), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    mask = np.zeros(g.shape, dtype=bool)
    mask[1, 1, 1] = mask[1, 2, 2] = True
    assert measure_lesion(LesionMask(mask, g, "x", MaskSource.SEG)).n_fragments == 1
    six = measure_lesion(
        LesionMask(mask, g, "x", MaskSource.SEG), settings=MeasureSettings(fragment_connectivity=6)
    )
    assert six.n_fragments == 2 and six.is_fragmented


def test_single_voxel_lesion():
    """One voxel of 0.8 x 0.8 x 5 mm: the outline is the diamond through the edge midpoints."""
    g = ImageGeometry(shape=(3, 3, 3), spacing_mm=(0.8, 0.8, 5.0), origin_mm=(0.0, 0.0, 0.0))
    mask = np.zeros(g.shape, dtype=bool)
    mask[1, 1, 1] = True
    m = measure_lesion(LesionMask(mask, g, "dot", MaskSource.SEG))
    assert m.voxel_count == 1 and m.volume_mm3 == pytest.approx(3.2)
    assert m.longest_axial_diameter_mm == pytest.approx(0.8)
    assert m.short_axis_mm == pytest.approx(0.8)
    assert m.max_3d_diameter_mm == pytest.approx(5.0)
    assert m.centroid_mm == pytest.approx((0.8, 0.8, 5.0))


def test_empty_mask_raises_naming_lesion_and_file():
    g = ImageGeometry(shape=(4, 4, 4), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    mask = LesionMask(
        np.zeros(g.shape, dtype=bool), g, "Liver met 2", MaskSource.SEG, source_path="/x/seg.dcm"
    )
    with pytest.raises(
        MeasurementError, match=r"/x/seg\.dcm: lesion 'Liver met 2'.*expected a non-empty mask, got 0"
    ):
        measure_lesion(mask)


def test_hull_diameter_equals_brute_force():
    rng = np.random.default_rng(7)
    for pts in (
        rng.normal(size=(3000, 3)) * [30, 10, 5],
        rng.uniform(size=(2500, 2)),
        rng.normal(size=(5, 3)),
    ):
        d, a, b = max_diameter(pts)
        assert d == pytest.approx(brute_force_max_diameter(pts), abs=1e-12)
        assert np.linalg.norm(a - b) == pytest.approx(d, abs=1e-12)
    # degenerate (coplanar) 3D set: Qhull cannot build a hull; the fallback still answers exactly
    flat = np.c_[rng.uniform(size=(200, 2)), np.zeros(200)]
    assert max_diameter(flat)[0] == pytest.approx(brute_force_max_diameter(flat), abs=1e-12)
    for case in (ellipsoid((12.0, 7.0, 5.0), (0.7, 0.7, 1.25), angles_deg=(30.0, 20.0, 10.0)),):
        from hpd_imaging.measure.lesion import lesion_surface

        verts, _ = lesion_surface(case.mask)
        assert max_diameter(verts)[0] == pytest.approx(brute_force_max_diameter(verts), abs=1e-9)


def _edges(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return poly, np.roll(poly, -1, axis=0)


def test_perpendicular_width_rhombus_and_rectangle():
    # rhombus with diagonals 10 (x) and 4 (y): the widest perpendicular chord is the short diagonal, 4
    rhombus = np.array([[0, 0], [5, 2], [10, 0], [5, -2]], dtype=float)
    w, lo, hi = perpendicular_width(*_edges(rhombus), np.array([0.0, 0]), np.array([10.0, 0]))
    assert w == pytest.approx(4.0) and lo == pytest.approx([5, -2]) and hi == pytest.approx([5, 2])
    # a 6 x 3 rectangle rotated by 30 degrees, long axis along its length: width 3
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rect = np.array([[0, 0], [6, 0], [6, 3], [0, 3]], dtype=float) @ np.array([[c, s], [-s, c]])
    w, _, _ = perpendicular_width(*_edges(rect), rect[0], rect[1])
    assert w == pytest.approx(3.0)


def test_perpendicular_width_is_exact_on_a_non_convex_outline():
    """The maximum falls between sampled angles/positions of a naive method; check against a dense scan."""
    rng = np.random.default_rng(3)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radii = rng.uniform(3, 10, 40)
    poly = np.c_[radii * np.cos(angles), radii * np.sin(angles)]
    d, a, b = max_diameter(poly)
    w, lo, hi = perpendicular_width(*_edges(poly), a, b)
    # dense reference: chord extent on 200,000 perpendicular lines
    e_u = (b - a) / d
    e_v = np.array([-e_u[1], e_u[0]])
    u = (poly - a) @ e_u
    v = (poly - a) @ e_v
    u2, v2 = np.roll(u, -1), np.roll(v, -1)
    best = 0.0
    for c in np.linspace(u.min(), u.max(), 200_000)[::50]:  # coarse pass on 4,000 lines
        t = (c - u) / np.where(u2 != u, u2 - u, np.nan)
        ok = (t >= 0) & (t <= 1)
        if ok.any():
            vv = (v + t * (v2 - v))[ok]
            best = max(best, vv.max() - vv.min())
    assert w >= best - 1e-9  # exact maximum is never below any sampled chord
    assert w == pytest.approx(best, abs=0.05)
    assert abs(np.dot(hi - lo, b - a)) < 1e-9 and np.linalg.norm(hi - lo) == pytest.approx(w)


def test_lesions_table_columns_and_rows():
    m = LesionMeasurement(
        lesion_id="L1",
        voxel_count=10,
        volume_mm3=12.5,
        longest_axial_diameter_mm=5.0,
        short_axis_mm=3.0,
        max_3d_diameter_mm=6.0,
        organ="lung",
        scan_date=dt.date(2024, 1, 5),
        series_uid="1.2.3",
        mask_source="seg",
        label="Lesion 1",
    )
    gone = LesionMeasurement(
        lesion_id="L1",
        voxel_count=0,
        volume_mm3=0.0,
        longest_axial_diameter_mm=0.0,
        short_axis_mm=0.0,
        max_3d_diameter_mm=0.0,
        scan_date=dt.date(2024, 3, 1),
    )
    course = PatientCourse("P1", lesions=(Lesion("L1", "uid"),), measurements=(gone, m))
    table = lesions_table([course])
    assert tuple(table.columns) == LESIONS_COLUMNS
    assert list(table.scan_date) == [dt.date(2024, 1, 5), dt.date(2024, 3, 1)]
    assert list(table.patient_id) == ["P1", "P1"]
    assert table.loc[0, "volume_mm3"] == 12.5 and table.loc[1, "longest_axial_diameter_mm"] == 0.0
    assert lesions_table([]).columns.tolist() == list(LESIONS_COLUMNS)
