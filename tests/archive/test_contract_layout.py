"""The synthetic-archive layout of contracts.md: one CT + its mask per timepoint, all three mask formats."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk  # noqa: N813
from archive_factory import rtstruct, seg, write, write_series

from hpd_imaging.archive import read_clinical, scan_archive

DATES = ("20240105", "20240310", "20240520")
REQUIRED_COLUMNS = {
    "patient_id",
    "scan_date",
    "study_uid",
    "series_uid",
    "modality",
    "n_slices",
    "rows",
    "columns",
    "slice_thickness_mm",
    "series_description",
    "convolution_kernel",
    "chosen",
    "choice_reason",
    "mask_files",
    "mask_pairing",
}


def _build(root: Path) -> None:
    manifest = ["patient_id,series_uid,mask_path,label,lesion_id,organ,is_lymph_node"]
    for p, fmt in enumerate(("seg", "rtstruct", "nifti")):
        pid = f"SYN{p:03d}"
        for t, date in enumerate(DATES):
            suid, for_uid = f"1.2.826.0.50.{p}.{t}", f"1.2.826.0.50.{p}.{t}.9"
            exam = root / pid / date
            paths = write_series(
                exam / "CT",
                6,
                patient_id=pid,
                study_date=date,
                series_uid=suid,
                for_uid=for_uid,
                study_uid=suid + ".0",
            )
            sops = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in paths[1:3]]
            if fmt == "seg":
                mask = seg(
                    ref_series_uid=suid, ref_sop_uids=sops, frame_z=[1, 2], patient_id=pid, for_uid=for_uid
                )
                write(mask, exam / "SEG" / "seg.dcm")
            elif fmt == "rtstruct":
                mask = rtstruct(
                    ref_series_uid=suid,
                    ref_for_uid=for_uid,
                    contour_z=[1, 2],
                    contour_sop_uids=sops,
                    patient_id=pid,
                )
                write(mask, exam / "RTSTRUCT" / "rtstruct.dcm")
            else:
                (exam / "LABELS").mkdir()
                sitk.WriteImage(
                    sitk.GetImageFromArray(np.zeros((6, 4, 4), np.uint8)),
                    str(exam / "LABELS" / "labels.nii.gz"),
                )
                manifest.append(f"{pid},{suid},{pid}/{date}/LABELS/labels.nii.gz,1,L1,lung,false")
    (root / "masks.csv").write_text("\n".join(manifest) + "\n")
    (root / "clinical.csv").write_text(
        "patient_id,ici_start_date\nSYN000,2024-03-01\nSYN001,2024-03-01\nSYN002,2024-03-01\n"
    )
    (root / "ground_truth.json").write_text("{}")


def test_one_ct_and_its_mask_per_timepoint(tmp_path: Path) -> None:
    _build(tmp_path)
    archive = scan_archive(tmp_path, cache_dir=tmp_path.parent / "out")
    assert archive.issues == []
    assert archive.patients == ["SYN000", "SYN001", "SYN002"]
    assert archive.n_non_dicom_skipped == 1  # ground_truth.json; masks.csv and clinical.csv are recognised
    assert archive.clinical_path == tmp_path / "clinical.csv"
    expected_pairing = {"SYN000": "series_uid", "SYN001": "series_uid", "SYN002": "manifest"}
    for pid, tps in archive.timepoints.items():
        assert [tp.scan_date for tp in tps] == [
            dt.date(2024, 1, 5),
            dt.date(2024, 3, 10),
            dt.date(2024, 5, 20),
        ]
        for tp in tps:
            assert tp.ct.n_slices == 6
            assert len(tp.masks) == 1 and tp.masks[0].pairing == expected_pairing[pid]
            assert tp.masks[0].referenced_series_uid == tp.ct.series_instance_uid
    table = archive.series_table()
    assert set(table.columns) >= REQUIRED_COLUMNS
    assert len(table) == 9 and table["chosen"].all()
    row = table[(table["patient_id"] == "SYN001") & (table["scan_date"] == "2024-03-10")].iloc[0]
    assert row["mask_files"] == "SYN001/20240310/RTSTRUCT/rtstruct.dcm"
    assert row["folder"] == "SYN001/20240310/CT"
    clinical = read_clinical(archive.clinical_path, known_patients=archive.patients)
    assert len(clinical) == 3
