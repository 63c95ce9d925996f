"""Determinism (sample_dicom regenerates identically) and the CLI with the other mask formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
from typer.testing import CliRunner

from hpd_imaging.cli import app
from hpd_imaging.synth import SynthSettings
from hpd_imaging.synth.generate import generate_patient


def test_sample_dicom_regenerates_identically(sample_dicom: Path, tmp_path: Path) -> None:
    """First patient of the committed sample, regenerated from the settings recorded in its ground truth."""
    committed = json.loads((sample_dicom / "ground_truth.json").read_text())
    settings = SynthSettings(**committed["generator"]["settings"])
    result = generate_patient(tmp_path, settings, 0)
    assert json.loads(json.dumps(result["truth"])) == committed["patients"][0]
    pid = committed["patients"][0]["patient_id"]
    new_files = sorted(p.relative_to(tmp_path) for p in (tmp_path / pid).rglob("*.dcm"))
    old_files = sorted(p.relative_to(sample_dicom) for p in (sample_dicom / pid).rglob("*.dcm"))
    assert new_files == old_files and len(new_files) > 100
    for rel in new_files:
        new, old = tmp_path / rel, sample_dicom / rel
        if rel.parent.name == "CT":
            np.testing.assert_array_equal(pydicom.dcmread(new).pixel_array, pydicom.dcmread(old).pixel_array)
        assert new.read_bytes() == old.read_bytes(), f"{rel} differs"
    with (sample_dicom / "clinical.csv").open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["patient_id"] == pid)
    assert row == result["clinical"]


def test_sample_dicom_content_is_as_promised(sample_dicom: Path) -> None:
    truth = json.loads((sample_dicom / "ground_truth.json").read_text())
    phenotypes = [p["phenotype"] for p in truth["patients"]]
    assert "hyperprogressor" in phenotypes and "responder" in phenotypes and 3 <= len(phenotypes) <= 4
    assert any(les["is_new"] for p in truth["patients"] for les in p["lesions"])
    for p in truth["patients"]:
        roles = [tp["role"] for tp in p["timepoints"]]
        assert roles[:2] == ["pre_baseline", "baseline"] and roles.count("follow_up") >= 1
        assert all(tp["mask_path"].endswith("SEG/seg.dcm") for tp in p["timepoints"])
    size = sum(f.stat().st_size for f in sample_dicom.rglob("*") if f.is_file())
    assert size < 20 * 1024**2


def test_cli_rtstruct_and_nifti_outputs(tmp_path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    common = [
        "--patients",
        "1",
        "--seed",
        "3",
        "--matrix",
        "64",
        "--followups",
        "1",
        "--phenotypes",
        "progressor",
    ]
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "rt"), "--mask-format", "rtstruct", *common])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "rt" / "ground_truth.json").read_text())
    tp = truth["patients"][0]["timepoints"][1]
    rs = pydicom.dcmread(tmp_path / "rt" / tp["mask_path"])
    assert rs.Modality == "RTSTRUCT" and rs.FrameOfReferenceUID == tp["frame_of_reference_uid"]
    present = [les for les in truth["patients"][0]["lesions"] if les["measurements"][1]["present"]]
    assert {r.ROIName for r in rs.StructureSetROISequence} == {les["lesion_id"] for les in present}
    ct_uids = {pydicom.dcmread(f).SOPInstanceUID for f in (tmp_path / "rt" / tp["ct_dir"]).glob("*.dcm")}
    for roi in rs.ROIContourSequence:
        assert len(roi.ContourSequence) >= 1
        for c in roi.ContourSequence:
            assert c.ContourGeometricType == "CLOSED_PLANAR"
            assert c.ContourImageSequence[0].ReferencedSOPInstanceUID in ct_uids
            assert len(c.ContourData) == 3 * c.NumberOfContourPoints

    res = runner.invoke(app, ["synth", str(tmp_path / "nii"), "--mask-format", "nifti", *common])
    assert res.exit_code == 0, res.output
    with (tmp_path / "nii" / "masks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    truth = json.loads((tmp_path / "nii" / "ground_truth.json").read_text())
    lesions = {les["lesion_id"]: les for les in truth["patients"][0]["lesions"]}
    for row in rows:
        img = sitk.ReadImage(str(tmp_path / "nii" / row["mask_path"]))
        tp_index = [tp["mask_path"] for tp in truth["patients"][0]["timepoints"]].index(row["mask_path"])
        m = lesions[row["lesion_id"]]["measurements"][tp_index]
        assert int(row["label"]) == m["label_value"]
        assert int((sitk.GetArrayFromImage(img) == int(row["label"])).sum()) == m["ct_mask_voxel_count"]


def test_cli_refuses_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "x"), "--phenotype-mix", "hyperprogressor=abc"])
    assert res.exit_code == 2 and "expected a number" in res.output
    res = runner.invoke(app, ["synth", str(tmp_path / "x"), "--phenotype-mix", "zombie=1"])
    assert res.exit_code == 2 and "zombie" in res.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "data.txt").write_text("x")
    res = runner.invoke(app, ["synth", str(tmp_path / "full")])
    assert res.exit_code == 2 and "non-empty" in res.output
