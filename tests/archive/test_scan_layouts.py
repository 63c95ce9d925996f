"""scan_archive on nested, flat, DICOMDIR and mixed layouts built from tiny synthetic DICOM files."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from archive_factory import ct_slice, seg, write, write_series
from pydicom.fileset import FileSet

from hpd_imaging.archive import scan_archive
from hpd_imaging.domain import MaskSource
from hpd_imaging.errors import ConfigError

EXAMS = [  # (patient, date, series uid, n slices)
    ("P1", "20240101", "1.2.826.0.1.1", 5),
    ("P1", "20240315", "1.2.826.0.1.2", 6),
    ("P2", "20240110", "1.2.826.0.1.3", 4),
]


def _build(root: Path, nested: bool) -> dict[str, list[str]]:
    """Three exams of two patients with a SEG each; returns series uid -> SOP instance uids."""
    sops: dict[str, list[str]] = {}
    for pid, date, suid, n in EXAMS:
        folder = root / pid / date / "CT" if nested else root
        kw = dict(
            patient_id=pid, study_date=date, study_uid=suid + ".0", series_uid=suid, for_uid=suid + ".9"
        )
        paths = write_series(folder, n, prefix=f"{pid}_{date}_", **kw)
        sops[suid] = [p.name for p in paths]
        ref_sops = [str(ct.SOPInstanceUID) for ct in (_sop(p) for p in paths)]
        mask = seg(
            ref_series_uid=suid,
            ref_sop_uids=ref_sops,
            frame_z=[1.0, 2.0],
            patient_id=pid,
            for_uid=suid + ".9",
            study_uid=suid + ".0",
            study_date=date,
        )
        write(mask, (root / pid / date / "SEG" / "seg.dcm") if nested else root / f"{pid}_{date}_seg.dcm")
    return sops


def _sop(path: Path):  # noqa: ANN202
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True)


def _summary(archive) -> list[tuple[str, dt.date, str, int, tuple[str, ...]]]:  # noqa: ANN001
    return [
        (
            tp.patient_id,
            tp.scan_date,
            tp.ct.series_instance_uid,
            tp.ct.n_slices,
            tuple(m.pairing for m in tp.masks),
        )
        for pid in archive.patients
        for tp in archive.timepoints[pid]
    ]


EXPECTED = [
    ("P1", dt.date(2024, 1, 1), "1.2.826.0.1.1", 5, ("series_uid",)),
    ("P1", dt.date(2024, 3, 15), "1.2.826.0.1.2", 6, ("series_uid",)),
    ("P2", dt.date(2024, 1, 10), "1.2.826.0.1.3", 4, ("series_uid",)),
]


def test_nested_layout_indexes_patients_exams_and_pairs_seg(tmp_path: Path) -> None:
    _build(tmp_path, nested=True)
    archive = scan_archive(tmp_path)
    assert _summary(archive) == EXPECTED
    assert archive.n_files == 5 + 6 + 4 + 3
    assert archive.n_non_dicom_skipped == 0
    assert archive.issues == []
    tp = archive.timepoints["P1"][0]
    assert tp.masks[0].source is MaskSource.SEG
    assert tp.masks[0].path == tmp_path / "P1" / "20240101" / "SEG" / "seg.dcm"
    assert tp.choice_reason == "referenced by 1 segmentation(s)"
    # exams are sorted by date and every file of the chosen CT is listed
    assert [t.scan_date for t in archive.timepoints["P1"]] == [dt.date(2024, 1, 1), dt.date(2024, 3, 15)]
    assert sorted(p.name for p in tp.ct.files) == [f"P1_20240101_{i:03d}.dcm" for i in range(5)]


def test_flat_layout_gives_the_same_index(tmp_path: Path) -> None:
    _build(tmp_path, nested=False)
    archive = scan_archive(tmp_path)
    assert _summary(archive) == EXPECTED
    assert archive.issues == []


def test_dicomdir_layout_is_found_and_checked(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    _build(staging, nested=True)
    fs = FileSet()
    for path in sorted(staging.rglob("*.dcm")):
        fs.add(path)
    media = tmp_path / "media"
    fs.write(media)
    shutil.rmtree(staging)
    assert (media / "DICOMDIR").is_file()
    archive = scan_archive(media)
    assert _summary(archive) == EXPECTED
    assert archive.n_non_dicom_skipped == 0  # the DICOMDIR itself is recognised, not skipped as foreign
    assert archive.issues == []

    # a file listed by the DICOMDIR but gone is reported, and the rest is still indexed
    victim = next(p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    victim.unlink()
    archive = scan_archive(media)
    assert any("DICOMDIR lists 1 file(s) that are absent" in i.message for i in archive.issues)
    assert len(archive.patients) == 2


def test_mixed_layout_counts_and_skips_non_dicom(tmp_path: Path) -> None:
    _build(tmp_path, nested=True)
    (tmp_path / "README.txt").write_text("notes")
    (tmp_path / "P1" / "report.pdf").write_bytes(b"%PDF-1.4 fake")
    (tmp_path / "P1" / "20240101" / "thumbs.db").write_bytes(b"\x00" * 10)
    (tmp_path / "P2" / "empty").write_bytes(b"")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    # damaged DICOM files: a header cut short, and magic followed by garbage -> one issue each
    whole = write(ct_slice(z=0.0, patient_id="P2"), tmp_path / "whole.dcm").read_bytes()
    (tmp_path / "whole.dcm").unlink()
    (tmp_path / "P2" / "broken.dcm").write_bytes(whole[:600])
    (tmp_path / "P2" / "garbage.dcm").write_bytes(
        b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x07\x00xxxxxxx"
    )
    archive = scan_archive(tmp_path)
    assert _summary(archive) == EXPECTED
    assert archive.n_non_dicom_skipped == 5
    assert archive.n_files == 18 + 7
    assert {(i.path, i.message) for i in archive.issues} == {
        ("P2/broken.dcm", "image header without Rows (damaged or truncated file?)"),
        ("P2/garbage.dcm", "DICOM file without SOPClassUID or Modality (damaged/truncated?)"),
    }


def test_missing_archive_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected an archive folder, got nothing"):
        scan_archive(tmp_path / "nope")


def test_series_without_patient_id_takes_folder_name_and_is_reported(tmp_path: Path) -> None:
    write_series(tmp_path / "anon01" / "ct", 3, patient_id="", series_uid="1.2.826.0.7")
    archive = scan_archive(tmp_path)
    assert archive.patients == ["anon01"]
    assert any("without PatientID" in i.message and i.patient_id == "anon01" for i in archive.issues)


def test_series_without_any_date_is_reported_not_indexed(tmp_path: Path) -> None:
    for i in range(3):
        ds = ct_slice(z=float(i), series_uid="1.2.826.0.8")
        del ds.StudyDate, ds.ContentDate  # and no SeriesDate or AcquisitionDate either
        write(ds, tmp_path / f"{i}.dcm")
    archive = scan_archive(tmp_path)
    assert archive.timepoints == {}
    assert any("no valid StudyDate/SeriesDate" in i.message for i in archive.issues)
    table = archive.series_table()
    assert table["choice_reason"].tolist() == ["excluded: no valid StudyDate/SeriesDate"]
