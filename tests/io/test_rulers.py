"""Ruler SRs (TID 1500 linear measurements) -> kinetics rows -> `hpd-imaging kinetics` labels.

SRs are written with highdicom (as 3D Slicer / highdicom users write them) and one OHIF-style group with the
Cornerstone tool adapter as tracking identifier and the user's label as a free-text finding. The HPD labels
of the two patients follow from their diameters by construction (tripled growth after the ICI start vs
stable disease); the dcmqi real SR (volume/SUV only, no ruler) is refused with what it holds.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from io_dicom_writers import write_ct_series
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from hpd_imaging.errors import MaskError
from hpd_imaging.io.rulers import read_ruler_folder, read_ruler_sr, rulers_table

REPO = Path(__file__).resolve().parents[2]
LENGTH = Code("410668003", "SCT", "Length")
CM = Code("cm", "UCUM", "centimeter")


def _evidence(tmp: Path, patient_id: str, date: str) -> pydicom.Dataset:
    (path,) = write_ct_series(tmp / f"ct_{patient_id}_{date}", [(0.0, 0.0, 0.0)], [np.zeros((4, 4))])
    ds = pydicom.dcmread(path)
    ds.PatientID, ds.StudyDate = patient_id, date
    ds.StudyInstanceUID = hd.UID()
    return ds


def _group(identifier: str, uid: str, measurements: list, site: Code | None = None, label: str | None = None):  # noqa: ANN202
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=identifier, uid=uid),
        measurements=measurements,
        finding_sites=[hd.sr.FindingSite(anatomic_location=site)] if site is not None else None,
        finding_type=Code("CORNERSTONEFREETEXT", "CST4", label) if label else None,
    )
    return group


def _write_sr(path: Path, evidence: pydicom.Dataset, groups: list) -> Path:
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Rad^One"),
            )
        ),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[evidence],
        content=report,
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        specific_character_set="ISO_IR 192",
    )
    sr.save_as(path)
    return path


def _mm(name: Code, value: float, unit: Code = codes.UCUM.Millimeter) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=value, unit=unit)


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """HPD01: a liver lesion 20 -> 22 mm before the ICI, 66 mm after; HPD02: a node (SA 15 mm) and a lung
    lesion measured in cm on an OHIF-style Length ruler, stable."""
    srs = tmp_path / "srs"
    srs.mkdir()
    uid_liver, uid_node = hd.UID(), hd.UID()
    for date, ld in (("20231101", 20.0), ("20240101", 22.0), ("20240301", 66.0)):
        ev = _evidence(tmp_path, "HPD01", date)
        g = _group(
            "liver-1",
            uid_liver,
            [_mm(codes.SCT.LongAxis, ld), _mm(codes.SCT.ShortAxis, ld / 2)],
            codes.SCT.Liver,
        )
        _write_sr(srs / f"HPD01_{date}.dcm", ev, [g])
    for date, sa, lung_cm in (("20231101", 15.0, 3.0), ("20240101", 15.0, 3.0), ("20240301", 14.0, 2.9)):
        ev = _evidence(tmp_path, "HPD02", date)
        node = _group(
            "node-1",
            uid_node,
            [_mm(codes.SCT.LongAxis, sa + 5), _mm(codes.SCT.ShortAxis, sa)],
            Code("59441001", "SCT", "Lymph node structure"),
        )
        lung = _group(
            "Cornerstone3DTools@^0.1.0:Length", hd.UID(), [_mm(LENGTH, lung_cm, CM)], codes.SCT.Lung, "lung-1"
        )
        _write_sr(srs / f"HPD02_{date}.dcm", ev, [node, lung])
    return srs


def test_ruler_sr_rows(cohort: Path) -> None:
    (liver,) = read_ruler_sr(cohort / "HPD01_20240301.dcm")
    assert (liver.patient_id, liver.scan_date, liver.lesion_id) == ("HPD01", dt.date(2024, 3, 1), "liver-1")
    assert (liver.longest_axial_diameter_mm, liver.short_axis_mm, liver.organ) == (66.0, 33.0, "liver")
    lung, node = sorted(read_ruler_sr(cohort / "HPD02_20240101.dcm"), key=lambda m: m.lesion_id)
    assert node.is_lymph_node and node.organ == "lymph_node" and node.short_axis_mm == 15.0
    # OHIF's tool adapter identifier: the lesion is the user's label; 3.0 cm is 30 mm; no short axis: None
    assert (lung.lesion_id, lung.longest_axial_diameter_mm, lung.short_axis_mm) == ("lung-1", 30.0, None)
    table = rulers_table([liver, node, lung])
    assert table["volume_mm3"].isna().all() and (table["mask_source"] == "ruler_sr").all()


def test_real_sr_without_rulers_is_refused_naming_what_it_holds(real_data: Path) -> None:
    sr = real_data / "dcmqi_ct3_seg_sr" / "data" / "sr-example" / "sr.dcm"
    with pytest.raises(MaskError, match=r"sr\.dcm: expected linear measurements .* got only .*Volume"):
        read_ruler_sr(sr)


@pytest.mark.slow
def test_ruler_cohort_runs_through_kinetics(cohort: Path, tmp_path: Path) -> None:
    (cohort / "notes.txt").write_text("not DICOM")
    measurements, clinical, out = tmp_path / "m.csv", tmp_path / "clinical.csv", tmp_path / "kinetics.csv"
    rulers = subprocess.run(
        [str(REPO / ".venv" / "bin" / "hpd-imaging"), "rulers", str(cohort), "--out", str(measurements)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rulers.returncode == 0, rulers.stderr
    assert "9 ruler measurement(s) of 2 patient(s)" in rulers.stdout
    clinical.write_text("patient_id,ici_start_date\nHPD01,2024-01-05\nHPD02,2024-01-05\n")
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "hpd-imaging"),
            "kinetics",
            str(measurements),
            "--clinical",
            str(clinical),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    kinetics = pd.read_csv(out, dtype=str).set_index("patient_id")
    # Champiat 2017: RECIST PD at the first evaluation and TGR ratio >= 2: 22 -> 66 mm (+200 %) after a
    # 10 % pre-treatment growth is HPD; the stable patient is not
    assert kinetics.loc["HPD01", "hpd_champiat2017"] == "hpd"
    assert kinetics.loc["HPD02", "hpd_champiat2017"] == "no_hpd"


def test_folder_reader_isolates_a_bad_sr(cohort: Path, real_data: Path, tmp_path: Path) -> None:
    (cohort / "dcmqi_sr.dcm").symlink_to(real_data / "dcmqi_ct3_seg_sr" / "data" / "sr-example" / "sr.dcm")
    table, problems = read_ruler_folder(cohort)
    assert len(table) == 9 and set(table["patient_id"]) == {"HPD01", "HPD02"}
    assert [Path(p).name for p, _ in problems] == ["dcmqi_sr.dcm"]


def _ct_exam(folder: Path, patient_id: str, date: str) -> list[Path]:
    files = write_ct_series(folder, [(0.0, 0.0, 0.0), (0.0, 0.0, 2.0)], [np.zeros((8, 8))] * 2)
    study = hd.UID()
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.StudyDate, ds.StudyInstanceUID = patient_id, date, study
        ds.save_as(f)
    return files


@pytest.mark.slow
def test_run_measures_exams_without_masks_on_their_rulers(tmp_path: Path) -> None:
    study = tmp_path / "study"
    uid = hd.UID()
    for date, ld in (("20231101", 20.0), ("20240101", 22.0), ("20240301", 66.0)):
        files = _ct_exam(study / "R01" / date / "CT", "R01", date)
        group = _group("liver-1", uid, [_mm(codes.SCT.LongAxis, ld)], codes.SCT.Liver)
        _write_sr(study / "R01" / date / "ruler.dcm", pydicom.dcmread(files[0]), [group])
    (study / "clinical.csv").write_text("patient_id,ici_start_date\nR01,2024-01-05\n")
    out = tmp_path / "out"
    config = REPO / "tests" / "pipeline" / "data" / "config_fast.yaml"
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "hpd-imaging"),
            "run",
            str(study),
            "--out",
            str(out),
            "--config",
            str(config),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr + (out / "errors.csv").read_text()
    lesions = pd.read_csv(out / "lesions.csv", dtype=str, keep_default_na=False)
    assert list(lesions["longest_axial_diameter_mm"].astype(float)) == [20.0, 22.0, 66.0]
    assert (lesions["mask_source"] == "ruler_sr").all() and (lesions["volume_mm3"] == "").all()
    assert (
        "ruler.dcm" in pd.read_csv(out / "series.csv", dtype=str, keep_default_na=False)["mask_files"].iloc[0]
    )
    kinetics = pd.read_csv(out / "kinetics.csv", dtype=str).set_index("patient_id")
    assert kinetics.loc["R01", "hpd_champiat2017"] == "hpd"


def _seg(path: Path, ct_files: list[Path], tracking_id: str, tracking_uid: str) -> None:
    sources = [pydicom.dcmread(f) for f in ct_files]
    pixels = np.zeros((2, 8, 8), dtype=bool)
    pixels[1, 2:6, 2:6] = True
    algorithm = hd.AlgorithmIdentificationSequence(
        name="t", family=codes.cid7162.ArtificialIntelligence, version="1"
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_id=tracking_id,
        tracking_uid=tracking_uid,
    )
    hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="t",
        manufacturer_model_name="t",
        software_versions="0",
        device_serial_number="0",
    ).save_as(path)


@pytest.mark.slow
def test_run_masks_where_they_exist_rulers_elsewhere(tmp_path: Path) -> None:
    study = tmp_path / "study"
    uid = hd.UID()  # one Tracking UID per lesion across exams, as TID 1500 / SEG intend
    for date in ("20231101", "20240101", "20240301"):
        files = _ct_exam(study / "M01" / date / "CT", "M01", date)
        if date != "20240301":
            _seg(study / "M01" / date / "seg.dcm", files, "liver-1", uid)
        # every exam has a ruler SR; where a SEG exists the SEG is used
        group = _group("liver-1", hd.UID(), [_mm(codes.SCT.LongAxis, 30.0)], codes.SCT.Liver)
        _write_sr(study / "M01" / date / "ruler.dcm", pydicom.dcmread(files[0]), [group])
    out = tmp_path / "out"
    config = REPO / "tests" / "pipeline" / "data" / "config_fast.yaml"
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "hpd-imaging"),
            "run",
            str(study),
            "--out",
            str(out),
            "--config",
            str(config),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    assert proc.returncode == 0, errors.to_string()
    lesions = pd.read_csv(out / "lesions.csv", dtype=str, keep_default_na=False)
    assert list(lesions["lesion_id"]) == ["liver-1"] * 3  # one lesion across SEG and ruler exams
    assert list(lesions["mask_source"]) == ["seg", "seg", "ruler_sr"]
    assert float(lesions["longest_axial_diameter_mm"].iloc[2]) == 30.0
    assert not errors["message"].str.contains("ruler lesion").any()
