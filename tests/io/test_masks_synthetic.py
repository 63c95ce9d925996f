"""Unit tests of the mask readers (RTSTRUCT, label maps, DICOM SEG) on tiny synthetic files.

The CT grid is 1 mm isotropic with origin (0, 0, 0), so a point's LPS millimetres are its (i, j, k) index and
every expected voxel count can be worked out by hand from pixel-centre inclusion.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from io_dicom_writers import square, write_ct_series, write_rtstruct

from hpd_imaging.domain import CtImage, ImageGeometry, MaskSource
from hpd_imaging.errors import DicomReadError, InputLimitError, MaskError
from hpd_imaging.io import (
    MASK_READERS,
    LoaderSettings,
    detect_mask_source,
    load_ct,
    load_masks,
    read_labelmap,
    read_rtstruct,
    read_seg,
)

FOR_UID = "1.2.826.0.1.3680043.8.498.77"
N_K, N_J, N_I = 4, 20, 24


@pytest.fixture
def ct_files(tmp_path: Path) -> list[Path]:
    slices = [np.full((N_J, N_I), 1000 + 100 * k, dtype=np.int16) for k in range(N_K)]
    return write_ct_series(
        tmp_path / "ct", [(0.0, 0.0, float(k)) for k in range(N_K)], slices, frame_of_reference_uid=FOR_UID
    )


@pytest.fixture
def ct(ct_files: list[Path]) -> CtImage:
    return load_ct(ct_files)


def test_registry_has_one_reader_per_source() -> None:
    assert {
        MaskSource.SEG: read_seg,
        MaskSource.RTSTRUCT: read_rtstruct,
        MaskSource.LABELMAP: read_labelmap,
    } == MASK_READERS


# --------------------------------------------------------------------------------------------------
# RTSTRUCT
# --------------------------------------------------------------------------------------------------


def test_rtstruct_even_odd_fill_at_pixel_centres(tmp_path: Path, ct: CtImage) -> None:
    outer = square(2.5, 2.5, 12.5, 12.5, 1.0)  # centres 3..12 in i and j: 10 x 10 = 100
    hole = square(5.5, 5.5, 8.5, 8.5, 1.0)  # centres 6..8: 3 x 3 = 9, removed by XOR
    island = square(15.5, 15.5, 17.5, 18.5, 1.0)  # centres i 16..17, j 16..18: 2 x 3 = 6
    other_slice = square(2.5, 2.5, 4.5, 4.5, 2.0)  # 2 x 2 = 4 on slice 2
    path = write_rtstruct(
        tmp_path / "rs.dcm", FOR_UID, [("GTV lymph node", [outer, hole, island, other_slice])]
    )
    assert detect_mask_source(path) is MaskSource.RTSTRUCT
    (mask,) = load_masks(path, ct)
    assert mask.source is MaskSource.RTSTRUCT and mask.label == "GTV lymph node" and mask.is_lymph_node
    assert [int(mask.mask[k].sum()) for k in range(N_K)] == [0, 100 - 9 + 6, 4, 0]
    assert not mask.mask[1, 6:9, 6:9].any()  # the hole is empty
    assert mask.mask[1, 3:13, 3].all()
    assert mask.notes == ()


def test_rtstruct_reports_off_plane_outside_volume_and_clipped_contours(
    tmp_path: Path, ct: CtImage, caplog: pytest.LogCaptureFixture
) -> None:
    between = square(2.5, 2.5, 4.5, 4.5, 1.3)  # 0.3 mm off slice 1: assigned to it, reported
    beyond = square(2.5, 2.5, 4.5, 4.5, 9.0)  # slice 9 does not exist
    clipped = square(-5.0, 10.5, 3.5, 12.5, 3.0)  # reaches 5 mm outside the field of view
    tilted = np.array([[1.0, 1.0, 0.0], [6.0, 1.0, 1.0], [6.0, 6.0, 2.0]])  # crosses slices: skipped
    path = write_rtstruct(tmp_path / "rs.dcm", FOR_UID, [("GTV", [between, beyond, clipped, tilted])])
    with caplog.at_level(logging.WARNING, logger="hpd_imaging.io.rtstruct"):
        (mask,) = read_rtstruct(path, ct)
    assert int(mask.mask[1].sum()) == 4
    assert int(mask.mask[3].sum()) == 4 * 2  # i 0..3, j 11..12
    notes = " | ".join(mask.notes)
    assert "1 contour(s) at 9.00 mm along the normal lie outside the CT volume" in notes
    assert "lie between slice planes (up to 0.30 mm off); assigned to the nearest slice" in notes
    assert "1 contour(s) extend beyond the CT field of view; clipped" in notes
    assert "not parallel to the CT slices" in notes
    assert len([r for r in caplog.records if "rs.dcm" in r.getMessage()]) == 4


def test_rtstruct_frame_of_reference_mismatch_refused(tmp_path: Path, ct: CtImage) -> None:
    path = write_rtstruct(tmp_path / "rs.dcm", "1.2.3.999", [("GTV", [square(2.5, 2.5, 4.5, 4.5, 1.0)])])
    with pytest.raises(MaskError, match=r"rs\.dcm: Frame of Reference mismatch: expected the CT's 1\.2\.826"):
        read_rtstruct(path, ct)


def test_rtstruct_other_frame_of_reference_accepted_when_instances_resolve(
    tmp_path: Path, ct: CtImage
) -> None:
    sop = ct.provenance["sop_instance_uids"][1]
    path = write_rtstruct(
        tmp_path / "rs.dcm",
        "1.2.3.999",
        [("GTV", [square(2.5, 2.5, 4.5, 4.5, 1.0)])],
        referenced_sop_uids=[sop],
    )
    (mask,) = read_rtstruct(path, ct)
    assert mask.voxel_count == 4


def test_rtstruct_contour_point_limit(tmp_path: Path, ct: CtImage) -> None:
    path = write_rtstruct(tmp_path / "rs.dcm", FOR_UID, [("GTV", [square(2.5, 2.5, 4.5, 4.5, 1.0)] * 3)])
    with pytest.raises(InputLimitError, match="12 contour points exceed the limit max_contour_points=10"):
        read_rtstruct(path, ct, settings=LoaderSettings(max_contour_points=10))


def test_rtstruct_without_area_contours_is_an_error(tmp_path: Path, ct: CtImage) -> None:
    point = ("POINT", np.array([[3.0, 3.0, 1.0]]))
    path = write_rtstruct(tmp_path / "rs.dcm", FOR_UID, [("marker", [point])])
    with pytest.raises(MaskError, match=r"rs\.dcm: expected at least one ROI with contours on the CT grid"):
        read_rtstruct(path, ct)


def test_rtstruct_one_mask_per_roi_and_roi_filter(tmp_path: Path, ct: CtImage) -> None:
    path = write_rtstruct(
        tmp_path / "rs.dcm",
        FOR_UID,
        [("A", [square(2.5, 2.5, 4.5, 4.5, 1.0)]), ("B", [square(2.5, 2.5, 5.5, 5.5, 1.0)])],
    )
    assert [(m.label, m.voxel_count, m.label_value) for m in read_rtstruct(path, ct)] == [
        ("A", 4, 1),
        ("B", 9, 2),
    ]
    assert [m.label for m in read_rtstruct(path, ct, roi_names=["B"])] == ["B"]


# --------------------------------------------------------------------------------------------------
# label maps
# --------------------------------------------------------------------------------------------------


def _write_labels(path: Path, values: np.ndarray, geometry: ImageGeometry) -> Path:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(values)
    geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(path))
    return path


def _truth() -> np.ndarray:
    labels = np.zeros((N_K, N_J, N_I), dtype=np.uint8)
    labels[1:3, 2:6, 3:8] = 1  # 2 x 4 x 5 = 40 voxels
    labels[0, 10:12, 10:12] = 2  # 4 voxels
    labels[3, 15:17, 15:20] = 2  # 10 voxels: a second component of label 2
    return labels


def test_labelmap_stored_flipped_is_aligned_without_resampling(tmp_path: Path, ct: CtImage) -> None:
    truth = _truth()
    g = ct.geometry
    # stored like a LAS NIfTI: rows reversed, direction -y, origin at the last row
    flipped_geometry = ImageGeometry(
        shape=g.shape,
        spacing_mm=g.spacing_mm,
        origin_mm=tuple(g.index_to_lps(np.array([0.0, N_J - 1.0, 0.0]))),
        direction=(1, 0, 0, 0, -1, 0, 0, 0, 1),
    )
    path = _write_labels(
        tmp_path / "labels.nii.gz", np.ascontiguousarray(truth[:, ::-1, :]), flipped_geometry
    )
    masks = load_masks(path, ct, label_table={1: ("L1", "liver", False), 2: ("N1", "lymph_node", True)})
    assert [(m.label, m.lesion_id, m.organ, m.is_lymph_node, m.voxel_count) for m in masks] == [
        ("1", "L1", "liver", False, 40),
        ("2", "N1", "lymph_node", True, 14),
    ]
    np.testing.assert_array_equal(masks[0].mask, truth == 1)
    np.testing.assert_array_equal(masks[1].mask, truth == 2)
    assert "reordered/flipped" in masks[0].notes[0]


def test_labelmap_label_table_rows_and_connected_components(tmp_path: Path, ct: CtImage) -> None:
    path = _write_labels(tmp_path / "labels.nrrd", _truth(), ct.geometry)
    assert detect_mask_source(path) is MaskSource.LABELMAP
    rows = ((2, "N1", "lymph_node", True),)  # MaskRef.label_table form; label 1 not listed: kept without id
    masks = load_masks(path, ct, label_table=rows, split_components=True)
    assert [(m.label, m.lesion_id, m.voxel_count) for m in masks] == [
        ("1.1", None, 40),
        ("2.1", "N1.1", 10),  # largest component first
        ("2.2", "N1.2", 4),
    ]


def test_labelmap_grid_mismatch_refused_or_resampled_nearest_neighbour(tmp_path: Path, ct: CtImage) -> None:
    g = ct.geometry
    # a label map at half the in-plane spacing, same origin: voxel (2i, 2j) of it is voxel (i, j) of the CT
    fine = ImageGeometry(
        shape=(N_K, 2 * N_J, 2 * N_I),
        spacing_mm=(0.5, 0.5, 1.0),
        origin_mm=g.origin_mm,
        direction=g.direction,
    )
    values = np.zeros(fine.shape, dtype=np.uint8)
    values[1, 4:12, 6:16] = 3  # CT voxels j 2..5, i 3..7 (centres at even fine indices)
    path = _write_labels(tmp_path / "fine.nii.gz", values, fine)
    with pytest.raises(
        MaskError, match=r"fine\.nii\.gz: label map grid does not match the CT grid .*spacing"
    ):
        load_masks(path, ct)
    (mask,) = load_masks(path, ct, settings=LoaderSettings(labelmap_mismatch="resample"))
    expected = np.zeros(g.shape, dtype=bool)
    expected[1, 2:6, 3:8] = True
    np.testing.assert_array_equal(mask.mask, expected)
    assert "resampled nearest-neighbour" in mask.notes[0]


def test_empty_labelmap_names_the_file(tmp_path: Path, ct: CtImage) -> None:
    path = _write_labels(tmp_path / "empty.nii.gz", np.zeros(ct.geometry.shape, np.uint8), ct.geometry)
    with pytest.raises(MaskError, match=r"empty\.nii\.gz: expected at least one non-zero label"):
        load_masks(path, ct)


def test_detect_mask_source_refuses_other_dicom(ct_files: list[Path]) -> None:
    with pytest.raises(MaskError, match=r"expected a DICOM SEG or RTSTRUCT, got Modality CT"):
        detect_mask_source(ct_files[0])


# --------------------------------------------------------------------------------------------------
# DICOM SEG (written with highdicom)
# --------------------------------------------------------------------------------------------------


def _write_seg(
    path: Path, ct_files: list[Path], pixels: np.ndarray, *, fractional: bool = False, regions: bool = True
) -> Path:
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    sources = sorted((pydicom.dcmread(f) for f in ct_files), key=lambda d: float(d.ImagePositionPatient[2]))
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", family=codes.cid7162.ArtificialIntelligence, version="1"
    )
    descriptions = []
    sites = [codes.SCT.Liver, codes.SCT.LymphNode]
    for n in range(pixels.shape[-1]):
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=n + 1,
                segment_label=f"lesion {n + 1}",
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Neoplasm,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_id=f"Lesion-{n + 1}",
                tracking_uid=hd.UID(),
                anatomic_regions=[sites[n % 2]] if regions else None,
            )
        )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=(
            hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
        ),
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hpd-imaging tests",
        manufacturer_model_name="synthetic",
        software_versions="0",
        device_serial_number="0",
        omit_empty_frames=True,
    )
    seg.save_as(path)
    return path


def test_seg_overlapping_segments_with_omitted_frames(
    tmp_path: Path, ct_files: list[Path], ct: CtImage
) -> None:
    pixels = np.zeros((N_K, N_J, N_I, 2), dtype=bool)
    pixels[1:3, 2:6, 3:8, 0] = True  # 40 voxels on slices 1-2
    pixels[2, 4:8, 6:10, 1] = True  # 16 voxels on slice 2, overlapping segment 1 on 2 x 2 voxels
    path = _write_seg(tmp_path / "seg.dcm", ct_files, pixels)
    assert detect_mask_source(path) is MaskSource.SEG
    masks = load_masks(path, ct)
    assert [(m.label, m.lesion_id, m.organ, m.is_lymph_node, m.voxel_count) for m in masks] == [
        ("lesion 1", "Lesion-1", "liver", False, 40),
        ("lesion 2", "Lesion-2", "lymph_node", True, 16),
    ]
    assert masks[0].tracking_uid and masks[1].tracking_uid and masks[0].tracking_uid != masks[1].tracking_uid
    np.testing.assert_array_equal(masks[0].mask, pixels[..., 0])
    np.testing.assert_array_equal(masks[1].mask, pixels[..., 1])
    assert int((masks[0].mask & masks[1].mask).sum()) == 4


def test_seg_fractional_threshold(tmp_path: Path, ct_files: list[Path], ct: CtImage) -> None:
    pixels = np.zeros((N_K, N_J, N_I, 1), dtype=np.float32)
    pixels[1, 2:4, 2:4, 0] = 0.75
    pixels[1, 10:12, 10:13, 0] = 0.25
    path = _write_seg(tmp_path / "frac.dcm", ct_files, pixels, fractional=True, regions=False)
    (mask,) = read_seg(path, ct)
    assert mask.voxel_count == 4 and mask.mask[1, 2:4, 2:4].all()
    assert mask.organ == ""  # property type "Neoplasm" names what, not where
    (loose,) = read_seg(path, ct, settings=LoaderSettings(fractional_threshold=0.2))
    assert loose.voxel_count == 10


def test_seg_on_a_different_frame_of_reference_or_grid_is_refused(
    tmp_path: Path, ct_files: list[Path]
) -> None:
    pixels = np.zeros((N_K, N_J, N_I, 1), dtype=bool)
    pixels[1, 2:4, 2:4, 0] = True
    path = _write_seg(tmp_path / "seg.dcm", ct_files, pixels)
    other_for = write_ct_series(
        tmp_path / "other",
        [(0.0, 0.0, float(k)) for k in range(N_K)],
        [np.zeros((N_J, N_I), np.int16)] * N_K,
        frame_of_reference_uid="1.2.3.4",
    )
    with pytest.raises(
        MaskError, match=r"seg\.dcm: Frame of Reference mismatch: expected the CT's 1\.2\.3\.4"
    ):
        read_seg(path, load_ct(other_for))
    coarse = write_ct_series(
        tmp_path / "coarse",
        [(0.0, 0.0, float(k)) for k in range(N_K)],
        [np.zeros((N_J // 2, N_I // 2), np.int16)] * N_K,
        pixel_spacing=(2.0, 2.0),
        frame_of_reference_uid=FOR_UID,
    )
    with pytest.raises(
        MaskError, match=r"seg\.dcm: segment 1 \(lesion 1\): SEG grid is not the CT grid: .*spacing"
    ):
        read_seg(path, load_ct(coarse))


def _vendor_seg(path: Path) -> Path:
    """The SEG at ``path`` with the segments' (Type 1) property category/type removed, as syngo.via VA11A."""
    import pydicom

    ds = pydicom.dcmread(path)
    for item in ds.SegmentSequence:
        del item.SegmentedPropertyCategoryCodeSequence
    ds.save_as(path)
    return path


def test_vendor_seg_refused_by_highdicom_is_decoded_frame_by_frame(
    tmp_path: Path, ct_files: list[Path], ct: CtImage, caplog: pytest.LogCaptureFixture
) -> None:
    pixels = np.zeros((N_K, N_J, N_I, 2), dtype=bool)
    pixels[1:3, 2:6, 3:8, 0] = True
    pixels[2, 4:8, 6:10, 1] = True
    path = _vendor_seg(_write_seg(tmp_path / "vendor.dcm", ct_files, pixels))
    with caplog.at_level("WARNING"):
        masks = read_seg(path, ct)
    assert "missing required attribute(s) SegmentedPropertyCategoryCodeSequence" in caplog.text
    assert [(m.label, m.lesion_id, m.voxel_count) for m in masks] == [
        ("lesion 1", "Lesion-1", 40),
        ("lesion 2", "Lesion-2", 16),
    ]
    np.testing.assert_array_equal(masks[1].mask, pixels[..., 1])
    # the fallback accepts only the CT's own grid
    coarse = write_ct_series(
        tmp_path / "coarse",
        [(0.0, 0.0, float(k)) for k in range(N_K)],
        [np.zeros((N_J // 2, N_I // 2), np.int16)] * N_K,
        pixel_spacing=(2.0, 2.0),
        frame_of_reference_uid=FOR_UID,
    )
    with pytest.raises(
        DicomReadError, match=r"vendor\.dcm: .*pydicom fallback failed too: .*not the CT grid"
    ):
        read_seg(path, load_ct(coarse))


def test_seg_with_another_frame_of_reference_accepted_only_on_this_ct(
    tmp_path: Path, ct_files: list[Path], ct: CtImage
) -> None:
    import pydicom

    pixels = np.zeros((N_K, N_J, N_I, 1), dtype=bool)
    pixels[1, 2:5, 2:4, 0] = True
    path = _write_seg(tmp_path / "seg.dcm", ct_files, pixels)
    ds = pydicom.dcmread(path)
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.999"  # minted by the writer; references kept
    ds.save_as(path)
    (mask,) = read_seg(path, ct)
    assert mask.voxel_count == 6
    assert any("references this CT's series" in note for note in mask.notes)
    # the same references but frames 0.5 mm off the CT's pixel grid: the grids differ, refused
    for item in ds.PerFrameFunctionalGroupsSequence:
        ipp = item.PlanePositionSequence[0].ImagePositionPatient
        item.PlanePositionSequence[0].ImagePositionPatient = [float(ipp[0]) + 0.5, ipp[1], ipp[2]]
    ds.save_as(tmp_path / "shifted.dcm")
    with pytest.raises(MaskError, match=r"shifted\.dcm: segment 1 \(lesion 1\): SEG grid is not the CT grid"):
        read_seg(tmp_path / "shifted.dcm", ct)
