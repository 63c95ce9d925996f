"""--pseudonymize: keyed hashes instead of patient IDs in every output; by default no patient name or birth
date in any output (tables, report, DICOM SEG/SR, resume store)."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG

from hpd_imaging.errors import ConfigError
from hpd_imaging.pipeline import RunSummary, run_study
from hpd_imaging.pseudonym import PatientIds, pseudonym, replace_token, resolve_key

KEY = "test-key-0123456789abcdef"


#: identifiers a hospital CT carries besides the patient's name and ID; stamped into a copy of the archive
STUDY_IDENTIFIERS = (
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "OtherPatientIDs",
    "InstitutionName",
)


def _stamp_identifiers(archive: Path, dest: Path) -> Path:
    """A copy of ``archive`` whose CT files carry every STUDY_IDENTIFIERS attribute with a distinctive value
    (the synthetic CTs have an accession number and study ID only)."""
    shutil.copytree(archive, dest)
    for path in dest.glob("*/*/CT/*.dcm"):
        ds = pydicom.dcmread(path)
        pid, exam = str(ds.PatientID), path.parent.parent.name
        ds.StudyID = f"SID{pid[-6:]}{exam[-4:]}"  # SH: at most 16 characters
        ds.ReferringPhysicianName = f"REFERRER^DR{pid}"
        ds.OtherPatientIDs = f"MRN-{pid}-77"
        ds.InstitutionName = "SAINT ELSEWHERE HOSPITAL"
        ds.save_as(path)
    return dest


def _source_identity(archive: Path) -> dict[str, set[str]]:
    """PatientID, PatientName (and its components), PatientBirthDate and the STUDY_IDENTIFIERS of every
    source CT."""
    found: dict[str, set[str]] = {"ids": set(), "names": set(), "birth_dates": set(), "study": set()}
    for path in archive.glob("*/*/CT/1.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found["ids"].add(str(ds.PatientID))
        found["names"].add(str(ds.PatientName))
        # components too, except the ID itself (the synthetic names are SYNTHETIC^<PatientID>)
        found["names"].update(p for p in str(ds.PatientName).split("^") if len(p) >= 4 and p != ds.PatientID)
        if ds.get("PatientBirthDate"):
            found["birth_dates"].add(str(ds.PatientBirthDate))
        found["study"].update(str(ds.get(k)) for k in STUDY_IDENTIFIERS if ds.get(k))
        found["study"].update(p for p in str(ds.get("ReferringPhysicianName", "")).split("^") if len(p) >= 4)
    return found


def _texts(path: Path) -> list[str]:
    """Every readable text of an output file: raw bytes, decoded table cells, npz metadata, DICOM values."""
    texts = [path.read_bytes().decode("latin-1")]
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        texts.append(df.to_csv())
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            texts.extend(bytes(data[k]).decode("latin-1") for k in data.files if data[k].dtype == np.uint8)
    elif path.suffix == ".dcm":
        ds = pydicom.dcmread(path)
        texts.append(str(ds))  # every element, sequences included
    return texts


def _leaks(out: Path, needles: set[str]) -> list[tuple[str, str]]:
    leaks = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        joined = "\n".join(_texts(path))
        leaks.extend((str(path.relative_to(out)), n) for n in needles if n in joined)
    for path in out.rglob("*"):  # folder and file names too
        leaks.extend((str(path.relative_to(out)), n) for n in needles if n in path.name)
    return leaks


def test_pseudonym_is_keyed_sha256_and_scrubs_whole_tokens() -> None:
    expected = "PSN-" + hmac.new(KEY.encode(), b"SYN001", hashlib.sha256).hexdigest()[:16]
    assert pseudonym("SYN001", KEY.encode()) == expected
    assert pseudonym("SYN001", b"another-key-0123456789") != expected
    ids = PatientIds(["SYN001", "SYN0011"], KEY.encode())
    assert ids.scrub(
        "SYN001/2022/CT/1.dcm and SYN0011"
    ) == f"{ids.alias('SYN001')}/2022/CT/1.dcm and " + ids.alias("SYN0011")
    assert replace_token("xSYN001 SYN001_", "SYN001", "P") == "xSYN001 P_"
    with pytest.raises(ConfigError, match="at least 16 characters"):
        resolve_key("short")


def test_default_outputs_hold_no_names_or_birth_dates(reference_run: RunSummary, tiny_archive: Path) -> None:
    """Tables, report and snapshots hold no name or birth date; the DICOM SEG/SR keep the CT's patient module
    (so that viewers file them with their CT, issue 18)."""
    source = _source_identity(tiny_archive)
    assert source["names"] and source["birth_dates"]  # the synthetic CTs do carry them
    leaks = _leaks(reference_run.out_dir, source["names"] | source["birth_dates"])
    assert leaks and all(path.startswith("dicom/") and path.endswith(".dcm") for path, _ in leaks), leaks
    for path in (reference_run.out_dir / "dicom").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ct = pydicom.dcmread(next(tiny_archive.glob(f"{ds.PatientID}/*/CT/1.dcm")), stop_before_pixels=True)
        assert (ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex) == (
            ct.PatientID,
            ct.PatientName,
            ct.PatientBirthDate,
            ct.PatientSex,
        )


def test_pseudonymized_run(
    tiny_archive: Path, reference_run: RunSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPD_PSEUDONYM_KEY", KEY)  # the key comes from the environment
    out = tmp_path / "out"
    archive = _stamp_identifiers(tiny_archive, tmp_path / "archive")
    summary = run_study(archive, out, FAST_CONFIG, dicom_out=True, pseudonymize=True)
    assert summary.exit_code == 0, summary.errors.to_string()
    source = _source_identity(archive)
    assert {"SAINT ELSEWHERE HOSPITAL"} < source["study"] and len(source["study"]) > 10
    aliases = {pid: pseudonym(pid, KEY.encode()) for pid in source["ids"]}

    leaks = _leaks(out, source["ids"] | source["names"] | source["birth_dates"] | source["study"] | {KEY})
    assert leaks == [], leaks
    for name in ("lesions.csv", "kinetics.csv", "response.csv", "tracking.csv"):
        assert set(pd.read_csv(out / name, dtype=str)["patient_id"]) == set(aliases.values()), name
    for name in ("radiomics.parquet", "radiomics_patient.parquet"):
        assert set(pd.read_parquet(out / name)["patient_id"]) == set(aliases.values()), name
    html = (out / "report.html").read_text()
    assert all(a in html for a in aliases.values())
    # the same numbers as the identified run, under other names
    ref = pd.read_csv(reference_run.out_dir / "lesions.csv", dtype={"patient_id": str})
    got = pd.read_csv(out / "lesions.csv", dtype={"patient_id": str})
    ref["patient_id"] = ref["patient_id"].map(aliases)
    cols = ["patient_id", "scan_date", "lesion_id", "volume_mm3", "longest_axial_diameter_mm"]
    pd.testing.assert_frame_equal(
        ref[cols].sort_values(cols[:3]).reset_index(drop=True),
        got[cols].sort_values(cols[:3]).reset_index(drop=True),
    )
    # DICOM SEG and SR: the pseudonym as PatientID and PatientName, no birth date, under dicom/<pseudonym>/
    files = sorted((out / "dicom").rglob("*.dcm"))
    study_uids = {
        pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for p in archive.rglob("CT/*.dcm")
    }
    assert {f.name for f in files} == {"seg.dcm", "sr_tid1500.dcm"}
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.PatientID == f.parent.parent.name and ds.PatientID in aliases.values()
        assert ds.PatientName.family_name == ds.PatientID and ds.PatientBirthDate == ""
        # type 2 identifiers present and empty, type 3 ones absent; the UIDs still those of the source CT
        assert (ds.AccessionNumber, ds.StudyID, str(ds.ReferringPhysicianName)) == ("", "", "")
        assert "OtherPatientIDs" not in ds and "InstitutionName" not in ds
        assert all("InstitutionName" not in item for item in ds.get("ContributingEquipmentSequence", []))
        assert ds.StudyInstanceUID in study_uids
    info = json.loads((out / "run.json").read_text())
    assert info["hpd_imaging_run"]["pseudonymized"] is True
    assert len(info["hpd_imaging_run"]["pseudonym_key_fingerprint"]) == 16
