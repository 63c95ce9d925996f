"""`hpd-imaging synth` then `run --dicom-out`, read back by the viewers' own code, against lesions.csv.

Done-when of issue 18: every measured lesion-timepoint hydrates in OHIF's adapters as one Bidirectional
with long and short axis equal to lesions.csv within 0.1 mm; dcmqi's tid1500reader (3D Slicer's reader path)
gives a table whose long-axis, short-axis and volume columns equal lesions.csv; every lesions.csv row has an
SR measurement group; every SEG segment has a colour, constant per lesion over time; dciodvfy reports 0 errors
and 0 warnings. The synthetic archive has follow-ups without segmentation (all lesions regressed): those exams
are read as "no visible lesion", every lesion measured 0, and get an SR without SEG ("assessed, not present").
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from viewer_readers import (
    dciodvfy_findings,
    dcmqi_tool,
    ohif_hydrate,
    ohif_missing_reason,
    seg_segments,
    tid1500_table,
)

from hpd_imaging.io.dicom_out import BIDIRECTIONAL_TRACKING_PREFIX
from hpd_imaging.io.dicom_out.codes import NOT_SEGMENTED_COMMENT

pytestmark = pytest.mark.slow

FAST_CONFIG = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "config_fast.yaml"
TOL_MM = 0.1


def _cli(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from hpd_imaging.cli import app; app()", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("viewers")
    archive, out = root / "archive", root / "out"
    _cli("synth", str(archive), "--patients", "2", "--matrix", "64", "--scan-length-mm", "100", "--seed", "7")
    # follow-ups whose lesions have all regressed come without segmentation (read as "no visible lesion")
    without_seg = {
        (exam.parent.name, f"{exam.name[:4]}-{exam.name[4:6]}-{exam.name[6:]}")
        for exam in archive.glob("*/*")
        if exam.is_dir() and not (exam / "SEG").exists()
    }
    _cli(
        "run", str(archive), "--out", str(out), "--dicom-out", "--config", str(FAST_CONFIG), "--workers", "1"
    )
    lesions = pd.read_csv(out / "lesions.csv", dtype={"patient_id": str, "lesion_id": str})
    ct_by_uid = {}
    for path in archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality == "CT":
            ct_by_uid[ds.SOPInstanceUID] = path
    exams = {}
    for sr_path in sorted((out / "dicom").rglob("sr_tid1500.dcm")):
        sr = pydicom.dcmread(sr_path)
        refs = [
            sop.ReferencedSOPInstanceUID
            for study in sr.CurrentRequestedProcedureEvidenceSequence
            for series in study.ReferencedSeriesSequence
            for sop in series.ReferencedSOPSequence
        ]
        day = sr_path.parent.name
        key = (sr_path.parent.parent.name, f"{day[:4]}-{day[4:6]}-{day[6:]}")
        exams[key] = {
            "sr": sr_path,
            "seg": sr_path.parent / "seg.dcm",
            "ct": [ct_by_uid[u] for u in refs if u in ct_by_uid],
        }
    return {"root": root, "out": out, "lesions": lesions, "exams": exams, "without_seg": without_seg}


def _text_values(ds: pydicom.Dataset) -> list[str]:
    """Every TextValue in an SR content tree (pydicom's str() shortens long values)."""
    found = [str(ds.TextValue)] if "TextValue" in ds else []
    for item in ds.get("ContentSequence", []):
        found.extend(_text_values(item))
    return found


def _rows(run_out: dict, key: tuple[str, str]) -> pd.DataFrame:
    lesions = run_out["lesions"]
    return lesions[(lesions.patient_id == key[0]) & (lesions.scan_date == key[1])].set_index("lesion_id")


def test_every_exam_has_an_sr_and_exams_without_segmentation_no_seg(run_out: dict) -> None:
    lesions = run_out["lesions"]
    exams_in_table = set(zip(lesions.patient_id, lesions.scan_date, strict=True))
    assert exams_in_table == set(run_out["exams"])
    assert run_out["without_seg"]  # the archive has such exams, so the checks below cover them
    for key in run_out["without_seg"]:
        rows = _rows(run_out, key)
        assert len(rows) >= 1 and (rows.voxel_count == 0).all()
        assert not run_out["exams"][key]["seg"].exists()
    # a lesion at 0 on an exam without segmentation is marked as assumed absent; on a segmented exam it is not
    for key, exam in run_out["exams"].items():
        comments = _text_values(pydicom.dcmread(exam["sr"])).count(NOT_SEGMENTED_COMMENT)
        assert comments == (len(_rows(run_out, key)) if key in run_out["without_seg"] else 0), key
    assert int((lesions.voxel_count > 0).sum()) >= 10  # the checks below are not vacuous


@pytest.mark.skipif(ohif_missing_reason() is not None, reason=str(ohif_missing_reason()))
def test_ohif_hydrates_one_bidirectional_per_measured_lesion(run_out: dict) -> None:
    n_checked = 0
    for key, exam in run_out["exams"].items():
        rows = _rows(run_out, key)
        result = ohif_hydrate(exam["sr"], exam["ct"])
        bidirectional = result["tools"].get("Bidirectional", [])
        assert set(result["tools"]) <= {"Bidirectional"}, result["tools"].keys()
        uid_to_lesion = _tracking_uids(exam["sr"])
        by_lesion = defaultdict(list)
        for tool in bidirectional:
            by_lesion[uid_to_lesion[tool["trackingUid"]]].append(tool)
        measured = rows[rows.voxel_count > 0]
        assert set(by_lesion) == set(measured.index), key
        for lesion_id, row in measured.iterrows():
            (tool,) = by_lesion[lesion_id]
            assert tool["length"] == pytest.approx(row.longest_axial_diameter_mm, abs=TOL_MM)
            assert tool["width"] == pytest.approx(row.short_axis_mm, abs=TOL_MM)
            assert tool["unit"] == "mm" and tool["widthUnit"] == "mm"
            p = np.asarray(tool["points"], dtype=float)
            if not row.is_fragmented:  # drawn axes: their lengths in world space are the numbers too
                assert np.linalg.norm(p[1] - p[0]) == pytest.approx(row.longest_axial_diameter_mm, abs=TOL_MM)
                assert np.linalg.norm(p[3] - p[2]) == pytest.approx(row.short_axis_mm, abs=TOL_MM)
            assert np.ptp(p[:, 2]) < 1e-3  # all four points on the referenced axial image
            n_checked += 1
        # groups that OHIF cannot draw (lesions measured 0) are skipped with a warning, nothing else fails
        assert len(result["warnings"]) == int((rows.voxel_count == 0).sum()), result["warnings"]
    assert n_checked == int((run_out["lesions"].voxel_count > 0).sum())


def _tracking_uids(sr_path: Path) -> dict[str, str]:
    """Tracking UID -> lesion id (the text after the Cornerstone prefix) from the SR's groups."""
    sr = pydicom.dcmread(sr_path)
    out = {}
    for item in sr.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue != "126010":
            continue
        for group in item.ContentSequence:
            text = uid = None
            for child in group.ContentSequence:
                code = child.ConceptNameCodeSequence[0].CodeValue
                if code == "112039":
                    text = child.TextValue
                elif code == "112040":
                    uid = child.UID
            assert text is not None and text.startswith(BIDIRECTIONAL_TRACKING_PREFIX + ":")
            out[uid] = text[len(BIDIRECTIONAL_TRACKING_PREFIX) + 1 :]
    return out


@pytest.mark.skipif(
    dcmqi_tool("tid1500reader") is None, reason="dcmqi (PyPI dev dependency) is not installed"
)
def test_slicer_tid1500reader_table_equals_lesions_csv(run_out: dict) -> None:
    work = run_out["root"] / "dcmqi"
    work.mkdir(exist_ok=True)
    tracking_uid_by_lesion: dict[tuple[str, str], str] = {}
    for key, exam in run_out["exams"].items():
        rows = _rows(run_out, key)
        table = tid1500_table(exam["sr"], work)
        assert len(table) == len(rows), key  # every lesions.csv row has a measurement group
        for group in table:
            assert group["_n_items"] == 3
            lesion_id = group["TrackingIdentifier"][len(BIDIRECTIONAL_TRACKING_PREFIX) + 1 :]
            row = rows.loc[lesion_id]
            assert group["Long Axis [mm]"] == pytest.approx(row.longest_axial_diameter_mm, abs=1e-3)
            assert group["Short Axis [mm]"] == pytest.approx(row.short_axis_mm, abs=1e-3)
            assert group["Volume [mm3]"] == pytest.approx(row.volume_mm3, rel=1e-6, abs=1e-3)
            assert group["timePoint"] == key[1]
            present = row.voxel_count > 0
            assert (group["ReferencedSegment"] is not None) == present
            absent = {
                (q["conceptCode"]["CodeValue"], q["conceptValue"]["CodeValue"])
                for q in group["qualitativeEvaluations"]
                if isinstance(q["conceptValue"], dict)
            }
            assert (("121052", "121054") in absent) == (not present)
            previous = tracking_uid_by_lesion.setdefault(
                (key[0], lesion_id), group["TrackingUniqueIdentifier"]
            )
            assert previous == group["TrackingUniqueIdentifier"]  # one tracking UID per lesion over time


@pytest.mark.skipif(
    dcmqi_tool("segimage2itkimage") is None, reason="dcmqi (PyPI dev dependency) is not installed"
)
def test_slicer_seg_reader_voxels_and_constant_colours(run_out: dict) -> None:
    work = run_out["root"] / "dcmqi_seg"
    colours: dict[tuple[str, str], set] = defaultdict(set)
    n_segments = 0
    for key, exam in run_out["exams"].items():
        rows = _rows(run_out, key)
        measured = rows[rows.voxel_count > 0]
        if measured.empty:
            continue
        segments = seg_segments(exam["seg"], work)
        assert set(segments) == set(measured.index)
        for lesion_id, seg in segments.items():
            assert seg["voxels"] == measured.loc[lesion_id, "voxel_count"]
            assert len(seg["rgb"]) == 3
            colours[(key[0], lesion_id)].add(seg["rgb"])
            n_segments += 1
        assert len({s["rgb"] for s in segments.values()}) == len(segments)  # lesions of one exam differ
    assert n_segments >= 10
    assert all(len(c) == 1 for c in colours.values()), colours  # one colour per lesion over time


def test_highdicom_reads_every_group_back(run_out: dict) -> None:
    for key, exam in run_out["exams"].items():
        rows = _rows(run_out, key)
        report = hd.sr.srread(exam["sr"]).content
        assert report.get_planar_roi_measurement_groups() == []  # would divert Slicer from its table
        volumetric = report.get_volumetric_roi_measurement_groups()
        absent = report.get_image_measurement_groups()
        assert len(volumetric) == int((rows.voxel_count > 0).sum())
        assert len(absent) == int((rows.voxel_count == 0).sum())
        if volumetric:
            seg = hd.seg.segread(exam["seg"])
            assert seg.number_of_segments == len(volumetric)


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None, reason="dciodvfy (Debian package dicom3tools) is absent"
)
def test_dciodvfy_zero_errors_zero_warnings(run_out: dict) -> None:
    findings = {}
    for exam in run_out["exams"].values():
        for path in (exam["sr"], exam["seg"]):
            if path.exists():
                found = dciodvfy_findings(path)
                if found:
                    findings[str(path)] = found
    assert findings == {}
