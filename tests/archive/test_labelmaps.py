"""Label maps (NIfTI/NRRD): masks.csv manifest, naming conventions, refused paths, images vs label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813
from archive_factory import write_series

from hpd_imaging.archive import scan_archive
from hpd_imaging.domain import MaskSource

SERIES = "1.2.826.0.40.1"


def _labelmap(path: Path, shape_kji: tuple[int, int, int] = (5, 4, 4), dtype: type = np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros(shape_kji, dtype=dtype)), str(path))
    return path


def _exam(root: Path) -> Path:
    ct = root / "P1" / "20240101" / "CT"
    write_series(ct, 5, series_uid=SERIES)
    return ct


def test_manifest_pairs_label_map_with_label_table(tmp_path: Path) -> None:
    _exam(tmp_path)
    _labelmap(tmp_path / "labels" / "p1_baseline.nii.gz")
    (tmp_path / "masks.csv").write_text(
        "patient_id,series_uid,mask_path,label,lesion_id,organ,is_lymph_node\n"
        f"P1,{SERIES},labels/p1_baseline.nii.gz,1,L1,liver,false\n"
        f"P1,{SERIES},labels/p1_baseline.nii.gz,2,N1,lymph_node,true\n"
    )
    archive = scan_archive(tmp_path)
    (tp,) = archive.timepoints["P1"]
    (mask,) = tp.masks
    assert mask.source is MaskSource.LABELMAP and mask.pairing == "manifest"
    assert mask.path == tmp_path / "labels" / "p1_baseline.nii.gz"
    assert mask.referenced_series_uid == SERIES
    assert mask.label_table == ((1, "L1", "liver", False), (2, "N1", "lymph_node", True))
    assert archive.manifest_path == tmp_path / "masks.csv"
    assert archive.issues == []


def test_manifest_by_folder_and_size_mismatch_reported(tmp_path: Path) -> None:
    _exam(tmp_path)
    _labelmap(tmp_path / "lm.nrrd", shape_kji=(6, 4, 4))
    (tmp_path / "masks.csv").write_text("patient_id,folder,mask_path,label\nP1,P1/20240101/CT,lm.nrrd,1\n")
    archive = scan_archive(tmp_path)
    (mask,) = archive.timepoints["P1"][0].masks
    assert mask.pairing == "manifest" and mask.label_table == ((1, "1", "", False),)
    (issue,) = archive.issues
    assert "label map size [4, 4, 6] differs from the CT matrix (4, 4, 5)" in issue.message


def test_manifest_paths_escaping_the_archive_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    _exam(root)
    _labelmap(tmp_path / "outside.nii.gz")
    (root / "masks.csv").write_text(
        "patient_id,series_uid,mask_path,label\n"
        f"P1,{SERIES},../outside.nii.gz,1\n"
        f"P1,{SERIES},{tmp_path / 'outside.nii.gz'},1\n"
        f"P1,{SERIES},labels/missing.nii.gz,1\n"
        f"P1,{SERIES},P1/../../outside.nii.gz,1\n"
    )
    archive = scan_archive(root)
    assert archive.timepoints["P1"][0].masks == ()
    messages = [i.message for i in archive.issues]
    assert messages == [
        "masks.csv line 2: mask_path '../outside.nii.gz' escapes the archive; refused",
        f"masks.csv line 3: mask_path '{tmp_path / 'outside.nii.gz'}' escapes the archive; refused",
        "masks.csv line 4: mask_path 'labels/missing.nii.gz' does not exist",
        "masks.csv line 5: mask_path 'P1/../../outside.nii.gz' escapes the archive; refused",
    ]


def test_manifest_with_missing_columns_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    _exam(tmp_path)
    (tmp_path / "masks.csv").write_text("patient,file\nP1,x.nii.gz\n")
    archive = scan_archive(tmp_path)
    assert len(archive.timepoints["P1"]) == 1
    assert "masks.csv: missing required column(s) ['patient_id', 'mask_path', 'series_uid or folder']" in (
        archive.issues[0].message
    )


def test_convention_series_folder_name(tmp_path: Path) -> None:
    ct = _exam(tmp_path)
    _labelmap(ct.parent / "CT_seg.nii.gz")
    _labelmap(ct.parent / "CT.nii.gz", dtype=np.int16)  # dcm2niix's conversion of the CT: an image, skipped
    archive = scan_archive(tmp_path)
    (mask,) = archive.timepoints["P1"][0].masks
    assert (mask.path.name, mask.pairing) == ("CT_seg.nii.gz", "folder_name")
    assert archive.n_non_dicom_skipped == 1

    other = tmp_path / "other"
    write_series(other / "P2" / "series7", 5, patient_id="P2", series_uid="1.2.826.0.40.7")
    _labelmap(other / "P2" / "series7.nrrd")
    (mask,) = scan_archive(other).timepoints["P2"][0].masks
    assert (mask.path.name, mask.pairing) == ("series7.nrrd", "folder_name")


def test_convention_label_map_in_exam_folder(tmp_path: Path) -> None:
    # the synthetic archive layout: <patient>/<date>/LABELS/labels.nii.gz next to <patient>/<date>/CT/
    ct = _exam(tmp_path)
    write_series(tmp_path / "P1" / "20240301" / "CT", 5, series_uid="1.2.826.0.40.2", study_date="20240301")
    _labelmap(ct.parent / "LABELS" / "labels.nii.gz")
    _labelmap(tmp_path / "P1" / "20240301" / "LABELS" / "labels.nii.gz")
    archive = scan_archive(tmp_path)
    pairs = [
        (tp.scan_date.isoformat(), m.path.parent.parent.name, m.pairing)
        for tp in archive.timepoints["P1"]
        for m in tp.masks
    ]
    assert pairs == [("2024-01-01", "20240101", "folder"), ("2024-03-01", "20240301", "folder")]
    assert archive.issues == []


def test_images_are_not_label_maps_and_unpaired_label_maps_are_reported(tmp_path: Path) -> None:
    _exam(tmp_path)
    _labelmap(tmp_path / "elsewhere" / "CT_image.nii.gz", dtype=np.float32)
    _labelmap(tmp_path / "elsewhere" / "case_0000.nii.gz", dtype=np.int16)
    _labelmap(tmp_path / "elsewhere" / "deep" / "er" / "still" / "seg.nii.gz")
    archive = scan_archive(tmp_path)
    assert archive.n_non_dicom_skipped == 2
    assert archive.timepoints["P1"][0].masks == ()
    assert [(i.path, i.message) for i in archive.issues] == [
        (
            "elsewhere/deep/er/still/seg.nii.gz",
            "label map: pairs with no CT series (not in masks.csv, no naming convention applies)",
        )
    ]
