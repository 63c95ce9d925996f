"""Issue 21: the pipeline decodes only the CT slices it uses.

With declared lesion identity (the synthetic SEGs carry Tracking UIDs: no registration), an exam other than
the baseline is read only by its snapshots, one axial slice per lesion: exactly those slices are decoded
(counted at the decoder). A slice that fails only when decoded is an error row of the stage that read it,
naming the file, while the patient's measurements are kept.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG, make_archive
from pydicom.encaps import encapsulate, generate_frames

from hpd_imaging.archive import scan_archive
from hpd_imaging.domain import TimepointRole
from hpd_imaging.io import _lazyct, load_ct
from hpd_imaging.pipeline import PatientJob, process_patient
from hpd_imaging.pipeline.patient import load_snapshots
from hpd_imaging.settings import load_config


@pytest.fixture(scope="module")
def j2k_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lazy") / "archive"
    make_archive(root, n_patients=1, compression="jpeg2000")
    return root


def _job(archive: Path, out: Path) -> PatientJob:
    scanned = scan_archive(archive)
    (pid,) = sorted(scanned.patients)
    return PatientJob(pid, scanned.timepoints[pid], load_config(FAST_CONFIG), out, FAST_CONFIG.parent)


def _radiomics_exam(job: PatientJob) -> dt.date:
    """The exam radiomics reads: the baseline, else the first exam (pipeline.patient._baseline)."""
    tps = sorted(job.timepoints, key=lambda t: t.scan_date)
    return next((t for t in tps if t.role is TimepointRole.BASELINE), tps[0]).scan_date


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Slices decoded per CT folder, recorded at LazySeriesVoxels._decode (the one place slices decode)."""
    decoded: dict[str, list[int]] = defaultdict(list)
    real = _lazyct.LazySeriesVoxels._decode

    def counting(self: _lazyct.LazySeriesVoxels, missing: list[int]) -> None:
        decoded[self._label].extend(missing)
        real(self, missing)

    monkeypatch.setattr(_lazyct.LazySeriesVoxels, "_decode", counting)
    return decoded


def test_exams_read_only_by_snapshots_decode_only_the_snapshot_slices(
    j2k_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _count_decodes(monkeypatch)
    job = _job(j2k_archive, tmp_path / "out")
    status = process_patient(job)
    assert status["ok"], status["errors"]
    snaps = load_snapshots(tmp_path / "out" / "snapshots.npz")
    by_date: dict[dt.date, set[int]] = defaultdict(set)
    for s in snaps:
        by_date[s.scan_date].add(s.slice_index)
    base = _radiomics_exam(job)
    others = [t for t in job.timepoints if t.scan_date != base]
    assert len(others) >= 2
    n_slices = 0
    for tp in others:
        assert tp.ct is not None
        folder = str(tp.ct.files[0].parent)
        n_slices = tp.ct.n_slices
        assert by_date[tp.scan_date], f"exam {tp.scan_date} has no snapshot"
        # each snapshot slice decoded once, nothing else of this exam's CT
        assert sorted(decoded[folder]) == sorted(by_date[tp.scan_date]), (tp.scan_date, decoded[folder])
    assert sum(len(v) for v in decoded.values()) < len(job.timepoints) * n_slices


def _damage(archive: Path, copy: Path, ct_files: list[Path], k: int) -> Path:
    """A copy of ``archive`` whose stack slice ``k`` of this CT fails only when decoded (SOC + SIZ intact,
    so the load-time check passes; the tile data is cut short)."""
    shutil.copytree(archive, copy)
    ct = load_ct(ct_files, lazy=True)
    bad = copy / Path(ct.provenance["source_files"][k]).relative_to(archive)
    ds = pydicom.dcmread(bad)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 8]])
    ds.save_as(bad, enforce_file_format=True)
    return bad


@pytest.mark.parametrize("stage", ["snapshot", "radiomics"])
def test_a_slice_failing_only_on_decode_is_a_row_of_the_stage_that_read_it_and_the_patient_is_kept(
    j2k_archive: Path, tmp_path: Path, stage: str
) -> None:
    good = _job(j2k_archive, tmp_path / "good")
    assert process_patient(good)["ok"]
    snaps = load_snapshots(tmp_path / "good" / "snapshots.npz")
    base = _radiomics_exam(good)
    if stage == "snapshot":  # a follow-up's snapshot slice: read by the snapshot alone
        snap = next(s for s in snaps if s.scan_date != base)
        date, k = snap.scan_date, snap.slice_index
    else:  # a baseline slice next to a lesion (inside its radiomics crop) that no snapshot shows
        shown = {s.slice_index for s in snaps if s.scan_date == base}
        date, k = (
            base,
            next(
                s.slice_index + d
                for s in snaps
                if s.scan_date == base
                for d in (1, -1, 2, -2)
                if s.slice_index + d not in shown
            ),
        )
    tp = next(t for t in good.timepoints if t.scan_date == date)
    assert tp.ct is not None
    bad = _damage(j2k_archive, tmp_path / "archive", list(tp.ct.files), k)

    status = process_patient(_job(tmp_path / "archive", tmp_path / "bad"))
    rows = [r for r in status["errors"] if r["severity"] == "error"]
    assert rows and {r["stage"] for r in rows} == {stage}, rows
    assert all(f"{bad}: cannot decode pixel data" in r["message"] for r in rows)
    if stage == "snapshot":
        assert [r["file"] for r in rows] == [str(bad)]
    else:  # a row per lesion whose crop holds the slice (file: the CT series; the message names the slice)
        assert all(r["file"] == str(bad.parent) and r["message"].startswith("lesion ") for r in rows)
    assert status["ok"]  # measurements and tracking kept (and the other stage's outputs)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "bad" / "lesions.parquet"),
        pd.read_parquet(tmp_path / "good" / "lesions.parquet"),
    )
    kept = load_snapshots(tmp_path / "bad" / "snapshots.npz")
    if stage == "snapshot":
        assert len(kept) == len(snaps) - sum(1 for s in snaps if (s.scan_date, s.slice_index) == (date, k))
    else:
        assert len(kept) == len(snaps)
        good_ids = set(pd.read_parquet(tmp_path / "good" / "radiomics.parquet")["lesion_id"])
        bad_path = tmp_path / "bad" / "radiomics.parquet"
        bad_table = pd.read_parquet(bad_path) if bad_path.exists() else pd.DataFrame()
        bad_ids = set(bad_table["lesion_id"]) if "lesion_id" in bad_table else set()
        assert bad_ids == good_ids - {r["message"].split(":")[0].removeprefix("lesion ") for r in rows}


@pytest.mark.parametrize("resampled", [True, False], ids=["resampled", "original-grid"])
def test_radiomics_on_a_lazy_ct_equals_eager_and_decodes_only_its_crops(
    j2k_archive: Path, resampled: bool
) -> None:
    """Resampled to 1 mm with B-spline (the default's crop path: margins, grid of the whole CT) and on the
    original grid (margin padDistance): the features and diagnostics of a lazy CT are those of the eager one,
    bit for bit; only the slices of the crops (lesion box + margin) decode."""
    from hpd_imaging.io import load_masks
    from hpd_imaging.radiomics import extract_lesion_features, params_from_dict

    scanned = scan_archive(j2k_archive)
    (pid,) = sorted(scanned.patients)
    tp = sorted(scanned.timepoints[pid], key=lambda t: t.scan_date)[1]
    assert tp.ct is not None
    setting: dict = {"binWidth": 25, "padDistance": 2}
    if resampled:
        setting.update(resampledPixelSpacing=[1, 1, 1], interpolator="sitkBSpline")
    params = params_from_dict(
        {
            "imageType": {"Original": {}},
            "featureClass": {"firstorder": [], "glcm": ["Contrast", "JointEntropy"]},
            "setting": setting,
        }
    )
    # crop margin in slices: resampled ceil(pad * max(1, 5) / 5) + 2 + BSPLINE_DECAY_VOXELS, else pad
    margin = 2 + 2 + 32 if resampled else 2
    results = {}
    for lazy in (False, True):
        ct = load_ct(list(tp.ct.files), lazy=lazy)
        masks = [m for ref in tp.masks for m in load_masks(ref.path, ct)]
        assert masks
        results[lazy] = extract_lesion_features(ct, masks, params, dask=False)
        if lazy:
            assert ct.lazy is not None
            used = set()
            for m in masks:
                used |= set(
                    range(max(m.offset[0] - margin, 0), min(m.offset[0] + m.crop.shape[0] + margin, 20))
                )
            assert ct.lazy.n_decoded == len(used)
            if not resampled:
                assert ct.lazy.n_decoded < ct.geometry.shape[0]
            assert results[True].features["image_sha256"].iloc[0] == ct.input_sha256()
    eager, lazy_ = results[False], results[True]
    assert not eager.errors and not lazy_.errors
    pd.testing.assert_frame_equal(
        eager.features.drop(columns="image_sha256"),
        lazy_.features.drop(columns="image_sha256"),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(eager.diagnostics, lazy_.diagnostics, check_exact=True)
