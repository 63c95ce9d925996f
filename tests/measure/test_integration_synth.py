"""Issue #4 "done when": tracking and measurement on synthetic archives against ground_truth.json.

* a fresh archive generated without tracking identifiers (labels renumbered at every exam) and with patient
  shifts up to 10 mm and rolls up to 3 degrees: the tracker must find every identity by registration and
  position alone;
* the bundled sample_dicom/ archive.

Tolerances are those the generator states in ground_truth.json (``tolerances``): the truth is the *smooth*
lesion shape, the CT mask is its rasterisation (voxels more than half covered) on a coarse grid, so
diameters are expected within ``diameter_mm`` (1.5 x the largest voxel side). The measured voxel count and
volume must equal the generator's own count of the CT-grid mask exactly (``ct_mask_voxel_count``,
``ct_mask_volume_mm3``), which checks reading + measuring without the rasterisation error.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from hpd_imaging.measure import lesions_table
from hpd_imaging.settings.tracking import TrackingSettings
from hpd_imaging.tracking import ExamMasks, track_lesions


def _track_archive(root: Path, settings: TrackingSettings | None = None) -> tuple[dict, list]:
    from hpd_imaging.io import load_ct, load_masks

    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    courses = []
    for patient in truth["patients"]:
        exams, baseline = [], None
        for tp in patient["timepoints"]:
            date = dt.date.fromisoformat(tp["scan_date"])
            if tp["role"] == "baseline":
                baseline = date
            ct = load_ct(root / tp["ct_dir"])
            exams.append(ExamMasks(date, ct, load_masks(root / tp["mask_path"], ct)))
        courses.append(track_lesions(patient["patient_id"], exams, settings, baseline_date=baseline))
    return truth, courses


def _check(truth: dict, courses: list) -> dict[str, float]:
    """Assert identities and measurements; return the worst errors (for the report)."""
    tol = truth["tolerances"]
    worst = {"long_mm": 0.0, "short_mm": 0.0, "max3d_mm": 0.0, "volume_rel": 0.0}
    for patient, course in zip(truth["patients"], courses, strict=True):
        pid = patient["patient_id"]
        by_label = {
            (m["scan_date"], m["segment_label"]): lesion["lesion_id"]
            for lesion in patient["lesions"]
            for m in lesion["measurements"]
            if m["present"]
        }
        # identity: every decision with a mask points to exactly one true lesion, and vice versa
        ours: dict[str, set[str]] = {}
        for d in course.tracking:
            if d.label:
                ours.setdefault(d.lesion_id, set()).add(by_label[(d.scan_date.isoformat(), d.label)])
        assert all(len(v) == 1 for v in ours.values()), f"{pid}: one tracked lesion mixes true lesions {ours}"
        mapping = {lid: next(iter(v)) for lid, v in ours.items()}
        assert len(set(mapping.values())) == len(mapping), (
            f"{pid}: one true lesion split into several {mapping}"
        )
        assert set(mapping.values()) == {
            les["lesion_id"] for les in patient["lesions"] if any(m["present"] for m in les["measurements"])
        }
        truth_rows = {
            (les["lesion_id"], m["scan_date"]): (les, m)
            for les in patient["lesions"]
            for m in les["measurements"]
        }
        table = lesions_table([course])
        for row in table.itertuples():
            lesion, m = truth_rows[(mapping[row.lesion_id], row.scan_date.isoformat())]
            assert row.is_new == lesion["is_new"], f"{pid} {row.lesion_id}: is_new"
            assert row.is_lymph_node == lesion["is_lymph_node"]
            if not m["present"]:  # disappeared (or below detection): measured 0
                assert row.voxel_count == 0 and row.longest_axial_diameter_mm == 0
                continue
            assert row.voxel_count == m["ct_mask_voxel_count"], f"{pid} {row.lesion_id} {row.scan_date}"
            for ours_name, true_name, key in (
                ("longest_axial_diameter_mm", "longest_axial_diameter_mm", "long_mm"),
                ("short_axis_mm", "short_axis_mm", "short_mm"),
                ("max_3d_diameter_mm", "max_3d_diameter_mm", "max3d_mm"),
            ):
                err = getattr(row, ours_name) - m[true_name]
                assert abs(err) <= tol["diameter_mm"], (
                    f"{pid} {row.lesion_id} {row.scan_date} {ours_name}: {err}"
                )
                worst[key] = max(worst[key], abs(err))
            # volume: exactly the generator's CT-grid mask (count x voxel volume, rounded to 1e-3 in the json)
            assert row.volume_mm3 == pytest.approx(m["ct_mask_volume_mm3"], abs=1e-3)
            # against the smooth shape: worst error recorded for the report, not asserted: the generator's
            # own CT-grid mask can miss its stated volume_rel for small lesions (seed 4 with 3 patients:
            # SYN002 L03, 23 voxels, +15.4 %); that is the rasterisation's error, isolated by the line above
            if m["ct_mask_voxel_count"] >= 20:
                worst["volume_rel"] = max(worst["volume_rel"], abs(row.volume_mm3 / m["volume_mm3"] - 1))
        # every present true measurement has its row
        present = {(lid, m["scan_date"]) for (lid, _), (_, m) in truth_rows.items() if m["present"]}
        rows = {(mapping[r.lesion_id], r.scan_date.isoformat()) for r in table.itertuples()}
        assert present <= rows, f"{pid}: measurements missing {sorted(present - rows)}"
    return worst


@pytest.fixture(scope="module")
def fresh_archive(tmp_path_factory) -> Path:
    from hpd_imaging.settings.synth import SynthSettings
    from hpd_imaging.synth.generate import generate_archive

    out = tmp_path_factory.mktemp("synth") / "archive"
    # a hyperprogressor (new lesions) and a responder (disappearing lesions), larger moves than the default
    settings = SynthSettings(n_patients=2, seed=2024, tracking_ids=False, shift_mm=10.0, rotation_deg=3.0,
                             max_lesions=5, phenotypes=["hyperprogressor", "responder"])
    generate_archive(out, settings)
    return out


@pytest.mark.slow
def test_fresh_archive_without_tracking_ids(fresh_archive):
    truth, courses = _track_archive(fresh_archive)
    assert truth["generator"]["settings"]["tracking_ids"] is False
    # the scenario exercises new and disappearing lesions (checked against our rows in _check)
    assert any(les["is_new"] for p in truth["patients"] for les in p["lesions"])
    assert any(not m["present"] and not les["is_new"] for p in truth["patients"] for les in p["lesions"]
               for m in les["measurements"])
    worst = _check(truth, courses)
    # identities came from positions (no identifiers in the data)
    methods = {d.method for c in courses for d in c.tracking}
    assert methods <= {"new", "position", "label", "disappeared"}
    print("worst errors, fresh archive:", worst)


@pytest.fixture(scope="module")
def sample_tracked(sample_dicom):
    return _track_archive(sample_dicom)


@pytest.mark.slow
def test_sample_dicom(sample_tracked):
    """With the SEG tracking IDs/UIDs: identities are the declared ones (the generator's lesion ids)."""
    truth, courses = sample_tracked
    worst = _check(truth, courses)
    for patient, course in zip(truth["patients"], courses, strict=True):
        declared = {
            les["lesion_id"] for les in patient["lesions"] if any(m["present"] for m in les["measurements"])
        }
        assert {lesion.lesion_id for lesion in course.lesions} == declared
        assert {d.method for d in course.tracking} <= {"tracking_uid", "disappeared"}
    print("worst errors, sample_dicom:", worst)


@pytest.mark.slow
def test_sample_dicom_by_position_only(sample_dicom):
    """The same archive with every identifier ignored: registration + position give the same identities."""
    truth, courses = _track_archive(
        sample_dicom, TrackingSettings(use_declared_identity=False, label_identity="ignore")
    )
    _check(truth, courses)
    assert {d.method for c in courses for d in c.tracking} <= {"new", "position", "disappeared"}
