"""Integration tests of the loaders on real public data (../shared/data/real, see its SOURCES.md).

Each test skips with a clear reason (via the ``real_data`` fixture) when the data is absent. Reference
numbers come from the data's own ground truth: the IBSI/MIRP NIfTI masks, dcmqi's liver SEG voxel count,
the uncompressed twin of a JPEG 2000 slice, the files' ImagePositionPatient values.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from hpd_imaging.domain import MaskSource
from hpd_imaging.errors import GeometryError
from hpd_imaging.io import LoaderSettings, detect_mask_source, load_ct, load_masks, read_rtstruct, read_seg

RESAMPLE = LoaderSettings(irregular_geometry="resample")


@pytest.fixture(scope="module")
def dcmqi(real_data: Path) -> Path:
    return real_data / "dcmqi_ct3_seg_sr" / "data" / "segmentations"


@pytest.mark.parametrize(("case", "n_voxels"), [("STS_001", 117_145), ("STS_025", 9_655)])
def test_ibsi_rtstruct_equals_reference_nifti_voxel_for_voxel(
    real_data: Path, case: str, n_voxels: int
) -> None:
    import SimpleITK as sitk  # noqa: N813

    base = real_data / "ibsi_sts"
    ct = load_ct(base / "dicom" / case / "CT" / "image")
    rtstruct = base / "dicom" / case / "CT" / "mask" / "RS.dcm"
    assert detect_mask_source(rtstruct) is MaskSource.RTSTRUCT
    (mask,) = load_masks(rtstruct, ct)
    reference_image = sitk.ReadImage(str(base / "nifti" / case / "CT_mask.nii.gz"))
    reference = sitk.GetArrayFromImage(reference_image) > 0
    assert mask.label == "GTV_Mass_CT"
    assert mask.voxel_count == n_voxels == int(reference.sum())
    np.testing.assert_array_equal(mask.mask, reference)
    # every contour reference is stale (uncropped TCIA instances): matched by geometry and said so
    assert any("stale references" in note for note in mask.notes)
    # the CT itself sits on the reference image grid
    ref_ct = sitk.ReadImage(str(base / "nifti" / case / "CT_image.nii.gz"))
    assert ct.geometry.shape == reference.shape
    np.testing.assert_allclose(ct.geometry.origin_mm, ref_ct.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(ct.geometry.spacing_mm, ref_ct.GetSpacing(), atol=1e-4)
    np.testing.assert_array_equal(ct.hu, sitk.GetArrayFromImage(ref_ct))


def test_dcmqi_liver_seg_on_ct_3slice(dcmqi: Path) -> None:
    ct = load_ct(dcmqi / "ct-3slice")
    (liver,) = read_seg(dcmqi / "liver.dcm", ct)
    assert liver.voxel_count == 107_098
    assert liver.label == "Liver" and liver.organ == "liver" and liver.source is MaskSource.SEG
    assert float(ct.hu[liver.mask].mean()) == pytest.approx(37.3, abs=0.1)  # soft tissue, not air: no flip


def test_dcmqi_overlapping_seg_gives_five_lesions(dcmqi: Path) -> None:
    ct = load_ct(dcmqi / "ct-3slice")
    masks = load_masks(dcmqi / "partial_overlaps.dcm", ct)
    assert [m.label for m in masks] == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]
    assert [m.label_value for m in masks] == [1, 2, 3, 4, 5]
    counts = [m.voxel_count for m in masks]
    assert all(c > 0 for c in counts)
    union = np.logical_or.reduce([m.mask for m in masks])
    assert int(union.sum()) < sum(counts)  # the segments overlap, and each keeps its overlapping voxels


def test_j2k_compressed_seg_reads_like_uncompressed(real_data: Path, dcmqi: Path) -> None:
    ct = load_ct(dcmqi / "ct-3slice")
    (plain,) = read_seg(dcmqi / "liver.dcm", ct)
    (j2k,) = read_seg(real_data / "pydicom_small" / "data_store" / "data" / "liver_j2k.dcm", ct)
    np.testing.assert_array_equal(plain.mask, j2k.mask)


def test_dcmqi_nrrd_label_map_matches_seg(dcmqi: Path) -> None:
    ct = load_ct(dcmqi / "ct-3slice")
    (nrrd,) = load_masks(dcmqi / "liver_seg.nrrd", ct)
    (seg,) = load_masks(dcmqi / "liver.dcm", ct)
    np.testing.assert_array_equal(nrrd.mask, seg.mask)


def test_legacy_enhanced_ct_equals_its_single_frame_series(dcmqi: Path) -> None:
    single = load_ct(dcmqi / "24x38x3" / "image")
    multi = load_ct(dcmqi / "24x38x3" / "multiframe" / "mf.dcm")
    assert multi.geometry.is_close(single.geometry)
    np.testing.assert_array_equal(multi.hu, single.hu)
    (seg,) = load_masks(dcmqi / "24x38x3" / "seg" / "label.seg", single)
    (nrrd,) = load_masks(dcmqi / "24x38x3" / "nrrd" / "label.nrrd", single)
    np.testing.assert_array_equal(seg.mask, nrrd.mask)


def test_j2k_slice_decodes_bit_identical_to_uncompressed_twin(real_data: Path) -> None:
    data = real_data / "pydicom_small" / "data_store" / "data"
    j2k = load_ct([data / "693_J2KR.dcm"])
    raw = load_ct([data / "693_UNCR.dcm"])
    assert j2k.provenance["transfer_syntaxes"] == ["1.2.840.10008.1.2.4.90"]
    assert j2k.hu.dtype == raw.hu.dtype
    np.testing.assert_array_equal(j2k.hu, raw.hu)
    assert j2k.geometry.is_close(raw.geometry)


def test_enhanced_ct_is_read_through_per_frame_groups(real_data: Path) -> None:
    path = real_data / "pydicom_small" / "data_store" / "data" / "eCT_Supplemental.dcm"
    ct = load_ct(path)
    ds = pydicom.dcmread(path)
    assert ct.hu.shape == (2, 512, 512)
    assert ct.geometry.spacing_mm == pytest.approx((0.388672, 0.388672, 10.0))
    # IOP (-1, 0, 0, 0, 1, 0): normal = row x column = (0, 0, -1); sorted along it, z = -149 comes first
    assert ct.geometry.direction == pytest.approx((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert ct.geometry.origin_mm == pytest.approx((99.5, -301.5, -149.0))
    stored = ds.pixel_array
    for k, frame in enumerate(ct.provenance["frame_order"]):
        np.testing.assert_array_equal(ct.hu[k], stored[frame - 1].astype(np.float64) - 1024.0)


def test_totalsegmentator_j2k_series_with_blank_uids_and_las_labels(real_data: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    base = real_data / "totalseg_ct_jpeg2000" / "tests" / "reference_files"
    ct = load_ct(base / "example_ct_dicom")
    assert ct.hu.shape == (20, 512, 512)
    assert ct.series_instance_uid == ""  # blanked by de-identification, and still read
    assert ct.geometry.spacing_mm == pytest.approx((0.9765625, 0.9765625, 2.0))
    labels_path = base / "example_seg_dicom.nii.gz"
    stored = sitk.ReadImage(str(labels_path))
    # the NIfTI is LAS: SimpleITK reports LPS direction diag(1, -1, 1); its first row is the CT's last row
    assert stored.GetDirection() == pytest.approx((1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert stored.TransformIndexToPhysicalPoint((0, 0, 0)) == pytest.approx(
        tuple(ct.geometry.index_to_lps(np.array([0.0, 511.0, 0.0]))), abs=1e-3
    )
    masks = {m.label_value: m for m in load_masks(labels_path, ct)}
    assert len(masks) == 31
    flipped = np.flip(sitk.GetArrayFromImage(stored), axis=1)  # LAS -> LPS rows, done by hand for the check
    np.testing.assert_array_equal(masks[5].mask, flipped == 5)
    # sanity statistic: liver (TotalSegmentator label 5) is soft tissue, ribs/vertebrae are bone
    assert 40 < float(ct.hu[masks[5].mask].mean()) < 150
    assert float(ct.hu[masks[69].mask].mean()) > 300


def test_ge_gantry_tilt_refused_by_default_with_the_angle(real_data: Path) -> None:
    with pytest.raises(GeometryError, match=r"gantry tilt 18\.5 deg") as info:
        load_ct(real_data / "dcm_qa_ct_GE_tilt" / "In" / "GE")
    assert "dcm_qa_ct_GE_tilt" in str(info.value)
    assert "uneven slice spacing: gaps from 1.081 to 6.999 mm" in str(info.value)


def test_ge_gantry_tilt_resampled_with_correct_physical_extent(real_data: Path) -> None:
    folder = real_data / "dcm_qa_ct_GE_tilt" / "In" / "GE"
    ct = load_ct(folder, RESAMPLE)
    files = sorted(folder.glob("*.dcm"))
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    ipp = np.array([[float(x) for x in h.ImagePositionPatient] for h in headers])
    iop = np.array([float(x) for x in headers[0].ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    z = np.sort(ipp @ normal)
    g = ct.geometry
    # orthogonal grid on the acquisition's own axes: k along the slice normal, not along the IPP step
    np.testing.assert_allclose(g.slice_normal, normal, atol=1e-6)
    assert math.degrees(
        math.acos(float(np.dot(normal, (ipp[-1] - ipp[0]) / np.linalg.norm(ipp[-1] - ipp[0]))))
    ) == pytest.approx(18.5, abs=0.05)
    # slices span exactly the acquired extent along the normal (144.09 mm), at <= the smallest gap or the
    # dcm2niix-style cap of 2x the slice count (56 planes: 2.62 mm, as dcm2niix's _Tilt_Eq output)
    assert g.shape[0] == 56
    assert (g.shape[0] - 1) * g.spacing_mm[2] == pytest.approx(z[-1] - z[0], abs=1e-4)
    assert z[-1] - z[0] == pytest.approx(144.09, abs=0.01)
    assert g.spacing_mm[:2] == pytest.approx((0.488281, 0.488281), abs=1e-6)
    # in-plane: the field of view grows by the shear (tan 18.5 deg x 144.09 mm = 48.2 mm = 99 rows)
    assert g.shape[1:] == (610, 512)
    # first and last target planes coincide with the first and last acquired planes: compare bone centroids
    for t, src_index in ((0, 0), (g.shape[0] - 1, len(headers) - 1)):
        order = np.argsort(ipp @ normal)
        h = pydicom.dcmread(files[order[src_index]])
        src = h.pixel_array.astype(float) * float(h.RescaleSlope) + float(h.RescaleIntercept)
        jj, ii = np.nonzero(src > 300)
        src_xyz = (
            np.array([float(x) for x in h.ImagePositionPatient])
            + np.mean(ii) * 0.488281 * row
            + np.mean(jj) * 0.488281 * col
        )
        jj, ii = np.nonzero(ct.hu[t] > 300)
        out_xyz = g.index_to_lps(np.array([np.mean(ii), np.mean(jj), t]))
        np.testing.assert_allclose(out_xyz, src_xyz, atol=0.3)
    assert "gantry tilt 18.5 deg" in ct.provenance["resampled"]


def test_pydicom_outlier_slice_series_refused_with_the_gap(real_data: Path) -> None:
    folder = (
        real_data / "pydicom_small" / "src" / "pydicom" / "data" / "test_files" / "dicomdirtests" / "77654033"
    )
    with pytest.raises(
        GeometryError, match=r"CT2: irregular slice geometry: .*gap 202\.500 mm between -99\.480"
    ):
        load_ct(folder / "CT2")


def test_rtutils_missing_slice_reference_warns_and_keeps_what_is_present(
    real_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from matplotlib.path import Path as PolygonPath

    folder = real_data / "rtutils_mock" / "tests" / "mock_data"
    ct = load_ct(folder)
    with caplog.at_level(logging.WARNING, logger="hpd_imaging.io.rtstruct"):
        masks = read_rtstruct(folder / "non_existent_reference_rt.dcm", ct)
    assert len(masks) == 4
    assert any(
        "outside the CT volume (slices missing from the series?)" in r.getMessage() for r in caplog.records
    )
    # independent reference: even-odd point-in-polygon at pixel centres (matplotlib) of the present contours
    ds = pydicom.dcmread(folder / "non_existent_reference_rt.dcm")
    g = ct.geometry
    jj, ii = np.mgrid[0 : g.shape[1], 0 : g.shape[2]]
    centres = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(float)
    for mask, roi in zip(masks, ds.ROIContourSequence, strict=True):
        expected = np.zeros(g.shape, dtype=bool)
        for contour in roi.ContourSequence:
            ijk = g.lps_to_index(np.asarray(contour.ContourData, dtype=float).reshape(-1, 3))
            k = int(round(ijk[0, 2]))
            if 0 <= k < g.shape[0]:
                inside = PolygonPath(ijk[:, :2]).contains_points(centres).reshape(g.shape[1:])
                expected[k] ^= inside
        assert mask.voxel_count > 1000
        # boundary pixels may differ between the two point-in-polygon codes; no more than 1 %
        assert np.count_nonzero(mask.mask ^ expected) <= 0.01 * mask.voxel_count
        assert any("outside the CT volume" in n for n in mask.notes)


def test_rtutils_new_frame_of_reference_accepted_when_references_resolve(real_data: Path) -> None:
    folder = real_data / "rtutils_mock" / "tests" / "mock_data"
    ct = load_ct(folder)
    (mask,) = read_rtstruct(folder / "rt.dcm", ct)
    assert mask.voxel_count > 0 and mask.mask[1].sum() == 0  # both contours on the first slice (z = 60 mm)
    assert "referenced CT instances are in the series" in mask.notes[0]


def test_rtutils_oblique_series_geometry(real_data: Path) -> None:
    folder = real_data / "rtutils_mock" / "tests" / "oriented_data"
    ct = load_ct(folder)  # info.txt in the folder is skipped
    assert ct.hu.shape == (3, 50, 100)
    ds = pydicom.dcmread(folder / "1.dcm")
    np.testing.assert_allclose(
        ct.geometry.index_to_lps(np.array([0.0, 0.0, 1.0])),
        [float(x) for x in ds.ImagePositionPatient],
        atol=1e-4,
    )
