"""DICOM SEG + TID 1500 SR writing: round trips through highdicom, DCMTK dsrdump and dicom3tools dciodvfy.

The inputs are built by hand: a tiny CT Image Storage series (32x32x8, 0.8x0.8x2.5 mm, origin off zero)
written with pydicom, two box-shaped lesions whose voxel counts, volumes and axis end points are known
exactly, and a third lesion that has disappeared at this timepoint.
"""

from __future__ import annotations

import contextlib
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
)
from hpd_imaging.errors import GeometryError, MaskError, MeasurementError
from hpd_imaging.io.dicom_out import SEG_FILENAME, SR_FILENAME, write_dicom_outputs

SHAPE = (8, 32, 32)  # k, j, i
SPACING = (0.8, 0.8, 2.5)  # i, j, k
ORIGIN = (-12.4, -20.0, 30.0)
SCAN_DATE = dt.date(2021, 3, 4)


def _apt_install_once(*packages: str) -> None:
    """Try `apt-get install -y` once per session; failures are ignored (the caller checks for the tool)."""
    if shutil.which("apt-get") is None:
        return
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(["apt-get", "install", "-y", *packages], capture_output=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def dicom_tools() -> dict[str, str | None]:
    """Paths of dsrdump (dcmtk) and dciodvfy (dicom3tools), installing them once when absent."""
    if shutil.which("dsrdump") is None or shutil.which("dciodvfy") is None:
        _apt_install_once("dcmtk", "dicom3tools")
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
        assert ds.PatientID == "HPD-TEST-001"


def test_seg_round_trip_voxels_and_tracking(case: dict) -> None:
    seg = hd.seg.segread(case["out"] / SEG_FILENAME)
    assert seg.SegmentationType == "BINARY"
    assert seg.number_of_segments == 2
    lesions = {lesion.lesion_id: lesion for lesion in case["lesions"]}
    for n, mask, meas in zip((1, 2), case["masks"], case["meas"][:2], strict=True):
        desc = seg.get_segment_description(n)
        assert desc.segment_label == meas.lesion_id
        assert desc.tracking_id == meas.lesion_id
        assert desc.tracking_uid == lesions[meas.lesion_id].tracking_uid
        assert seg.get_segment_numbers(tracking_uid=lesions[meas.lesion_id].tracking_uid) == [n]
        # voxel-exact: read back on the source-instance order (= slice index k) and compare to the input mask
        sop_uids = [(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in case["files"]]
        arr = seg.get_pixels_by_source_instance(
            sop_uids, segment_numbers=[n], assert_missing_frames_are_empty=True
        )
        assert arr.shape == (*SHAPE, 1)
        assert int(arr.sum()) == mask.voxel_count == meas.voxel_count
        assert np.array_equal(arr[..., 0].astype(bool), mask.mask)


def test_seg_anatomic_regions(case: dict) -> None:
    seg = hd.seg.segread(case["out"] / SEG_FILENAME)
    d1, d2 = seg.get_segment_description(1), seg.get_segment_description(2)
    assert d1.segmented_property_type == codes.SCT.Neoplasm
    assert d1.segmented_property_category == codes.SCT.MorphologicallyAbnormalStructure
    assert [c.value for c in d1.anatomic_regions] == [codes.SCT.Lung.value]
    assert [c.value for c in d2.anatomic_regions] == [codes.SCT.LymphNode.value]


def _value(group, code) -> float:
    [m] = [m for m in group.get_measurements() if m.name == code]
    return float(m.value)


def test_sr_round_trip_every_measurement_by_tracking_uid(case: dict) -> None:
    sr = hd.sr.srread(case["out"] / SR_FILENAME)
    report = sr.content
    seg_ds = pydicom.dcmread(case["out"] / SEG_FILENAME, stop_before_pixels=True)
    lesions = {lesion.lesion_id: lesion for lesion in case["lesions"]}
    for meas in case["meas"][:2]:
        uid = lesions[meas.lesion_id].tracking_uid
        [vol] = report.get_volumetric_roi_measurement_groups(tracking_uid=uid)
        assert vol.tracking_identifier == meas.lesion_id
        assert abs(_value(vol, codes.SCT.Volume) - meas.volume_mm3) < 1e-6
        ref = vol.referenced_segment
        assert ref.referenced_sop_instance_uid == seg_ds.SOPInstanceUID
        assert ref.referenced_segment_numbers == [case["meas"].index(meas) + 1]
        planar = report.get_planar_roi_measurement_groups(tracking_uid=uid)
        assert len(planar) == 2
        values = {}
        for group in planar:
            region = group.roi
            assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
            data = region.value
            assert data.shape == (2, 2)
            for m in group.get_measurements():
                values[m.name.value] = (float(m.value), data)
        la, la_pts = values[codes.SCT.LongAxis.value]
        sa, sa_pts = values[codes.SCT.ShortAxis.value]
        assert abs(la - meas.longest_axial_diameter_mm) < 1e-6
        assert abs(sa - meas.short_axis_mm) < 1e-6
        # the polyline's length in pixels x spacing equals the measured axis (box: axis-aligned end points)
        assert np.linalg.norm((la_pts[1] - la_pts[0]) * SPACING[:2]) == pytest.approx(
            meas.longest_axial_diameter_mm, abs=1e-4
        )
        assert np.linalg.norm((sa_pts[1] - sa_pts[0]) * SPACING[:2]) == pytest.approx(
            meas.short_axis_mm, abs=1e-4
        )
    # the disappeared lesion is reported with 0 mm under its tracking UID in a TID 1501 group
    groups = report.get_image_measurement_groups(tracking_uid=lesions["L3"].tracking_uid)
    assert len(groups) == 1
    assert _value(groups[0], codes.SCT.LongAxis) == 0.0
    # evidence: the SEG and every CT instance
    refs = {
        sop.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert seg_ds.SOPInstanceUID in refs
    assert {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in case["files"]} <= refs


def test_polyline_points_are_pixel_centres_on_key_slice(case: dict) -> None:
    """SCOORD (0,0) is the top-left pixel's corner: L1's long axis spans columns 4..11 on row 12, slice 3."""
    sr = hd.sr.srread(case["out"] / SR_FILENAME)
    uid = case["lesions"][0].tracking_uid
    files_by_sop = {
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: k for k, f in enumerate(case["files"])
    }
    for group in sr.content.get_planar_roi_measurement_groups(tracking_uid=uid):
        names = [m.name.value for m in group.get_measurements()]
        ref = group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert files_by_sop[ref] == 3
        if names == [codes.SCT.LongAxis.value]:
            assert np.allclose(group.roi.value, [[4.5, 12.5], [11.5, 12.5]])
        else:
            assert np.allclose(group.roi.value, [[8.5, 10.5], [8.5, 14.5]])


def test_rerun_is_byte_identical_and_tracking_uid_stable_across_timepoints(
    case: dict, tmp_path: Path
) -> None:
    again = write_dicom_outputs(
        case["files"], case["ct"], case["masks"], case["meas"], case["lesions"], tmp_path / "a"
    )
    for p, q in zip(case["paths"], again, strict=True):
        assert p.read_bytes() == q.read_bytes(), f"{p.name} differs between two identical runs"
    # a follow-up exam (new study/series UIDs, later date, L1 grown by one column) keeps the tracking UIDs
    geometry = case["ct"].geometry
    study2, series2 = generate_uid(entropy_srcs=["fu", "study"]), generate_uid(entropy_srcs=["fu", "series"])
    later = dt.date(2021, 5, 6)
    files2 = write_ct_series(
        tmp_path / "CT2",
        case["ct"].hu,
        geometry,
        study_uid=study2,
        series_uid=series2,
        for_uid=generate_uid(entropy_srcs=["fu", "for"]),
        study_date=later,
    )
    m1, meas1 = _box_lesion(geometry, slice(2, 5), slice(10, 15), slice(4, 13), "L1", "tumour a", "lung")
    meas1 = LesionMeasurement(**{**meas1.__dict__, "scan_date": later})
    paths2 = write_dicom_outputs(files2, case["ct"], [m1], [meas1], case["lesions"], tmp_path / "fu")
    seg2 = hd.seg.segread(paths2[0])
    assert seg2.get_segment_description(1).tracking_uid == case["lesions"][0].tracking_uid
    sr2 = hd.sr.srread(paths2[1])
    [vol] = sr2.content.get_volumetric_roi_measurement_groups(tracking_uid=case["lesions"][0].tracking_uid)
    assert abs(_value(vol, codes.SCT.Volume) - 3 * 5 * 9 * 0.8 * 0.8 * 2.5) < 1e-6
    sr1 = pydicom.dcmread(case["paths"][1])
    assert sr2.SeriesInstanceUID != sr1.SeriesInstanceUID and sr2.SOPInstanceUID != sr1.SOPInstanceUID


def test_dsrdump_parses_sr(case: dict, dicom_tools: dict) -> None:
    if dicom_tools["dsrdump"] is None:
        pytest.skip("dsrdump (Debian package dcmtk) is not installed and `apt-get install -y dcmtk` failed")
    res = subprocess.run(
        [dicom_tools["dsrdump"], str(case["out"] / SR_FILENAME)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert "Imaging Measurement Report" in res.stdout
    for lesion in case["lesions"]:
        assert lesion.tracking_uid in res.stdout
    assert "POLYLINE" in res.stdout


@pytest.mark.parametrize("name", [SEG_FILENAME, SR_FILENAME])
def test_dciodvfy_reports_no_errors(case: dict, dicom_tools: dict, name: str) -> None:
    if dicom_tools["dciodvfy"] is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed and apt-get install failed")
    res = subprocess.run(
        [dicom_tools["dciodvfy"], str(case["out"] / name)], capture_output=True, text=True, timeout=60
    )
    output = res.stdout + res.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert not errors, "\n".join(errors)


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
    sr = hd.sr.srread(sr_path)
    [vol] = sr.content.get_volumetric_roi_measurement_groups(tracking_uid=lesion.tracking_uid)
    assert abs(_value(vol, codes.SCT.Volume) - meas.volume_mm3) < 1e-6
    spacing = np.array(geometry.spacing_mm[:2])
    planar = sr.content.get_planar_roi_measurement_groups(tracking_uid=lesion.tracking_uid)
    found = {}
    for group in planar:
        [m] = group.get_measurements()
        found[m.name.value] = float(m.value)
        # the drawn polyline is as long as the reported axis
        assert np.linalg.norm((group.roi.value[1] - group.roi.value[0]) * spacing) == pytest.approx(
            float(m.value), abs=1e-3
        )
    assert found[codes.SCT.LongAxis.value] == pytest.approx(meas.longest_axial_diameter_mm, abs=1e-6)
    assert found[codes.SCT.ShortAxis.value] == pytest.approx(meas.short_axis_mm, abs=1e-6)
    assert pydicom.dcmread(sr_path).StudyID == "IBSI_1_STS_025_C"
    region = seg.get_segment_description(1).anatomic_regions
    assert [c.value for c in region] == [codes.SCT.SoftTissue.value]
    if dicom_tools["dciodvfy"] is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed and apt-get install failed")
    for path in (seg_path, sr_path):
        res = subprocess.run([dicom_tools["dciodvfy"], str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
        # the source's 17-character Study ID was truncated to 16 (strict writing), so no VR error remains
        assert not errors, "\n".join(errors)


def test_measurement_without_axis_end_points_is_kept_without_polyline(
    case: dict, dicom_tools: dict, tmp_path: Path
) -> None:
    """A table-imported measurement (no end points) keeps its axes as numbers in the volumetric group."""
    bare = LesionMeasurement(
        **{**case["meas"][0].__dict__, "long_axis_endpoints_mm": None, "short_axis_endpoints_mm": None}
    )
    _, sr_path = write_dicom_outputs(
        case["files"], case["ct"], case["masks"][:1], [bare], case["lesions"], tmp_path
    )
    report = hd.sr.srread(sr_path).content
    uid = case["lesions"][0].tracking_uid
    assert report.get_planar_roi_measurement_groups(tracking_uid=uid) == []
    [vol] = report.get_volumetric_roi_measurement_groups(tracking_uid=uid)
    assert _value(vol, codes.SCT.LongAxis) == pytest.approx(bare.longest_axial_diameter_mm, abs=1e-6)
    assert _value(vol, codes.SCT.ShortAxis) == pytest.approx(bare.short_axis_mm, abs=1e-6)
    if dicom_tools["dciodvfy"] is not None:
        res = subprocess.run(
            [dicom_tools["dciodvfy"], str(sr_path)], capture_output=True, text=True, timeout=60
        )
        assert not [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
