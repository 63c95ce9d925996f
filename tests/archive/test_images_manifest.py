"""images.csv: archives without DICOM (NIfTI/NRRD CTs + label maps), synthetic and TotalSegmentator's case."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk  # noqa: N813

from hpd_imaging.archive import scan_archive
from hpd_imaging.domain import MaskSource

REPO = Path(__file__).resolve().parents[2]
FAST_CONFIG = REPO / "tests" / "pipeline" / "data" / "config_fast.yaml"


def _volume(path: Path, values: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _ct_values(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 400, size=(6, 16, 16)).astype(np.int16)


def test_manifest_builds_timepoints_and_tells_images_from_label_maps_by_content(tmp_path: Path) -> None:
    labels = np.zeros((6, 16, 16), dtype=np.uint8)
    labels[2:4, 4:8, 4:8] = 1
    labels[1, 10:12, 10:12] = 2
    # names that say the opposite of the content: the CT is called "seg", the label map "image"
    _volume(tmp_path / "p1" / "seg_a.nii.gz", _ct_values(1))
    _volume(tmp_path / "p1" / "image_a.nrrd", labels)
    _volume(tmp_path / "p1" / "ct_b.nii.gz", _ct_values(2))
    _volume(tmp_path / "p1" / "lab_b.nii.gz", labels)
    _volume(tmp_path / "p2" / "ct.nii.gz", labels)  # a label map given as the image: refused with the reason
    (tmp_path / "images.csv").write_text(
        "patient_id,scan_date,image_path,mask_path,label,lesion_id,organ,is_lymph_node\n"
        "P1,2024-01-10,p1/seg_a.nii.gz,p1/image_a.nrrd,1,L1,liver,false\n"
        "P1,2024-01-10,p1/seg_a.nii.gz,p1/image_a.nrrd,2,N1,,true\n"
        "P1,20240301,p1/ct_b.nii.gz,p1/lab_b.nii.gz,,,,\n"
        "P2,2024-01-10,p2/ct.nii.gz,,,,,\n"
        "P3,2024-13-01,p1/ct_b.nii.gz,,,,,\n"
        "P3,2024-01-01,../outside.nii.gz,,,,,\n"
    )
    archive = scan_archive(tmp_path)
    assert archive.patients == ["P1"]
    first, second = archive.timepoints["P1"]
    assert (first.scan_date, second.scan_date) == (dt.date(2024, 1, 10), dt.date(2024, 3, 1))
    assert first.ct.files == (tmp_path / "p1" / "seg_a.nii.gz",)
    (mask,) = first.masks
    assert (mask.path.name, mask.source, mask.pairing) == ("image_a.nrrd", MaskSource.LABELMAP, "manifest")
    assert mask.label_table == ((1, "L1", "liver", False), (2, "N1", "", True))
    assert second.masks[0].label_table == ()
    messages = [i.message for i in archive.issues]
    assert any("holds a label map by its voxels" in m and "expected a CT image" in m for m in messages)
    assert any("column scan_date: expected YYYY-MM-DD, got '2024-13-01'" in m for m in messages)
    assert any("'../outside.nii.gz' escapes the archive" in m for m in messages)
    series = archive.series_table()
    assert set(series["series_uid"]) == {"file:p1/seg_a.nii.gz", "file:p1/ct_b.nii.gz"}
    # the listed label maps are not paired a second time by the folder conventions
    assert not [m for m in archive.masks if m.ref.path.name in ("image_a.nrrd", "lab_b.nii.gz")]


@pytest.fixture(scope="module")
def totalseg(shared_data: Path) -> Path:
    path = shared_data / "real2" / "totalseg_nifti_stats" / "tests" / "reference_files"
    if not path.is_dir():
        pytest.skip(f"TotalSegmentator reference files not found at {path}")
    return path


@pytest.mark.slow
def test_totalsegmentator_nifti_case_runs_end_to_end_from_a_manifest(totalseg: Path, tmp_path: Path) -> None:
    study = tmp_path / "study"
    (study / "TS01").mkdir(parents=True)
    for name in ("example_ct_sm.nii.gz", "example_seg_fast.nii.gz"):
        (study / "TS01" / name).symlink_to(totalseg / name)
    (study / "TS01" / "liver.nii.gz").symlink_to(totalseg / "example_seg_fast" / "liver.nii.gz")
    # the same CT at two dates (no longitudinal NIfTI case exists): the liver as the one lesion, declared by
    # label 5 of the 40-label map at the first exam and by TotalSegmentator's binary liver mask at the second
    (study / "images.csv").write_text(
        "patient_id,scan_date,image_path,mask_path,label,lesion_id,organ\n"
        "TS01,2024-01-10,TS01/example_ct_sm.nii.gz,TS01/example_seg_fast.nii.gz,5,liver,liver\n"
        "TS01,2024-03-10,TS01/example_ct_sm.nii.gz,TS01/liver.nii.gz,1,liver,liver\n"
    )
    (study / "clinical.csv").write_text("patient_id,ici_start_date\nTS01,2024-01-15\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "hpd-imaging"),
            "run",
            str(study),
            "--out",
            str(out),
            "--config",
            str(FAST_CONFIG),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stderr
    errors = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    assert not len(errors[(errors.severity == "error") & (errors.stage.isin(["load_ct", "load_masks"]))]), (
        errors
    )
    lesions = pd.read_csv(out / "lesions.csv")
    stats = json.loads((totalseg / "example_seg_fast" / "statistics.json").read_text())
    assert list(lesions["lesion_id"]) == ["liver", "liver"]
    # TotalSegmentator's own published liver volume: 1,062,450 mm3, at both exams
    np.testing.assert_allclose(lesions["volume_mm3"], stats["liver"]["volume"], rtol=1e-9)
    assert (lesions["lesion_rule"].str.contains("listed in the manifest")).all()
    series = pd.read_csv(out / "series.csv", dtype=str)
    assert set(series["series_uid"]) == {"file:TS01/example_ct_sm.nii.gz"}
