"""Unit tests of the CT loader's geometry rules on tiny synthetic series written with pydicom.

Pixel values are chosen as *linear functions of the physical position*, so that resampled values can be
checked exactly (linear interpolation reproduces a linear function) and any misplacement shows up as a
wrong number.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from io_dicom_writers import write_ct_series

from hpd_imaging.errors import DicomReadError, GeometryError, InputLimitError
from hpd_imaging.io import LoaderSettings, _geometry, load_ct

RESAMPLE = LoaderSettings(irregular_geometry="resample")
ROWS, COLS = 6, 7


def z_slices(zs: list[float], base: int = 1000) -> list[np.ndarray]:
    """Stored value = base + 10 * z (constant over each slice), so a slice's value names its position."""
    return [np.full((ROWS, COLS), base + round(10 * z), dtype=np.int16) for z in zs]


def axial(zs: list[float]) -> list[tuple[float, float, float]]:
    return [(-3.0, -2.5, z) for z in zs]


def test_regular_series_sorted_by_position_not_name_or_instance_number(tmp_path: Path) -> None:
    zs = [4.0, 0.0, 8.0, 2.0, 6.0]
    # file names and InstanceNumbers deliberately disagree with the spatial order
    write_ct_series(
        tmp_path, axial(zs), z_slices(zs), names=["a", "e", "b", "d", "c"], instance_numbers=[1, 2, 3, 4, 5]
    )
    ct = load_ct(tmp_path)
    assert ct.hu.shape == (5, ROWS, COLS)
    np.testing.assert_array_equal(ct.hu[:, 0, 0], [1000 - 1024 + 10 * z for z in (0, 2, 4, 6, 8)])
    assert ct.geometry.spacing_mm == pytest.approx((1.0, 1.0, 2.0))
    assert ct.geometry.origin_mm == pytest.approx((-3.0, -2.5, 0.0))
    assert ct.geometry.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert ct.hu.dtype == np.int16
    assert ct.provenance["slice_positions_mm"] == pytest.approx((0, 2, 4, 6, 8))


def test_reversed_order_files_give_ascending_stack(tmp_path: Path) -> None:
    zs = [10.0, 7.5, 5.0, 2.5]  # written head-first, positions decreasing with file order
    files = write_ct_series(tmp_path, axial(zs), z_slices(zs))
    ct = load_ct(files)  # an explicit file list works like a folder
    assert ct.geometry.origin_mm[2] == pytest.approx(2.5)
    np.testing.assert_array_equal(ct.hu[:, 0, 0], [1025 - 1024, 1050 - 1024, 1075 - 1024, 1100 - 1024])


@pytest.mark.parametrize(
    ("slope", "intercept", "dtype"),
    [
        (1.0, -1024.0, np.int16),
        (2.0, -1000.0, np.int16),
        (0.5, -1024.0, np.float32),
        (1.0, -1024.5, np.float32),
    ],
)
def test_rescale_slope_and_intercept_give_hu(
    tmp_path: Path, slope: float, intercept: float, dtype: type
) -> None:
    stored = [np.arange(ROWS * COLS, dtype=np.int16).reshape(ROWS, COLS) * (n + 1) for n in range(3)]
    write_ct_series(tmp_path, axial([0.0, 1.0, 2.0]), stored, slope=slope, intercept=intercept)
    ct = load_ct(tmp_path)
    assert ct.hu.dtype == dtype
    expected = np.stack(stored).astype(np.float64) * slope + intercept
    np.testing.assert_array_equal(ct.hu.astype(np.float64), expected)


def test_unsigned_16_bit_with_intercept_does_not_overflow(tmp_path: Path) -> None:
    stored = [np.full((ROWS, COLS), 60000, dtype=np.uint16)] * 2
    write_ct_series(tmp_path, axial([0.0, 1.0]), stored, pixel_representation=0)
    ct = load_ct(tmp_path)
    assert ct.hu.dtype == np.float32  # 60000 - 1024 does not fit int16
    assert float(ct.hu[0, 0, 0]) == 60000 - 1024


def test_missing_slice_is_refused_with_the_gap_named(tmp_path: Path) -> None:
    zs = [0.0, 2.0, 4.0, 8.0, 10.0]
    write_ct_series(tmp_path, axial(zs), z_slices(zs))
    with pytest.raises(
        GeometryError, match=r"1 missing slice\(s\): gap 4\.000 mm between 4\.000 and 8\.000 mm"
    ):
        load_ct(tmp_path)


def test_missing_slice_resampled_when_asked(tmp_path: Path) -> None:
    zs = [0.0, 2.0, 4.0, 8.0, 10.0]
    write_ct_series(tmp_path, axial(zs), z_slices(zs))
    ct = load_ct(tmp_path, RESAMPLE)
    assert ct.hu.shape[0] == 6
    assert ct.geometry.spacing_mm[2] == pytest.approx(2.0)
    # the slice at z = 6 mm is interpolated between 4 and 8 mm: 1000 + 60 - 1024
    np.testing.assert_allclose(ct.hu[:, 3, 3], [1000 + 10 * z - 1024 for z in (0, 2, 4, 6, 8, 10)])
    assert "missing slice" in ct.provenance["resampled"]
    assert ct.provenance["source_gaps_mm"] == pytest.approx((2, 2, 4, 2))


def test_uneven_spacing_is_refused_and_resampled_at_the_smallest_gap(tmp_path: Path) -> None:
    zs = [0.0, 2.0, 4.5, 6.5]
    write_ct_series(tmp_path, axial(zs), z_slices(zs))
    with pytest.raises(GeometryError, match=r"uneven slice spacing: gaps from 2\.000 to 2\.500 mm"):
        load_ct(tmp_path)
    ct = load_ct(tmp_path, RESAMPLE)
    # never coarser than the smallest gap: ceil(6.5 / 2) + 1 = 5 planes, 1.625 mm apart, ending on the last
    assert ct.hu.shape[0] == 5
    assert ct.geometry.spacing_mm[2] == pytest.approx(1.625)
    z_target = np.arange(5) * 1.625
    np.testing.assert_allclose(ct.hu[:, 2, 2], 1000 + 10 * z_target - 1024, atol=1e-3)


def test_spacing_within_tolerance_is_regular(tmp_path: Path) -> None:
    # deviations of 0.005 mm are below max(0.01 mm, 1 % of 2 mm) = 0.02 mm
    zs = [0.0, 2.0, 4.005, 6.0]
    write_ct_series(tmp_path, axial(zs), z_slices(zs))
    ct = load_ct(tmp_path)
    assert ct.geometry.spacing_mm[2] == pytest.approx(2.0, abs=0.006)
    assert "resampled" not in ct.provenance
    tight = LoaderSettings(spacing_tolerance_mm=0.001, spacing_tolerance_rel=0.001)
    with pytest.raises(GeometryError, match="uneven slice spacing"):
        load_ct(tmp_path, tight)


def _tilted_series(tmp_path: Path, gantry_tilt: float | None) -> tuple[float, list[float]]:
    """Axial IOP, but each slice's origin shifted 1 mm in y per 2 mm in z: a sheared (tilted) stack.

    Stored value = 10 * y + 3 * z + 2 * x at each pixel centre (physical LPS), so a correct linear resampling
    returns the same function at its own voxel centres.
    """
    zs = [0.0, 2.0, 4.0, 6.0, 8.0]
    shift_per_mm = 0.5  # tan(tilt)

    def pixels(n: int) -> np.ndarray:
        z = zs[n]
        y = -2.5 + shift_per_mm * z + np.arange(ROWS)[:, None] * 1.0
        x = -3.0 + np.arange(COLS)[None, :] * 1.0
        return (10 * y + 3 * z + 2 * x + 0 * x).astype(np.int16)

    positions = [(-3.0, -2.5 + shift_per_mm * z, z) for z in zs]
    write_ct_series(tmp_path, positions, pixels, intercept=0.0, gantry_tilt=gantry_tilt)
    return math.degrees(math.atan(shift_per_mm)), zs


def test_gantry_tilt_is_refused_with_the_angle(tmp_path: Path) -> None:
    _tilted_series(tmp_path, gantry_tilt=26.6)
    with pytest.raises(
        GeometryError, match=r"gantry tilt 26\.6 deg .*GantryDetectorTilt \(0018,1120\) says 26\.6"
    ):
        load_ct(tmp_path)


def test_gantry_tilt_resampled_onto_orthogonal_grid_in_physical_space(tmp_path: Path) -> None:
    tilt, zs = _tilted_series(tmp_path, gantry_tilt=None)
    ct = load_ct(tmp_path, RESAMPLE)
    g = ct.geometry
    assert g.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert g.spacing_mm == pytest.approx((1.0, 1.0, 2.0))
    # the grid covers the sheared stack: 6 rows + 4 mm of shift = 10 rows
    assert g.shape == (5, ROWS + 4, COLS)
    assert ct.provenance["resampled"].startswith("gantry tilt 26.6 deg")
    k, j, i = np.meshgrid(*(np.arange(n) for n in g.shape), indexing="ij")
    xyz = g.index_to_lps(np.stack([i, j, k], axis=-1).astype(float))
    expected = 10 * xyz[..., 1] + 3 * xyz[..., 2] + 2 * xyz[..., 0]
    # inside the acquired field of view: each target plane coincides with one acquired plane, rows shifted
    inside = np.zeros(g.shape, dtype=bool)
    for t, z in enumerate(zs):
        first_row = int(round(0.5 * z))
        inside[t, first_row : first_row + ROWS] = True
    np.testing.assert_allclose(ct.hu[inside], expected[inside], atol=1e-3)
    assert np.all(ct.hu[~inside] == -1024.0)  # outside the acquired field of view: fill value
    assert tilt == pytest.approx(26.565, abs=1e-3)


def test_gantry_tilt_tag_alone_is_only_a_hint(tmp_path: Path) -> None:
    zs = [0.0, 1.0, 2.0]
    write_ct_series(tmp_path, axial(zs), z_slices(zs), gantry_tilt=18.5)
    ct = load_ct(tmp_path)  # positions are orthogonal: nothing to refuse
    assert ct.geometry.shape == (3, ROWS, COLS)


def test_duplicate_positions_refused_even_when_resampling(tmp_path: Path) -> None:
    zs = [0.0, 1.0, 1.0, 2.0]
    write_ct_series(tmp_path, axial(zs), z_slices(zs))
    for settings in (LoaderSettings(), RESAMPLE):
        with pytest.raises(GeometryError, match=r"duplicate slice position: .* 1\.000 mm twice"):
            load_ct(tmp_path, settings)


def test_oblique_orientation_gives_matching_affine(tmp_path: Path) -> None:
    a = math.radians(30)
    row = (math.cos(a), math.sin(a), 0.0)
    col = (0.0, 0.0, -1.0)  # coronal-ish oblique
    normal = np.cross(row, col)
    origin = np.array([10.0, -20.0, 30.0])
    positions = [origin + 2.5 * n * normal for n in range(4)]
    write_ct_series(
        tmp_path,
        positions[::-1],
        z_slices([0, 1, 2, 3])[::-1],
        orientation=(*row, *col),
        pixel_spacing=(0.8, 0.6),
    )
    ct = load_ct(tmp_path)
    g = ct.geometry
    np.testing.assert_allclose(g.direction_matrix[:, 0], row, atol=1e-6)
    np.testing.assert_allclose(g.direction_matrix[:, 1], col, atol=1e-6)
    np.testing.assert_allclose(g.direction_matrix[:, 2], normal, atol=1e-6)
    assert g.spacing_mm == pytest.approx((0.6, 0.8, 2.5))  # (i, j) = (between columns, between rows)
    for k in range(4):  # voxel (2, 3, k) sits where IPP_k + 2 * 0.6 * row + 3 * 0.8 * col says
        np.testing.assert_allclose(
            g.index_to_lps(np.array([2.0, 3.0, k])),
            positions[k] + 1.2 * np.array(row) + 2.4 * np.array(col),
            atol=1e-5,
        )
    np.testing.assert_array_equal(ct.hu[:, 0, 0], [1000 - 1024 + 10 * n for n in range(4)])


def test_mixed_orientation_and_matrix_are_refused(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "a", axial([0.0, 1.0]), z_slices([0, 1]), series_uid="1.2.3")
    write_ct_series(
        tmp_path / "a",
        [(0.0, 0.0, 2.0)],
        z_slices([2]),
        orientation=(1, 0, 0, 0, 0, -1),
        names=["scout.dcm"],
        series_uid="1.2.3",
    )
    with pytest.raises(GeometryError, match=r"mixed orientation: .*scout\.dcm"):
        load_ct(tmp_path / "a")
    write_ct_series(tmp_path / "b", axial([0.0, 1.0]), z_slices([0, 1]), series_uid="1.2.4")
    write_ct_series(
        tmp_path / "b", [(0.0, 0.0, 2.0)], [np.zeros((3, 3))], names=["small.dcm"], series_uid="1.2.4"
    )
    with pytest.raises(GeometryError, match=r"mixed matrix: expected 6x7 .*got 3x3 in .*small\.dcm"):
        load_ct(tmp_path / "b")


def test_folder_with_two_series_and_non_dicom_files(tmp_path: Path) -> None:
    write_ct_series(tmp_path, axial([0.0, 1.0]), z_slices([0, 1]), names=["a1", "a2"])
    (tmp_path / "README.txt").write_text("not DICOM")
    assert load_ct(tmp_path).hu.shape[0] == 2  # the text file is skipped
    write_ct_series(tmp_path, axial([0.0, 1.0]), z_slices([0, 1]), names=["b1", "b2"])
    with pytest.raises(DicomReadError, match="expected one series, got 2 SeriesInstanceUIDs"):
        load_ct(tmp_path)


def test_single_slice_uses_slice_thickness(tmp_path: Path) -> None:
    write_ct_series(tmp_path, axial([5.0]), z_slices([5.0]))
    ct = load_ct(tmp_path)
    assert ct.geometry.shape == (1, ROWS, COLS)
    assert ct.geometry.spacing_mm[2] == pytest.approx(1.0)


def test_empty_folder_and_voxel_limit(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DicomReadError, match="expected DICOM image files, found none"):
        load_ct(tmp_path / "empty")
    write_ct_series(tmp_path / "s", axial([0.0, 1.0]), z_slices([0, 1]))
    with pytest.raises(InputLimitError, match="exceeds max_ct_voxels 10"):
        load_ct(tmp_path / "s", LoaderSettings(max_ct_voxels=10))


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEGLSLossless", "JPEG2000Lossless"])
def test_compressed_transfer_syntaxes_decode_exactly(tmp_path: Path, syntax: str) -> None:
    import pydicom
    import pydicom.uid

    rng = np.random.default_rng(0)
    stored = [
        rng.integers(-1024, 3000, size=(64, 64)).astype(np.int16) for _ in range(3)
    ]  # J2K needs >= 32 px
    files = write_ct_series(tmp_path, axial([0.0, 1.0, 2.0]), stored)
    plain = load_ct(tmp_path)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(getattr(pydicom.uid, syntax))
        ds.save_as(f, enforce_file_format=True)
    assert str(pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID) == str(getattr(pydicom.uid, syntax))
    compressed = load_ct(tmp_path)
    np.testing.assert_array_equal(compressed.hu, plain.hu)
    assert compressed.provenance["transfer_syntaxes"] == [str(getattr(pydicom.uid, syntax))]


def test_nifti_ct_round_trip(tmp_path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 1000
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((1.0, 2.0, 3.0))
    image.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    ct = load_ct(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(ct.hu, arr)
    assert ct.geometry.spacing_mm == pytest.approx((0.7, 0.8, 2.5))
    assert ct.geometry.origin_mm == pytest.approx((1.0, 2.0, 3.0))
    assert ct.geometry.direction == pytest.approx((1, 0, 0, 0, -1, 0, 0, 0, 1))


def test_regular_decimal_spacing_is_the_clean_decimal(tmp_path: Path) -> None:
    """Positions -163.5 + 1.2 k as DS strings: their float differences are 1.2 +- 1e-14, the spacing is 1.2.

    (SimpleITK reports 1.199999999999999 here: it keeps the noise of its own arithmetic.)"""
    sitk = pytest.importorskip("SimpleITK")
    zs = [round(-163.5 + 1.2 * k, 4) for k in range(12)]
    gaps = np.diff(np.array(zs))
    assert not np.all(gaps == 1.2)  # the float noise this is about is really there
    write_ct_series(tmp_path, axial(zs), z_slices(zs))
    ct = load_ct(tmp_path)
    assert ct.geometry.spacing_mm[2] == 1.2
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    assert reader.Execute().GetSpacing()[2] == pytest.approx(1.2, abs=1e-12)


def test_only_float_noise_is_removed_from_the_spacing() -> None:
    """A gap that is not a 6-decimal number is kept as measured; noise below 1e-9 mm is removed."""
    clean = _geometry._without_float_noise
    assert clean(1.2000000000000028) == 1.2
    assert clean(0.6249999999999991) == 0.625
    assert clean(0.70312491) == 0.70312491  # 1e-8 mm from 0.703125: a real decimal, not noise
    assert clean(2.5000000015) == 2.5000000015
