"""Issue 16's first absorbed fault, end to end: an RTSTRUCT ROI whose only baseline contour is unusable
(one point) must not become a lesion "measured 0" at baseline (dropped from the targets, labels computed on
the wrong sum). The loader refuses the structure (an error row naming the file and ROI) and the pipeline
withholds that patient's kinetics and labels (a second row saying why), while the other patient goes on."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG, make_archive

from hpd_imaging.pipeline import run_study


@pytest.mark.slow
def test_one_point_baseline_contour_is_an_error_and_withholds_labels(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    truth = make_archive(archive, mask_format="rtstruct")
    # the patient with two baseline ROIs (with one, the whole file is refused: a different fault)
    patient = next(
        p
        for p in truth["patients"]
        if len(
            pydicom.dcmread(
                archive / next(tp for tp in p["timepoints"] if tp["role"] == "baseline")["mask_path"]
            ).StructureSetROISequence
        )
        > 1
    )
    pid = patient["patient_id"]
    base = next(tp for tp in patient["timepoints"] if tp["role"] == "baseline")
    rs_path = archive / base["mask_path"]
    ds = pydicom.dcmread(rs_path)
    roi = ds.ROIContourSequence[0]
    number = int(roi.ReferencedROINumber)
    name = next(s.ROIName for s in ds.StructureSetROISequence if int(s.ROINumber) == number)
    first = roi.ContourSequence[0]
    first.ContourData = list(first.ContourData[:3])  # one point: no area, no diameter
    first.NumberOfContourPoints = 1
    first.ContourGeometricType = "POINT"
    roi.ContourSequence = [first]
    ds.save_as(rs_path)

    summary = run_study(archive, tmp_path / "out", FAST_CONFIG)

    errors = pd.read_csv(tmp_path / "out" / "errors.csv", dtype=str, keep_default_na=False)
    mine = errors[errors["patient_id"] == pid]
    # the structure is refused by the loader: named when the file holds other usable ROIs, else the file is
    loader = mine[(mine["stage"] == "load_masks") & mine["file"].str.contains(base["mask_path"], regex=False)]
    assert len(loader) == 1, mine.to_string()
    n_rois = len(ds.StructureSetROISequence)
    assert (name in loader.iloc[0]["message"]) if n_rois > 1 else ("got none" in loader.iloc[0]["message"])
    withheld = mine[mine["rule"] == "baseline_lesion_unmeasured"]
    assert len(withheld) >= 1 and "withheld" in withheld.iloc[0]["message"]
    assert pid in summary.failed_patients
    kinetics = pd.read_csv(tmp_path / "out" / "kinetics.csv", dtype=str)
    assert pid not in set(kinetics["patient_id"])  # never labelled on the wrong sum
    other = next(p["patient_id"] for p in truth["patients"] if p["patient_id"] != pid)
    assert other in set(kinetics["patient_id"]) and other not in summary.failed_patients
