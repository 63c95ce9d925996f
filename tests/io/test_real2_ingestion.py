"""Segmentations as clinics and labs write them (../shared/data/real2, see its SOURCES.md).

The voxel counts asserted here are the ones SOURCES.md states, measured there with independent readers
(pydicom, highdicom, SimpleITK, slicerio); the Slicer segment counts are checked against the raw NRRD bytes
decoded in this file without SimpleITK. Every test skips with a reason when the data is absent.
"""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from hpd_imaging.domain import MaskSource
from hpd_imaging.errors import MaskError
from hpd_imaging.io import detect_mask_source, load_ct, load_masks
from hpd_imaging.io.filetype import FileKind, sniff


@pytest.fixture(scope="module")
def real2(shared_data: Path) -> Path:
    path = shared_data / "real2"
    if not path.is_dir():
        pytest.skip(f"real2 test data not found at {path}")
    return path


@pytest.fixture(scope="module")
def qr(real2: Path) -> Path:
    return real2 / "qr_syngo_seg" / "Prototype" / "TestData"


@pytest.fixture(scope="module")
def qr_ct(qr: Path):  # noqa: ANN201
    return load_ct(qr / "DICOM.CT")


def _raw_nrrd(path: Path) -> tuple[dict[str, str], np.ndarray]:
    """Header fields and voxels (NRRD axis order reversed) of a gzip NRRD, decoded without SimpleITK."""
    data = path.read_bytes()
    head, _, body = data.partition(b"\n\n")
    fields = {}
    for line in head.decode().splitlines()[1:]:
        if ":=" in line:
            key, value = line.split(":=", 1)
        elif ": " in line:
            key, value = line.split(": ", 1)
        else:
            continue
        fields[key.strip()] = value.strip()
    assert fields["type"] == "unsigned char" and fields["encoding"] == "gzip"
    sizes = [int(n) for n in fields["sizes"].split()]
    return fields, np.frombuffer(gzip.decompress(body), dtype=np.uint8).reshape(sizes[::-1])


def test_file_type_is_read_from_the_content_not_the_name(qr: Path, real2: Path) -> None:
    assert sniff(qr / "DICOM.SEG" / "slicer.seg.dcm") is FileKind.NRRD  # an NRRD called .dcm
    assert sniff(qr / "DICOM.SEG" / "syngo.seg.dcm") is FileKind.DICOM
    ts = real2 / "totalseg_nifti_stats" / "tests" / "reference_files"
    assert sniff(ts / "example_ct_sm.nii.gz") is FileKind.NIFTI
    assert sniff(qr / "DICOM.SEG" / "README") is FileKind.UNKNOWN
    assert detect_mask_source(qr / "DICOM.SEG" / "slicer.seg.dcm") is MaskSource.LABELMAP


def test_syngo_via_seg_read_by_frame_decoding_with_a_warning(qr: Path, qr_ct, caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.WARNING):
        (mask,) = load_masks(qr / "DICOM.SEG" / "syngo.seg.dcm", qr_ct)
    assert mask.voxel_count == 46  # SOURCES.md: 46 voxels on 2 frames
    assert int(mask.mask.any(axis=(1, 2)).sum()) == 2
    assert "SegmentedPropertyCategoryCodeSequence" in caplog.text
    assert any("SegmentedPropertyCategoryCodeSequence" in n for n in mask.notes)


def test_slicer_2012_seg_with_another_frame_of_reference_on_the_ct_grid(qr: Path, qr_ct, caplog) -> None:  # noqa: ANN001
    seg = next((qr / "SlicerReportingAIM").glob("*.dcm"))
    with caplog.at_level(logging.WARNING):
        (mask,) = load_masks(seg, qr_ct)
    assert mask.voxel_count == 104_500
    assert "Frame of Reference" in caplog.text and "references this CT" in caplog.text
    # the nodule is a lesion by its property type (category Tissue decides nothing)
    assert mask.is_lesion and "Nodule" in mask.lesion_rule


def test_nrrd_named_dcm_is_read_as_a_label_map(qr: Path, qr_ct) -> None:  # noqa: ANN001
    (mask,) = load_masks(qr / "DICOM.SEG" / "slicer.seg.dcm", qr_ct)
    (same,) = load_masks(qr / "SlicerScene" / "CT_label.nrrd", qr_ct)
    assert mask.voxel_count == same.voxel_count == 825
    np.testing.assert_array_equal(mask.mask, same.mask)


def test_label_map_on_the_ct_grid_and_its_rotated_copy_refused(qr: Path, qr_ct) -> None:  # noqa: ANN001
    (mask,) = load_masks(qr / "labelToSEG.nrrd", qr_ct)
    assert mask.voxel_count == 58_333
    with pytest.raises(
        MaskError, match=r"labelToSEGTransformed.nrrd: label map grid does not match.*direction"
    ):
        load_masks(qr / "labelToSEGTransformed.nrrd", qr_ct)


def test_nrrd_ct_with_its_label_map(qr: Path) -> None:
    ct = load_ct(qr / "SlicerScene" / "CT_volume.nrrd")
    (mask,) = load_masks(qr / "SlicerScene" / "CT_label.nrrd", ct)
    assert mask.voxel_count == 825


@pytest.mark.parametrize("name", ["Segmentation.seg.nrrd", "SegmentationOverlapping.seg.nrrd"])
def test_slicer_segmentation_names_terminology_colours_and_layers(real2: Path, name: str) -> None:
    data = real2 / "slicerio_ctchest" / "slicerio" / "data"
    ct = load_ct(data / "CTChest4.nrrd")
    masks = load_masks(data / name, ct)
    fields, raw = _raw_nrrd(data / name)
    n_segments = len([k for k in fields if re.fullmatch(r"Segment\d+_Name", k)])
    assert len(masks) == n_segments == (7 if name == "Segmentation.seg.nrrd" else 8)
    by_name = {m.label: m for m in masks}
    assert {"ribs", "right lung", "left lung", "tissue"} <= set(by_name)
    for n in range(n_segments):
        seg_name = fields[f"Segment{n}_Name"]
        value = int(fields.get(f"Segment{n}_LabelValue", n + 1))
        layer = int(fields.get(f"Segment{n}_Layer", 0))
        layer_values = raw[..., layer] if raw.ndim == 4 else raw
        m = by_name[seg_name]
        # stored LPS with negative i/j directions: the CT has the same grid, so the counts compare directly
        assert m.voxel_count == int(np.count_nonzero(layer_values == value)), seg_name
        assert m.color_rgb == pytest.approx(tuple(float(c) for c in fields[f"Segment{n}_Color"].split()))
    rib = by_name["ribs"]
    assert rib.structure_type == "Anatomical Structure" and not rib.is_lesion
    assert "123037004" in rib.terminology and "Rib" in rib.terminology
    if name == "SegmentationOverlapping.seg.nrrd":
        sphere = by_name["overlapping sphere"]
        assert np.count_nonzero(sphere.mask & by_name["tissue"].mask) > 0  # overlaps kept as separate masks


@pytest.mark.parametrize("name", ["sparse-labelmap-noppv.dcm", "sparse-labelmap-ppv5.dcm"])
def test_label_map_seg_background_excluded_and_sparse_frames(real2: Path, name: str) -> None:
    base = real2 / "dcmqi_labelmap_oddwidth" / "data" / "segmentations"
    ct = load_ct(base / "24x38x3" / "image")
    masks = load_masks(base / name, ct)
    assert [m.label for m in masks] == ["Liver"]  # the "Background" segment is no structure
    liver = masks[0]
    assert liver.voxel_count == 630
    per_slice = liver.mask.sum(axis=(1, 2))
    assert per_slice[1] == 0 and per_slice[0] > 0 and per_slice[2] > 0  # two pieces, middle frame omitted


@pytest.mark.parametrize("ct_rel", ["23x38x3/image", "23x38x3/multiframe/mf.dcm"])
def test_odd_width_seg_on_single_frame_and_enhanced_ct(real2: Path, ct_rel: str) -> None:
    base = real2 / "dcmqi_labelmap_oddwidth" / "data" / "segmentations"
    ct = load_ct(base / ct_rel)
    assert ct.geometry.shape == (3, 38, 23)
    (seg,) = load_masks(base / "23x38x3" / "seg" / "label.seg", ct)
    (nrrd,) = load_masks(base / "23x38x3" / "nrrd" / "label.nrrd", ct)
    assert seg.voxel_count == nrrd.voxel_count == 322
    np.testing.assert_array_equal(seg.mask, nrrd.mask)


def test_totalsegmentator_nifti_ct_and_label_map_volumes(real2: Path) -> None:
    import json

    ref = real2 / "totalseg_nifti_stats" / "tests" / "reference_files"
    ct = load_ct(ref / "example_ct_sm.nii.gz")
    masks = {m.label_value: m for m in load_masks(ref / "example_seg_fast.nii.gz", ct)}
    stats = json.loads((ref / "example_seg_fast" / "statistics.json").read_text())
    liver = masks[5]  # TotalSegmentator "total" task: label 5 is the liver
    volume = liver.voxel_count * ct.geometry.voxel_volume_mm3
    assert volume == pytest.approx(stats["liver"]["volume"], rel=1e-6) == pytest.approx(1_062_450.0)
    assert float(ct.hu[liver.mask].mean()) == pytest.approx(stats["liver"]["intensity"], abs=1e-3)
    (binary,) = load_masks(ref / "example_seg_fast" / "liver.nii.gz", ct)
    np.testing.assert_array_equal(binary.mask, liver.mask)
