"""Pairing DICOM SEG and RTSTRUCT files with their CT (references, Frame of Reference, geometry)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from archive_factory import rtstruct, seg, write, write_series

from hpd_imaging.archive import scan_archive
from hpd_imaging.domain import MaskSource

SERIES = "1.2.826.0.20.1"
FOR = "1.2.826.0.20.9"


@pytest.fixture()
def ct_archive(tmp_path: Path) -> tuple[Path, list[str]]:
    """One CT of 10 slices at z = 0..9 mm; returns the folder and its SOP instance UIDs."""
    paths = write_series(tmp_path / "ct", 10, series_uid=SERIES, for_uid=FOR)
    sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
    return tmp_path, sops


def _pairings(root: Path) -> list[tuple[str, str]]:
    archive = scan_archive(root)
    return [(m.path.name, m.pairing) for tp in archive.timepoints.get("P1", []) for m in tp.masks]


def test_seg_paired_by_referenced_series(ct_archive: tuple[Path, list[str]]) -> None:
    root, sops = ct_archive
    write(seg(ref_series_uid=SERIES, ref_sop_uids=sops[2:5], frame_z=[2, 3, 4]), root / "seg.dcm")
    assert _pairings(root) == [("seg.dcm", "series_uid")]


def test_seg_paired_by_instances_when_series_uid_differs(ct_archive: tuple[Path, list[str]]) -> None:
    root, sops = ct_archive
    write(seg(ref_series_uid="1.2.826.0.99", ref_sop_uids=sops[2:5], frame_z=[2, 3, 4]), root / "seg.dcm")
    assert _pairings(root) == [("seg.dcm", "instances")]


def test_seg_paired_by_frame_of_reference_when_references_are_stale(
    ct_archive: tuple[Path, list[str]],
) -> None:
    root, _ = ct_archive
    stale = seg(ref_series_uid="1.2.826.0.99", ref_sop_uids=["1.2.826.0.99.1"], frame_z=[3, 4], for_uid=FOR)
    write(stale, root / "seg.dcm")
    assert _pairings(root) == [("seg.dcm", "frame_of_reference")]


def test_seg_paired_by_geometry_without_usable_uids(ct_archive: tuple[Path, list[str]]) -> None:
    root, _ = ct_archive
    write(seg(ref_series_uid="1.2.826.0.99", for_uid="", frame_z=[3, 4]), root / "seg.dcm")
    assert _pairings(root) == [("seg.dcm", "geometry")]


def test_seg_outside_the_ct_or_of_another_grid_pairs_with_nothing(ct_archive: tuple[Path, list[str]]) -> None:
    root, _ = ct_archive
    # same Frame of Reference but 40 mm beyond the last slice; a finer pixel grid; another patient
    write(seg(ref_series_uid="1.2.826.0.99", frame_z=[50, 51], for_uid=FOR), root / "far.dcm")
    write(seg(ref_series_uid="1.2.826.0.99", for_uid="", frame_z=[3], spacing=(0.5, 0.5)), root / "grid.dcm")
    write(seg(ref_series_uid="1.2.826.0.99", frame_z=[3], patient_id="P2"), root / "other.dcm")
    archive = scan_archive(root)
    assert [m.path.name for m in archive.timepoints["P1"][0].masks] == []
    unpaired = sorted(i.path for i in archive.issues if "pairs with no CT series" in i.message)
    assert unpaired == ["far.dcm", "grid.dcm", "other.dcm"]


def test_rtstruct_paired_by_series_then_frame_of_reference_then_geometry(
    ct_archive: tuple[Path, list[str]],
) -> None:
    root, sops = ct_archive
    write(
        rtstruct(ref_series_uid=SERIES, ref_for_uid=FOR, contour_z=[2, 3], contour_sop_uids=sops[2:4]),
        root / "a.dcm",
    )
    write(rtstruct(ref_series_uid="1.2.826.0.98", ref_for_uid=FOR, contour_z=[2, 3]), root / "b.dcm")
    write(rtstruct(ref_series_uid=None, ref_for_uid=None, contour_z=[4.0, 5.0]), root / "c.dcm")
    assert sorted(_pairings(root)) == [
        ("a.dcm", "series_uid"),
        ("b.dcm", "frame_of_reference"),
        ("c.dcm", "geometry"),
    ]


# ---------------------------------------------------------------------------------------------- real data


def test_ibsi_rtstruct_pairs_despite_stale_sop_references(real_data: Path) -> None:
    archive = scan_archive(real_data / "ibsi_sts" / "dicom")
    for pid, n_slices in (("STS_001", 59), ("STS_025", 47)):
        (tp,) = archive.timepoints[pid]
        assert tp.ct.n_slices == n_slices
        (mask,) = tp.masks
        assert mask.source is MaskSource.RTSTRUCT
        assert mask.path.name == "RS.dcm" and mask.path.parent.name == "mask"
        assert mask.pairing == "series_uid+geometry"
        assert mask.referenced_series_uid == tp.ct.series_instance_uid
        stale = [i for i in archive.issues if i.patient_id == pid and "stale references" in i.message]
        assert len(stale) == 1 and "none of the 267 referenced SOP instances" in stale[0].message


def test_ibsi_rtstruct_falls_back_to_frame_of_reference_and_geometry(real_data: Path, tmp_path: Path) -> None:
    """The same RTSTRUCT with its series reference (then also its FoR) made useless: FoR, then geometry."""
    source = real_data / "ibsi_sts" / "dicom" / "STS_025" / "CT"
    (tmp_path / "image").mkdir()
    for f in (source / "image").iterdir():
        (tmp_path / "image" / f.name).symlink_to(f)
    rs = pydicom.dcmread(source / "mask" / "RS.dcm")
    series_item = (
        rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    )
    series_item.SeriesInstanceUID = "1.2.826.0.1.404"
    rs.save_as(tmp_path / "rs_for.dcm")
    rs.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.826.0.1.405"
    rs.StructureSetROISequence[0].ReferencedFrameOfReferenceUID = "1.2.826.0.1.405"
    rs.FrameOfReferenceUID = "1.2.826.0.1.405"
    rs.save_as(tmp_path / "rs_geo.dcm")
    archive = scan_archive(tmp_path)
    (tp,) = archive.timepoints["STS_025"]
    assert sorted((m.path.name, m.pairing) for m in tp.masks) == [
        ("rs_for.dcm", "frame_of_reference"),
        ("rs_geo.dcm", "geometry"),
    ]


def test_dcmqi_seg_pairs_with_ct_3slice(real_data: Path) -> None:
    archive = scan_archive(real_data / "dcmqi_ct3_seg_sr" / "data" / "segmentations")
    (tp,) = archive.timepoints["99000"]
    assert tp.ct.n_slices == 3 and tp.ct.rows == 512
    assert sorted(p.name for p in tp.ct.files) == ["01.dcm", "02.dcm", "03.dcm"]
    assert tp.ct.series_instance_uid == "1.2.392.200103.20080913.113635.1.2009.6.22.21.43.10.23430.1"
    assert sorted((m.path.name, m.source.value, m.pairing) for m in tp.masks) == [
        ("liver.dcm", "seg", "series_uid"),
        ("liver_seg.nrrd", "labelmap", "folder"),  # 512x512x3 NRRD next to the CT folder: size decides
        ("partial_overlaps.dcm", "seg", "series_uid"),
    ]
    assert tp.choice_reason == "referenced by 3 segmentation(s)"


def test_whole_real_data_folder_scans_without_crashing(real_data: Path) -> None:
    """Every real set at once: mixed layouts, licences and READMEs, SR, J2K, blank UIDs, undated series."""
    archive = scan_archive(real_data)
    assert archive.n_files == 224
    table = archive.series_table()
    # the GE tilt series has blank dates: listed, excluded, reported
    ge = table[table["folder"] == "dcm_qa_ct_GE_tilt/In/GE"]
    assert ge["n_slices"].tolist() == [28]
    assert ge["choice_reason"].tolist() == ["excluded: no valid StudyDate/SeriesDate"]
    # the QIN-HEADNECK SEG references a PET series that is not in the data
    unpaired = {i.path for i in archive.issues if "pairs with no CT series" in i.message}
    assert unpaired == {"dcmqi_ct3_seg_sr/data/sr-example/seg.dcm"}
    # rt-utils' RTSTRUCT whose contour images are partly absent is paired, with the gap reported
    (phantom,) = archive.timepoints["PHANTOM_EXAMPLE"]
    assert sorted((m.path.name, m.pairing) for m in phantom.masks) == [
        ("invalid_reference_rt.dcm", "series_uid"),
        ("non_existent_reference_rt.dcm", "instances"),
        ("rt.dcm", "series_uid"),
    ]
    assert any(
        i.path.endswith("invalid_reference_rt.dcm")
        and "3 of the 5 referenced SOP instances are absent" in i.message
        for i in archive.issues
    )
