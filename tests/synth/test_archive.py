"""The written archive: DICOM validity (pydicom, SimpleITK, highdicom), masks vs truth, clinical.csv."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import UID, CTImageStorage, SegmentationStorage

from hpd_imaging.synth.clinical import CLINICAL_COLUMNS


def _exams(truth: dict):
    for p in truth["patients"]:
        for e, tp in enumerate(p["timepoints"]):
            yield p, e, tp


def _seg_masks(path: Path, ct_files: list[pydicom.Dataset]) -> dict[int, np.ndarray]:
    import highdicom as hd

    seg = hd.seg.segread(path)
    uids = [ds.SOPInstanceUID for ds in ct_files]
    arr = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, assert_missing_frames_are_empty=True
    )
    return {n: arr[..., i].astype(bool) for i, n in enumerate(seg.get_segment_numbers())}


def _read_ct(folder: Path) -> list[pydicom.Dataset]:
    files = [pydicom.dcmread(f) for f in folder.glob("*.dcm")]
    return sorted(files, key=lambda ds: float(ds.ImagePositionPatient[2]))


def test_ct_series_are_valid_and_geometry_matches_settings(small_archive) -> None:
    import SimpleITK as sitk  # noqa: N813

    out, truth, settings = small_archive
    px = settings.fov_mm / settings.matrix
    for p, _, tp in _exams(truth):
        ct = _read_ct(out / tp["ct_dir"])
        assert len(ct) == settings.n_slices == tp["n_slices"]
        for k, ds in enumerate(ct):
            assert ds.SOPClassUID == CTImageStorage and ds.Modality == "CT"
            assert UID(ds.SOPInstanceUID).is_valid and UID(ds.SeriesInstanceUID).is_valid
            assert ds.SeriesInstanceUID == tp["series_instance_uid"]
            assert ds.StudyInstanceUID == tp["study_instance_uid"]
            assert ds.FrameOfReferenceUID == tp["frame_of_reference_uid"]
            assert ds.PatientID == p["patient_id"] and ds.StudyDate == tp["scan_date"].replace("-", "")
            assert ds.SpecificCharacterSet == "ISO_IR 100"
            assert float(ds.ImagePositionPatient[2]) == pytest.approx(settings.slice_thickness_mm * (k + 0.5))
            assert [float(v) for v in ds.PixelSpacing] == pytest.approx([px, px])
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(out / tp["ct_dir"])))
        img = reader.Execute()
        assert img.GetSize() == (settings.matrix, settings.matrix, settings.n_slices)
        assert img.GetSpacing() == pytest.approx((px, px, settings.slice_thickness_mm))
        hu = sitk.GetArrayFromImage(img)
        # plausible HU: air outside the body, lung, soft tissue and bone present
        assert hu.min() <= -950 and hu.max() >= 400
        assert np.mean((hu > -900) & (hu < -750)) > 0.02
    # a Frame of Reference per exam
    fors = [tp["frame_of_reference_uid"] for _, _, tp in _exams(truth)]
    assert len(set(fors)) == len(fors)


def test_seg_is_valid_consistent_with_ct_and_with_truth(small_archive) -> None:
    import highdicom as hd

    out, truth, settings = small_archive
    tol = truth["tolerances"]
    voxel_mm3 = (settings.fov_mm / settings.matrix) ** 2 * settings.slice_thickness_mm
    checked = 0
    for p, e, tp in _exams(truth):
        ct = _read_ct(out / tp["ct_dir"])
        seg = hd.seg.segread(out / tp["mask_path"])
        assert seg.SOPClassUID == SegmentationStorage
        assert seg.FrameOfReferenceUID == ct[0].FrameOfReferenceUID
        assert seg.ContentDate == ct[0].StudyDate
        assert {r.SeriesInstanceUID for r in seg.ReferencedSeriesSequence} == {tp["series_instance_uid"]}
        masks = _seg_masks(out / tp["mask_path"], ct)
        for les in p["lesions"]:
            m = les["measurements"][e]
            if not m["present"]:
                assert m["label_value"] is None
                continue
            desc = seg.get_segment_description(m["label_value"])
            assert desc.SegmentLabel == les["lesion_id"] == desc.TrackingID
            assert desc.TrackingUID == les["tracking_uid"]
            mask = masks[m["label_value"]]
            assert int(mask.sum()) == m["ct_mask_voxel_count"]
            # centroid of the mask (voxel centres in LPS) near the truth centroid
            k, j, i = np.nonzero(mask)
            pos = np.stack(
                [
                    ct[0].ImagePositionPatient[0] + i * ct[0].PixelSpacing[1],
                    ct[0].ImagePositionPatient[1] + j * ct[0].PixelSpacing[0],
                    np.array([float(ct[kk].ImagePositionPatient[2]) for kk in k]),
                ],
                -1,
            )
            assert (
                np.linalg.norm(pos.mean(0) - np.array(m["centroid_mm"])) < 0.5 * settings.slice_thickness_mm
            )
            if m["ct_mask_voxel_count"] >= tol["volume_rel_min_voxels"]:
                assert mask.sum() * voxel_mm3 == pytest.approx(m["volume_mm3"], rel=tol["volume_rel"])
                # brute-force long axis: max over slices of max centre distance + one pixel (outline ~ centres
                # + half a voxel each side)
                best = 0.0
                for kk in np.unique(k):
                    jj, ii = j[k == kk], i[k == kk]
                    xy = np.stack([ii, jj], -1) * settings.fov_mm / settings.matrix
                    d = (
                        np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)).max()
                        + settings.fov_mm / settings.matrix
                    )
                    best = max(best, d)
                assert best == pytest.approx(m["longest_axial_diameter_mm"], abs=tol["diameter_mm"])
                checked += 1
    assert checked >= 6


def test_ct_mask_volume_error_is_within_documented_tolerance_on_the_sample(sample_dicom: Path) -> None:
    import json

    truth = json.loads((sample_dicom / "ground_truth.json").read_text())
    rel = [
        abs(m["ct_mask_volume_mm3"] - m["volume_mm3"]) / m["volume_mm3"]
        for p in truth["patients"]
        for les in p["lesions"]
        for m in les["measurements"]
        if m["present"] and m["ct_mask_voxel_count"] >= 50
    ]
    assert len(rel) >= 25  # enough large-lesion measurements for the statistics to mean something
    assert max(rel) <= truth["tolerances"]["volume_rel"]
    assert float(np.median(rel)) < 0.05


def test_clinical_csv_schema_and_timeline(small_archive) -> None:
    out, truth, _ = small_archive
    df = pd.read_csv(out / "clinical.csv", dtype=str, keep_default_na=False)
    assert tuple(df.columns) == CLINICAL_COLUMNS
    assert list(df.patient_id) == [p["patient_id"] for p in truth["patients"]]
    for p in truth["patients"]:
        row = df.set_index("patient_id").loc[p["patient_id"]]
        ici = dt.date.fromisoformat(row.ici_start_date)
        assert ici.isoformat() == p["ici_start_date"]
        dates = [dt.date.fromisoformat(tp["scan_date"]) for tp in p["timepoints"]]
        assert [tp["role"] for tp in p["timepoints"]] == ["pre_baseline", "baseline"] + ["follow_up"] * (
            len(dates) - 2
        )
        assert 1 <= (ici - dates[1]).days <= 28
        assert 42 <= (dates[1] - dates[0]).days <= 84
        assert 42 <= (dates[2] - ici).days <= 63
        if row.death_date:
            assert dt.date.fromisoformat(row.death_date) > dates[-1]
            assert row.death_from_progression in ("true", "false")
        if row.treatment_stop_date:
            assert dt.date.fromisoformat(row.treatment_stop_date) > ici
        assert row.sex in ("M", "F") and 30 <= int(row.age) <= 90
        assert row.ldh_above_uln in ("true", "false") and row.prior_radiotherapy in ("true", "false")
        assert 0 <= int(row.ecog_baseline) <= int(row.ecog_worst_first_2_months) <= 4
        assert int(row.n_metastatic_sites) >= 1
        if p["phenotype"] == "hyperprogressor":  # TTF < 2 months (60.875 days)
            assert (dt.date.fromisoformat(row.treatment_stop_date) - ici).days < 60.875


def test_no_tracking_ids_removes_identifiers_and_shuffles_labels(untracked_archive) -> None:
    import highdicom as hd

    out, truth = untracked_archive
    (patient,) = truth["patients"]
    label_sequences = []
    for e, tp in enumerate(patient["timepoints"]):
        seg = hd.seg.segread(out / tp["mask_path"])
        for item in seg.SegmentSequence:
            assert "TrackingID" not in item and "TrackingUID" not in item
            assert item.SegmentLabel.startswith("Lesion ")
        assert not any(
            les["lesion_id"] in s.SegmentLabel for les in patient["lesions"] for s in seg.SegmentSequence
        )
        label_sequences.append(tuple(les["measurements"][e]["label_value"] for les in patient["lesions"]))
    # the same lesion does not keep its label value everywhere
    present_both = [
        i for i in range(len(patient["lesions"])) if all(seq[i] is not None for seq in label_sequences)
    ]
    assert len(present_both) >= 2
    assert len({tuple(seq[i] for i in present_both) for seq in label_sequences}) > 1


def test_ground_truth_follows_the_contract(small_archive) -> None:
    _, truth, settings = small_archive
    assert truth["generator"]["seed"] == settings.seed
    assert {"volume_rel", "diameter_mm", "note"} <= set(truth["tolerances"])
    assert "latent risk" in truth["signal_mechanism"].lower()
    for p in truth["patients"]:
        assert p["phenotype"] in {"hyperprogressor", "progressor", "stable", "responder", "pseudoprogression"}
        for tp in p["timepoints"]:
            assert len(tp["shift_mm"]) == 3 and max(map(abs, tp["shift_mm"])) <= settings.shift_mm
        for les in p["lesions"]:
            assert les["organ"] in {"lung", "liver", "lymph_node"}
            assert les["is_lymph_node"] == (les["organ"] == "lymph_node")
            assert len(les["measurements"]) == len(p["timepoints"])
            for m in les["measurements"]:
                if m["present"]:
                    assert (
                        m["short_axis_mm"] <= m["longest_axial_diameter_mm"] <= m["max_3d_diameter_mm"] + 1e-6
                    )
                    assert len(m["centroid_mm"]) == 3
