"""DICOM SEG + TID 1500 SR writing: round trips through highdicom, DCMTK dsrdump and dicom3tools dciodvfy.

The inputs are built by hand: a tiny CT Image Storage series (32x32x8, 0.8x0.8x2.5 mm, origin off zero)
written with pydicom, two box-shaped lesions whose voxel counts, volumes and axis end points are known
exactly, and a third lesion that has disappeared at this timepoint.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from hpd_imaging.domain import (
    CtImage,
    ImageGeometry,
    Lesion,
    LesionMask,
    LesionMeasurement,
    LesionRole,
    MaskSource,
    TimepointRole,
)
from hpd_imaging.errors import GeometryError, MaskError, MeasurementError
from hpd_imaging.io.dicom_out import (
    CONTENT_CREATOR_NAME,
    PALETTE_RGB,
    SEG_FILENAME,
    SR_FILENAME,
    TimePointInfo,
    tracking_identifier_text,
    write_dicom_outputs,
)
from hpd_imaging.io.dicom_out.codes import NOT_SEGMENTED_COMMENT

SHAPE = (8, 32, 32)  # k, j, i
SPACING = (0.8, 0.8, 2.5)  # i, j, k
ORIGIN = (-12.4, -20.0, 30.0)
SCAN_DATE = dt.date(2021, 3, 4)


@pytest.fixture(scope="session")
def dicom_tools() -> dict[str, str | None]:
    """Paths of dsrdump (dcmtk) and dciodvfy (dicom3tools); tests skip when absent (.ci/run installs them)."""
    return {"dsrdump": shutil.which("dsrdump"), "dciodvfy": shutil.which("dciodvfy")}


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    geometry: ImageGeometry,
    *,
    study_uid: str,
    series_uid: str,
    for_uid: str,
    patient_id: str = "HPD-TEST-001",
    study_date: dt.date = SCAN_DATE,
) -> list[Path]:
    """A minimal but complete CT Image Storage series (one file per slice), axial, in LPS."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(geometry.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = ""  # as in many real exports: highdicom refuses this unless we override
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = "Test^Hpd"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = study_date.strftime("%Y%m%d")
        ds.StudyTime = "101500"
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.AccessionNumber = "A1"
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 2
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = "Synthetic"
        ds.InstanceNumber = k + 1
        ds.ContentDate = ds.StudyDate
        ds.ContentTime = "101500"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelSpacing = [geometry.spacing_mm[1], geometry.spacing_mm[0]]
        ds.SliceThickness = geometry.spacing_mm[2]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [float(v) for v in geometry.index_to_lps(np.array([0.0, 0.0, k]))]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = geometry.shape[1], geometry.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.KVP = 120
        ds.AcquisitionNumber = 1
        ds.PixelData = hu[k].astype(np.int16).tobytes()
        path = folder / f"{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _box_lesion(
    geometry: ImageGeometry,
    ks: slice,
    js: slice,
    is_: slice,
    lesion_id: str,
    label: str,
    organ: str,
    is_node: bool = False,
) -> tuple[LesionMask, LesionMeasurement]:
    """A box lesion with exact measurements: long axis along i on the middle slice, short axis along j."""
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[ks, js, is_] = True
    n_k, n_j, n_i = ks.stop - ks.start, js.stop - js.start, is_.stop - is_.start
    k_key = ks.start + n_k // 2
    j_mid = js.start + n_j // 2
    i_mid = is_.start + n_i // 2
    la = geometry.index_to_lps(
        np.array([[is_.start, j_mid, k_key], [is_.stop - 1, j_mid, k_key]], dtype=float)
    )
    sa = geometry.index_to_lps(np.array([[i_mid, js.start, k_key], [i_mid, js.stop - 1, k_key]], dtype=float))
    meas = LesionMeasurement(
        lesion_id=lesion_id,
        voxel_count=int(mask.sum()),
        volume_mm3=float(mask.sum() * geometry.voxel_volume_mm3),
        longest_axial_diameter_mm=(n_i - 1) * geometry.spacing_mm[0],
        short_axis_mm=(n_j - 1) * geometry.spacing_mm[1],
        max_3d_diameter_mm=float(
            np.linalg.norm(np.array([n_i - 1, n_j - 1, n_k - 1]) * np.array(geometry.spacing_mm))
        ),
        organ=organ,
        is_lymph_node=is_node,
        label=label,
        scan_date=SCAN_DATE,
        long_axis_slice_index=k_key,
        long_axis_endpoints_mm=(tuple(la[0]), tuple(la[1])),
        short_axis_endpoints_mm=(tuple(sa[0]), tuple(sa[1])),
    )
    lm = LesionMask(
        mask=mask, geometry=geometry, label=label, source=MaskSource.SEG, organ=organ, is_lymph_node=is_node
    )
    return lm, meas


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dicom_out")
    geometry = ImageGeometry(shape=SHAPE, spacing_mm=SPACING, origin_mm=ORIGIN)
    rng = np.random.default_rng(0)
    hu = rng.normal(-800, 20, SHAPE).astype(np.int16)
    study_uid, series_uid, for_uid = (
        generate_uid(entropy_srcs=["test", x]) for x in ("study", "series", "for")
    )
    files = write_ct_series(
        root / "CT", hu, geometry, study_uid=study_uid, series_uid=series_uid, for_uid=for_uid
    )
    ct = CtImage(hu=hu, geometry=geometry, frame_of_reference_uid=for_uid, series_instance_uid=series_uid)
    m1, meas1 = _box_lesion(geometry, slice(2, 5), slice(10, 15), slice(4, 12), "L1", "tumour a", "lung")
    m2, meas2 = _box_lesion(
        geometry, slice(4, 7), slice(20, 28), slice(18, 25), "L2", "node b", "lymph_node", True
    )
    gone = LesionMeasurement(
        lesion_id="L3",
        voxel_count=0,
        volume_mm3=0.0,
        longest_axial_diameter_mm=0.0,
        short_axis_mm=0.0,
        max_3d_diameter_mm=0.0,
        organ="liver",
        scan_date=SCAN_DATE,
    )
    lesions = [
        Lesion("L1", generate_uid(entropy_srcs=["lesion", "L1"]), "lung", False, LesionRole.TARGET),
        Lesion("L2", generate_uid(entropy_srcs=["lesion", "L2"]), "lymph_node", True, LesionRole.TARGET),
        Lesion("L3", generate_uid(entropy_srcs=["lesion", "L3"]), "liver", False, LesionRole.NON_TARGET),
    ]
    out = root / "out"
    paths = write_dicom_outputs(files, ct, [m2, m1], [meas1, meas2, gone], lesions, out)
    return {
        "root": root,
        "files": files,
        "ct": ct,
        "masks": [m1, m2],
        "meas": [meas1, meas2, gone],
        "lesions": lesions,
        "paths": paths,
        "out": out,
    }


def test_writes_seg_and_sr(case: dict) -> None:
    assert case["paths"] == [case["out"] / SEG_FILENAME, case["out"] / SR_FILENAME]
    assert sorted(case["out"].iterdir()) == sorted(case["paths"])  # no temporary files left behind
    for p in case["paths"]:
        ds = pydicom.dcmread(p)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.ContentDate == "20210304"
        assert ds.InstanceCreationDate == "20210304"
        # patient module as in the source CT (no overrides given)
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == (
            "HPD-TEST-001",
            "Test^Hpd",
            "19600101",
        )
    assert str(pydicom.dcmread(case["paths"][0]).ContentCreatorName) == CONTENT_CREATOR_NAME


def _tracking_text(lesion_id: str) -> str:
    return f"Cornerstone3DTools@^0.1.0:Bidirectional:{lesion_id}"


def test_seg_round_trip_voxels_tracking_and_colour(case: dict) -> None:
    seg = hd.seg.segread(case["out"] / SEG_FILENAME)
    assert seg.SegmentationType == "BINARY"
    assert seg.number_of_segments == 2
    lesions = {lesion.lesion_id: lesion for lesion in case["lesions"]}
    for n, mask, meas in zip((1, 2), case["masks"], case["meas"][:2], strict=True):
        desc = seg.get_segment_description(n)
        assert desc.segment_label == meas.lesion_id
        assert desc.tracking_id == _tracking_text(meas.lesion_id)
        assert desc.tracking_uid == lesions[meas.lesion_id].tracking_uid
        assert seg.get_segment_numbers(tracking_uid=lesions[meas.lesion_id].tracking_uid) == [n]
        # colour: palette entry n-1 (position in the lesion list), read back as sRGB within rounding
        rgb = hd.color.CIELabColor.from_dicom_value(desc.RecommendedDisplayCIELabValue).to_rgb()
        assert np.allclose(rgb, PALETTE_RGB[n - 1], atol=1)
        # voxel-exact: read back on the source-instance order (= slice index k) and compare to the input mask
        sop_uids = [(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in case["files"]]
        arr = seg.get_pixels_by_source_instance(
            sop_uids, segment_numbers=[n], assert_missing_frames_are_empty=True
        )
        assert arr.shape == (*SHAPE, 1)
        assert int(arr.sum()) == mask.voxel_count == meas.voxel_count
        assert np.array_equal(arr[..., 0].astype(bool), mask.mask)


def test_seg_and_sr_share_one_finding_code_and_anatomic_regions(case: dict) -> None:
    seg = hd.seg.segread(case["out"] / SEG_FILENAME)
    d1, d2 = seg.get_segment_description(1), seg.get_segment_description(2)
    assert d1.segmented_property_type == codes.SCT.Lesion
    assert d1.segmented_property_category == codes.SCT.MorphologicallyAbnormalStructure
    assert [c.value for c in d1.anatomic_regions] == [codes.SCT.Lung.value]
    assert [c.value for c in d2.anatomic_regions] == [codes.SCT.LymphNode.value]
    for group in _groups(case["out"] / SR_FILENAME):
        assert group["codes"]["121071"] == ("SCT", "52988006")  # Finding = Lesion, as the SEG's type
        assert group["codes"]["276214006"] == ("SCT", "49755003")  # Finding category, as the SEG's category


def _code(item: pydicom.Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue)


def _groups(sr_path: Path) -> list[dict]:
    """The SR's measurement groups, read with pydicom (no library interpretation): per group its template,
    tracking identifier/UID, top-level value types in order, CODE items, TID 1502 items and NUMs with their
    children."""
    sr = pydicom.dcmread(sr_path)
    [container] = [item for item in sr.ContentSequence if _code(item) == "126010"]
    out = []
    for group in container.ContentSequence:
        g: dict = {
            "template": group.ContentTemplateSequence[0].TemplateIdentifier,
            "value_types": [c.ValueType for c in group.ContentSequence],
            "uidrefs": [c.UID for c in group.ContentSequence if c.ValueType == "UIDREF"],
            "codes": {},
            "texts": {},
            "nums": [],
        }
        for child in group.ContentSequence:
            if child.ValueType == "TEXT":
                g["texts"][_code(child)] = child.TextValue
            elif child.ValueType == "UIDREF" and _code(child) == "112040":
                g["tracking_uid"] = child.UID
            elif child.ValueType == "CODE":
                c = child.ConceptCodeSequence[0]
                g["codes"][_code(child)] = (c.CodingSchemeDesignator, c.CodeValue)
            elif child.ValueType == "NUM" and _code(child) == "126073":
                g["time_point_order"] = int(child.MeasuredValueSequence[0].NumericValue)
            elif child.ValueType == "NUM":
                mv = child.MeasuredValueSequence[0]
                g["nums"].append(
                    {
                        "meaning": child.ConceptNameCodeSequence[0].CodeMeaning,
                        "value": float(mv.NumericValue),
                        "unit": mv.MeasurementUnitsCodeSequence[0].CodeValue,
                        "children": list(child.get("ContentSequence", [])),
                    }
                )
            elif child.ValueType == "IMAGE" and _code(child) == "121191":
                g["segment"] = int(child.ReferencedSOPSequence[0].ReferencedSegmentNumber)
        out.append(g)
    return out


def _by_lesion(sr_path: Path) -> dict[str, dict]:
    return {g["texts"]["112039"].rsplit(":", 1)[1]: g for g in _groups(sr_path)}


def test_sr_one_group_per_lesion_with_long_short_volume(case: dict) -> None:
    groups = _by_lesion(case["out"] / SR_FILENAME)
    assert list(groups) == ["L1", "L2", "L3"]  # every lesion of the timepoint, in the lesion list's order
    lesions = {lesion.lesion_id: lesion for lesion in case["lesions"]}
    for n, meas in enumerate(case["meas"], start=1):
        g = groups[meas.lesion_id]
        assert g["texts"]["112039"] == _tracking_text(meas.lesion_id)
        assert g["tracking_uid"] == lesions[meas.lesion_id].tracking_uid
        # same NUMs in the same order in every group (Slicer's table fills columns by position)
        assert [(x["meaning"], x["unit"]) for x in g["nums"]] == [
            ("Long Axis", "mm"),
            ("Short Axis", "mm"),
            ("Volume", "mm3"),
        ]
        values = [x["value"] for x in g["nums"]]
        assert values == pytest.approx(
            [meas.longest_axial_diameter_mm, meas.short_axis_mm, meas.volume_mm3], abs=1e-6
        )
        if meas.voxel_count > 0:
            assert g["template"] == "1411" and g["segment"] == n
            assert "121054" not in g["codes"].values()
        else:  # gone: assessed, not present
            assert g["template"] == "1501" and "segment" not in g
            assert g["codes"]["121052"] == ("DCM", "121054")  # Presence of property = Absent
            # a segmented exam: a confirmed disappearance, no "not segmented" comment
            assert "121106" not in g["texts"]


def test_sr_layout_that_ohif_sr_display_reads(case: dict) -> None:
    """OHIF's SR display (extensions/cornerstone-dicom-sr getSopClassHandlerModule ``_getMeasurements``)
    merges groups by tracking UID, takes the first UIDREF as that UID, draws SCOORDs found *inside* NUMs
    only when no SCOORD is at the group's top level, and reads ``NUM.ContentSequence.ValueType`` of every
    NUM without a guard; dcmjs gives that accessor to one-item sequences only."""
    for g in _groups(case["out"] / SR_FILENAME):
        assert "SCOORD" not in g["value_types"] and "SCOORD3D" not in g["value_types"]
        assert g["uidrefs"][0] == g["tracking_uid"]
        for num in g["nums"]:
            assert num["children"], f"{num['meaning']} has no child item: OHIF's SR display would throw"
        long_axis, short_axis, volume = g["nums"]
        if g["template"] == "1411":
            for axis in (long_axis, short_axis):
                [scoord] = axis["children"]
                assert (scoord.ValueType, scoord.RelationshipType, scoord.GraphicType) == (
                    "SCOORD",
                    "INFERRED FROM",
                    "POLYLINE",
                )
                assert len(scoord.ContentSequence) == 1  # the SELECTED FROM image
            [method] = volume["children"]
            assert method.ConceptCodeSequence[0].CodeValue == "126030"  # sum of segmented voxels


def test_tracking_identifier_fits_lo_and_stays_distinct() -> None:
    short = Lesion("L1", "1.2.3")
    assert tracking_identifier_text(short) == "Cornerstone3DTools@^0.1.0:Bidirectional:L1"
    long_a = Lesion("liver segment VIII lesion A", "1.2.3")
    long_b = Lesion("liver segment VIII lesion B", "1.2.4")
    text_a, text_b = tracking_identifier_text(long_a), tracking_identifier_text(long_b)
    assert len(text_a) == len(text_b) == 64 and text_a != text_b
    assert text_a.startswith("Cornerstone3DTools@^0.1.0:Bidirectional:liver segment V~")
    assert tracking_identifier_text(long_a) == text_a  # the same at every timepoint
    edge = Lesion("x" * 23, "1.2.5")
    assert tracking_identifier_text(edge).endswith(":" + "x" * 23)


def test_sr_time_point_context(case: dict, tmp_path: Path) -> None:
    for g in _groups(case["out"] / SR_FILENAME):  # default: the scan date, no role, no order
        assert g["texts"]["C2348792"] == "2021-03-04"
        assert "126072" not in g["codes"] and "time_point_order" not in g
    _, sr_path = write_dicom_outputs(
        case["files"],
        case["ct"],
        case["masks"],
        case["meas"],
        case["lesions"],
        tmp_path,
        time_point=TimePointInfo(role=TimepointRole.BASELINE, order=2),
    )
    for g in _groups(sr_path):
        assert g["codes"]["126072"] == ("UMLS", "C1442488")  # Time Point Type = Baseline
        assert g["texts"]["126070"] == "T2"  # Subject Time Point Identifier
        assert "time_point_order" not in g  # a group-level NUM would break OHIF and Slicer's table
        assert len(g["nums"]) == 3
    with pytest.raises(ValueError, match="expected a time point order >= 1, got 0"):
        TimePointInfo(order=0)


def test_sr_evidence_lists_seg_and_every_ct_instance(case: dict) -> None:
    sr = pydicom.dcmread(case["out"] / SR_FILENAME)
    seg_ds = pydicom.dcmread(case["out"] / SEG_FILENAME, stop_before_pixels=True)
    refs = {
        sop.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert seg_ds.SOPInstanceUID in refs
    assert {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in case["files"]} <= refs
    # highdicom reads the volumetric groups back by tracking UID and finds no TID 1410 planar group (which
    # would send 3D Slicer's QuantitativeReporting to its value-less "planar annotations" branch)
    report = hd.sr.srread(case["out"] / SR_FILENAME).content
    assert report.get_planar_roi_measurement_groups() == []
    [vol] = report.get_volumetric_roi_measurement_groups(tracking_uid=case["lesions"][0].tracking_uid)
    assert vol.referenced_segment.referenced_sop_instance_uid == seg_ds.SOPInstanceUID


def test_polyline_points_are_pixel_centres_on_key_slice(case: dict) -> None:
    """SCOORD (0,0) is the top-left pixel's corner: L1's long axis spans columns 4..11 on row 12, slice 3."""
    files_by_sop = {
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: k for k, f in enumerate(case["files"])
    }
    g = _by_lesion(case["out"] / SR_FILENAME)["L1"]
    expected = {"Long Axis": [[4.5, 12.5], [11.5, 12.5]], "Short Axis": [[8.5, 10.5], [8.5, 14.5]]}
    for num in g["nums"][:2]:
        [scoord] = num["children"]
        ref = scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert files_by_sop[ref] == 3
        points = np.asarray(scoord.GraphicData, dtype=float).reshape(2, 2)
        assert np.allclose(points, expected[num["meaning"]])
        # the polyline's length in pixels x spacing equals the reported axis (box: axis-aligned end points)
        assert np.linalg.norm((points[1] - points[0]) * SPACING[:2]) == pytest.approx(num["value"], abs=1e-4)


def test_rerun_is_byte_identical_and_identity_stable_across_timepoints(case: dict, tmp_path: Path) -> None:
    again = write_dicom_outputs(
        case["files"], case["ct"], case["masks"], case["meas"], case["lesions"], tmp_path / "a"
    )
    for p, q in zip(case["paths"], again, strict=True):
        assert p.read_bytes() == q.read_bytes(), f"{p.name} differs between two identical runs"
    # a follow-up exam (new study/series UIDs, later date): L1 grown by one column, L2 gone, L3 back
    geometry = case["ct"].geometry
    later = dt.date(2021, 5, 6)
    files2 = write_ct_series(
        tmp_path / "CT2",
        case["ct"].hu,
        geometry,
        study_uid=generate_uid(entropy_srcs=["fu", "study"]),
        series_uid=generate_uid(entropy_srcs=["fu", "series"]),
        for_uid=generate_uid(entropy_srcs=["fu", "for"]),
        study_date=later,
    )
    m1, meas1 = _box_lesion(geometry, slice(2, 5), slice(10, 15), slice(4, 13), "L1", "tumour a", "lung")
    m3, meas3 = _box_lesion(geometry, slice(1, 3), slice(2, 6), slice(2, 6), "L3", "liver c", "liver")
    meas1 = LesionMeasurement(**{**meas1.__dict__, "scan_date": later})
    meas3 = LesionMeasurement(**{**meas3.__dict__, "scan_date": later})
    gone2 = LesionMeasurement(**{**case["meas"][2].__dict__, "lesion_id": "L2", "scan_date": later})
    seg2_path, sr2_path = write_dicom_outputs(
        files2, case["ct"], [m3, m1], [meas3, gone2, meas1], case["lesions"], tmp_path / "fu"
    )
    seg1, seg2 = hd.seg.segread(case["paths"][0]), hd.seg.segread(seg2_path)
    desc1 = {seg1.get_segment_description(n).segment_label: seg1.get_segment_description(n) for n in (1, 2)}
    desc2 = {seg2.get_segment_description(n).segment_label: seg2.get_segment_description(n) for n in (1, 2)}
    assert list(desc2) == ["L1", "L3"]
    d1, d2 = desc1["L1"], desc2["L1"]
    assert (d1.tracking_id, d1.tracking_uid) == (d2.tracking_id, d2.tracking_uid)
    assert d1.RecommendedDisplayCIELabValue == d2.RecommendedDisplayCIELabValue  # same colour over time
    assert desc2["L3"].RecommendedDisplayCIELabValue != d2.RecommendedDisplayCIELabValue
    g1, g2 = _by_lesion(case["paths"][1]), _by_lesion(sr2_path)
    for lesion_id in ("L1", "L2", "L3"):
        assert g1[lesion_id]["tracking_uid"] == g2[lesion_id]["tracking_uid"]
        assert g1[lesion_id]["texts"]["112039"] == g2[lesion_id]["texts"]["112039"]
    assert g2["L1"]["nums"][2]["value"] == pytest.approx(3 * 5 * 9 * 0.8 * 0.8 * 2.5, abs=1e-6)
    assert g2["L2"]["template"] == "1501" and g2["L3"]["template"] == "1411"
    sr1, sr2 = pydicom.dcmread(case["paths"][1]), pydicom.dcmread(sr2_path)
    assert sr2.SeriesInstanceUID != sr1.SeriesInstanceUID and sr2.SOPInstanceUID != sr1.SOPInstanceUID


def test_exam_without_segmentation_gets_an_sr_saying_not_present(case: dict, tmp_path: Path) -> None:
    gone = [
        LesionMeasurement(**{**case["meas"][2].__dict__, "lesion_id": lesion.lesion_id})
        for lesion in case["lesions"]
    ]
    paths = write_dicom_outputs(case["files"], case["ct"], {}, gone, case["lesions"], tmp_path)
    assert paths == [tmp_path / SR_FILENAME]  # no SEG: nothing to segment
    groups = _by_lesion(paths[0])
    assert list(groups) == ["L1", "L2", "L3"]
    for g in groups.values():
        assert g["template"] == "1501" and g["codes"]["121052"] == ("DCM", "121054")
        assert [x["value"] for x in g["nums"]] == [0.0, 0.0, 0.0]
        # ...and says that the absence is assumed, not seen: the exam had no segmentation
        assert g["texts"]["121106"] == NOT_SEGMENTED_COMMENT
        assert "not segmented" in g["texts"]["121106"]
        assert "run.follow_up_without_mask" in g["texts"]["121106"]
    sr = pydicom.dcmread(paths[0])
    referenced = {
        sop.ReferencedSOPClassUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert referenced == {CTImageStorage}


def test_patient_attributes_override_the_ct(case: dict, tmp_path: Path) -> None:
    attrs = {"PatientID": "PSN-1", "PatientName": "PSN-1^", "PatientBirthDate": ""}
    paths = write_dicom_outputs(
        case["files"],
        case["ct"],
        case["masks"],
        case["meas"],
        case["lesions"],
        tmp_path,
        patient_attributes=attrs,
    )
    for p in paths:
        ds = pydicom.dcmread(p)
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == ("PSN-1", "PSN-1^", "")


def test_dsrdump_parses_sr(case: dict, dicom_tools: dict) -> None:
    if dicom_tools["dsrdump"] is None:
        pytest.skip("dsrdump (Debian package dcmtk) is not installed")
    res = subprocess.run(
        [dicom_tools["dsrdump"], str(case["out"] / SR_FILENAME)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "Imaging Measurement Report" in res.stdout
    for lesion in case["lesions"]:
        assert lesion.tracking_uid in res.stdout
    assert "POLYLINE" in res.stdout


def _dciodvfy_findings(tool: str, path: Path) -> list[str]:
    res = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (res.stdout + res.stderr).splitlines() if line.startswith(("Error", "Warning"))]


@pytest.mark.parametrize("name", [SEG_FILENAME, SR_FILENAME])
def test_dciodvfy_reports_no_errors_and_no_warnings(case: dict, dicom_tools: dict, name: str) -> None:
    if dicom_tools["dciodvfy"] is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    assert _dciodvfy_findings(dicom_tools["dciodvfy"], case["out"] / name) == []


def test_refuses_mask_off_the_ct_grid(case: dict, tmp_path: Path) -> None:
    geometry = ImageGeometry(shape=SHAPE, spacing_mm=SPACING, origin_mm=(0.0, 0.0, 0.0))
    bad = LesionMask(
        mask=case["masks"][0].mask,
        geometry=geometry,
        label="tumour a",
        source=MaskSource.SEG,
        source_path="bad.nii.gz",
    )
    with pytest.raises(
        GeometryError, match=r"bad.nii.gz: expected the mask of lesion L1 on the CT grid, got origin"
    ):
        write_dicom_outputs(case["files"], case["ct"], [bad], case["meas"][:1], case["lesions"], tmp_path)


def test_refuses_ct_files_of_another_grid(case: dict, tmp_path: Path) -> None:
    with pytest.raises(
        GeometryError, match=r"expected a CT file for every slice of the grid, got none for slices \[7\]"
    ):
        write_dicom_outputs(
            case["files"][:7], case["ct"], case["masks"][:1], case["meas"][:1], case["lesions"], tmp_path
        )


def test_refuses_unknown_lesion_and_unmatched_mask(case: dict, tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match=r"lesion L1: expected a Lesion with this lesion_id"):
        write_dicom_outputs(
            case["files"], case["ct"], case["masks"][:1], case["meas"][:1], case["lesions"][1:], tmp_path
        )
    with pytest.raises(MaskError, match=r"expected every mask to belong to a measured lesion.*node b"):
        write_dicom_outputs(
            case["files"], case["ct"], case["masks"], case["meas"][:1], case["lesions"], tmp_path
        )


# --------------------------------------------------------------------------------------------------
# Real data: IBSI STS_025 (sarcoma CT, RTSTRUCT GTV) through our loader and measurement stage
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ibsi_case(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from hpd_imaging.io import load_ct, read_rtstruct
    from hpd_imaging.measure import measure_lesion

    root = real_data / "ibsi_sts" / "dicom" / "STS_025" / "CT"
    if not root.is_dir():
        pytest.skip(f"IBSI STS_025 not found at {root}")
    files = sorted((root / "image").glob("*.dcm"))
    ct = load_ct(root / "image")
    masks = read_rtstruct(root / "mask" / "RS.dcm", ct)
    meas = measure_lesion(masks[0], lesion_id="STS-1")
    lesion = Lesion("STS-1", generate_uid(entropy_srcs=["ibsi", "STS_025", "GTV"]), "soft_tissue")
    out = tmp_path_factory.mktemp("ibsi") / "out"
    paths = write_dicom_outputs(files, ct, masks, [meas], [lesion], out, scan_date=SCAN_DATE)
    return {"files": files, "ct": ct, "mask": masks[0], "meas": meas, "lesion": lesion, "paths": paths}


def test_real_ct_round_trip(ibsi_case: dict, dicom_tools: dict) -> None:
    seg_path, sr_path = ibsi_case["paths"]
    mask, meas, lesion = ibsi_case["mask"], ibsi_case["meas"], ibsi_case["lesion"]
    assert mask.voxel_count == 9655  # the IBSI reference mask's voxel count (specs/dicom_io_notes.md 2.2)
    seg = hd.seg.segread(seg_path)
    ct_sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in ibsi_case["files"]]
    # our CtImage may order slices differently from the file names: compare on the CT grid via IPP
    geometry = ibsi_case["ct"].geometry
    k_of = {}
    for f in ibsi_case["files"]:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        k_of[ds.SOPInstanceUID] = int(
            round(geometry.lps_to_index(np.array(ds.ImagePositionPatient, float))[2])
        )
    arr = seg.get_pixels_by_source_instance(
        ct_sops, segment_numbers=[1], assert_missing_frames_are_empty=True
    )
    on_grid = np.zeros(geometry.shape, dtype=bool)
    for n, sop in enumerate(ct_sops):
        on_grid[k_of[sop]] = arr[n, ..., 0].astype(bool)
    assert np.array_equal(on_grid, mask.mask)
    [g] = _groups(sr_path)
    assert g["tracking_uid"] == lesion.tracking_uid and g["segment"] == 1
    long_axis, short_axis, volume = g["nums"]
    assert volume["value"] == pytest.approx(meas.volume_mm3, abs=1e-6)
    assert long_axis["value"] == pytest.approx(meas.longest_axial_diameter_mm, abs=1e-6)
    assert short_axis["value"] == pytest.approx(meas.short_axis_mm, abs=1e-6)
    spacing = np.array(geometry.spacing_mm[:2])
    for axis in (long_axis, short_axis):  # the drawn polyline is as long as the reported axis
        [scoord] = axis["children"]
        points = np.asarray(scoord.GraphicData, dtype=float).reshape(2, 2)
        assert np.linalg.norm((points[1] - points[0]) * spacing) == pytest.approx(axis["value"], abs=1e-3)
    assert pydicom.dcmread(sr_path).StudyID == "IBSI_1_STS_025_C"
    region = seg.get_segment_description(1).anatomic_regions
    assert [c.value for c in region] == [codes.SCT.SoftTissue.value]
    if dicom_tools["dciodvfy"] is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    for path in (seg_path, sr_path):
        # the source's 17-character Study ID was truncated to 16 (strict writing), so no VR finding remains
        assert _dciodvfy_findings(dicom_tools["dciodvfy"], path) == []


def test_measurement_without_axis_end_points_is_kept_without_polyline(
    case: dict, dicom_tools: dict, tmp_path: Path
) -> None:
    """A table-imported measurement (no end points) keeps its axes as numbers, without polylines."""
    bare = LesionMeasurement(
        **{**case["meas"][0].__dict__, "long_axis_endpoints_mm": None, "short_axis_endpoints_mm": None}
    )
    _, sr_path = write_dicom_outputs(
        case["files"], case["ct"], case["masks"][:1], [bare], case["lesions"], tmp_path
    )
    [g] = _groups(sr_path)
    long_axis, short_axis, _volume = g["nums"]
    assert long_axis["value"] == pytest.approx(bare.longest_axial_diameter_mm, abs=1e-6)
    assert short_axis["value"] == pytest.approx(bare.short_axis_mm, abs=1e-6)
    for axis in (long_axis, short_axis):  # no SCOORD; the algorithm identification keeps OHIF's reader safe
        assert [c.ValueType for c in axis["children"]] == ["TEXT", "TEXT"]
    if dicom_tools["dciodvfy"] is not None:
        assert _dciodvfy_findings(dicom_tools["dciodvfy"], sr_path) == []


def test_dciodvfy_clean_on_an_sr_of_an_exam_without_segmentation(
    case: dict, dicom_tools: dict, tmp_path: Path
) -> None:
    if dicom_tools["dciodvfy"] is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    gone = [
        LesionMeasurement(**{**case["meas"][2].__dict__, "lesion_id": lesion.lesion_id})
        for lesion in case["lesions"]
    ]
    (path,) = write_dicom_outputs(case["files"], case["ct"], {}, gone, case["lesions"], tmp_path)
    assert _dciodvfy_findings(dicom_tools["dciodvfy"], path) == []
