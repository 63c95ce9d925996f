"""Issue 16's fault audit as tests on the tiny synthetic archive: environment faults end with exit code 2 and
one sentence; OUT is owned by one run and never holds stale tables; a resumed result is verified against the
bytes it was computed from; input faults that change or withhold a result are rows of errors.csv (and in the
report next to their patient); a patient past its time limit is an error row, never a hang."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG
from typer.testing import CliRunner

from hpd_imaging.cli import app
from hpd_imaging.errors import EnvironmentFaultError
from hpd_imaging.pipeline import run_study


def _copy(archive: Path, tmp_path: Path, name: str = "archive") -> Path:
    return Path(shutil.copytree(archive, tmp_path / name))


def _one_line_exit_2(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(error_lines) == 1, result.output
    for needle in needles:
        assert needle in error_lines[0], (needle, result.output)


# --- environment faults: exit 2, one sentence -----------------------------------------------------


def _fail_replace_for(monkeypatch: pytest.MonkeyPatch, name: str, err: int) -> None:
    """os.replace of the atomic writer raises ``err`` for targets named ``name`` (full or read-only disk)."""
    import hpd_imaging.atomic as atomic

    real = os.replace

    def replace(src, dst):  # noqa: ANN001, ANN202
        if Path(dst).name == name:
            raise OSError(err, os.strerror(err), str(dst))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)


@pytest.mark.parametrize(
    ("name", "err", "needle"),
    [
        ("kinetics.csv", errno.ENOSPC, "the disk is full"),  # a cohort table in the driver
        ("lesions.parquet", errno.ENOSPC, "the disk is full"),  # a patient's result in the worker
        ("errors.csv", errno.EROFS, "the filesystem is read-only"),
    ],
)
def test_full_or_read_only_disk_is_exit_2_in_one_sentence(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, err: int, needle: str
) -> None:
    _fail_replace_for(monkeypatch, name, err)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(tiny_archive), "--out", str(out), "--config", str(FAST_CONFIG)]
    )
    _one_line_exit_2(result, f"cannot write {out}", name, needle, "rerun")


def test_unwritable_out_is_exit_2(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only --out (simulated: the tests may run as root, whom mode bits do not stop) and an --out
    under a file are refused before any work."""
    import tempfile

    def read_only(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(kwargs.get("dir", "")))

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", read_only)
        result = CliRunner().invoke(app, ["run", str(tiny_archive), "--out", str(tmp_path / "ro")])
    _one_line_exit_2(result, "cannot write", "read-only", "choose a writable --out")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["run", str(tiny_archive), "--out", str(blocker / "out")])
    _one_line_exit_2(result, str(blocker / "out"))


def test_malformed_model_card_via_run_is_exit_2(tiny_archive: Path, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    model = tmp_path / "m.skops"
    shutil.copy(repo / "models" / "hpd_demo_synthetic.skops", model)
    card = json.loads((repo / "models" / "hpd_demo_synthetic.skops.card.json").read_text())
    card["model_file"] = "m.skops"
    (tmp_path / "m.skops.card.json").write_text(json.dumps(card))
    result = CliRunner().invoke(
        app, ["run", str(tiny_archive), "--out", str(tmp_path / "o"), "--model", str(model)]
    )
    _one_line_exit_2(result, "m.skops.card.json", "'model_file': expected dict, got str")


def test_dask_cluster_that_cannot_start_is_exit_2(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.distributed
    import distributed

    def no_cluster(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("Nanny failed to start")

    # the pipeline imports it from dask.distributed, which copied distributed's name when first imported
    # (by an earlier test in a full run): patch both, or the order of the tests decides the outcome
    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    monkeypatch.setattr(dask.distributed, "LocalCluster", no_cluster)
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(tiny_archive),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(FAST_CONFIG),
            "--workers",
            "2",
        ],
    )
    _one_line_exit_2(
        result, "cannot start a Dask LocalCluster of 2 workers", "Nanny failed to start", "--workers 1"
    )


def test_yaml_alias_bomb_as_config_is_exit_2_quickly(tiny_archive: Path, tmp_path: Path) -> None:
    names = "abcdefghi"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [" + ",".join([f"*{names[i]}"] * 9) + "]" for i, c in enumerate(names[1:])]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nrun: {workers: *i}\n")
    t0 = time.perf_counter()
    result = CliRunner().invoke(
        app, ["run", str(tiny_archive), "--out", str(tmp_path / "o"), "--config", str(bomb)]
    )
    assert time.perf_counter() - t0 < 10
    _one_line_exit_2(result, "bomb.yaml", "aliases")
    assert len(result.output) < 3000


# --- OUT is owned by one run; nothing stale -------------------------------------------------------


def test_a_second_run_into_the_same_out_is_refused(tiny_archive: Path, tmp_path: Path) -> None:
    from hpd_imaging.pipeline.outdir import claim_out_dir

    out = tmp_path / "out"
    out.mkdir()
    busy = rf"{out} is in use by another hpd-imaging run \(pid {os.getpid()}"
    with claim_out_dir(out, out / ".work"), pytest.raises(EnvironmentFaultError, match=busy):
        run_study(tiny_archive, out, FAST_CONFIG)  # the block above is the first run, holding the lock
    assert not (out / "series.csv").exists()


@pytest.mark.slow
def test_rerun_without_clinical_leaves_no_stale_tables(tiny_archive: Path, tmp_path: Path) -> None:
    archive = _copy(tiny_archive, tmp_path)
    out = tmp_path / "out"
    first = run_study(archive, out, FAST_CONFIG)
    assert first.exit_code == 0 and (out / "kinetics.csv").exists() and (out / "report.html").exists()
    (archive / "clinical.csv").unlink()
    run_study(archive, out, FAST_CONFIG)
    for name in (
        "kinetics.csv",
        "response.csv",
        "targets.csv",
        "growth.csv",
        "concordance.csv",
        "report.html",
    ):
        assert not (out / name).exists(), name
    run = json.loads((out / "run.json").read_text())
    assert run["not_produced"]["kinetics.csv"] == "no clinical.csv (ici_start_date per patient)"
    assert "report.html" in run["not_produced"]
    assert set(run["removed_stale"]) >= {"kinetics.csv", "report.html", "report_patients/SYN001.html"}
    assert not list((out / "report_patients").glob("*.html"))  # no patient page of the earlier report
    # the manifest lists exactly what this run wrote, with the bytes on disk
    for rel, entry in run["manifest"].items():
        assert (out / rel).stat().st_size == entry["bytes"], rel
    assert "lesions.csv" in run["manifest"] and "kinetics.csv" not in run["manifest"]


@pytest.mark.slow
def test_resume_is_verified_against_the_bytes_read(tiny_archive: Path, tmp_path: Path) -> None:
    """A CT file rewritten with the same size and mtime (cp -p, rsync -t) must not reuse the old result."""
    archive = _copy(tiny_archive, tmp_path)
    out = tmp_path / "out"
    run_study(archive, out, FAST_CONFIG)
    ct = sorted((archive / "SYN002").glob("*/CT/*.dcm"))[3]
    st = ct.stat()
    ds = pydicom.dcmread(ct)
    arr = ds.pixel_array
    arr[10:20, 10:20] += 50
    ds.PixelData = arr.tobytes()
    ds.save_as(ct)
    assert ct.stat().st_size == st.st_size
    os.utime(ct, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = run_study(archive, out, FAST_CONFIG)
    assert second.n_skipped_resumed == 1  # SYN001 only
    run = json.loads((out / "run.json").read_text())
    assert run["patients"]["processed"] == ["SYN002"] and run["patients"]["resumed"] == ["SYN001"]


@pytest.mark.slow
def test_input_changed_during_processing_is_discarded(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpd_imaging.pipeline.execute as execute

    archive = _copy(tiny_archive, tmp_path)
    real = execute.safe_process
    touched = sorted((archive / "SYN001").glob("*/CT/*.dcm"))[0]

    def while_running(job):  # noqa: ANN001, ANN202
        if job.patient_id == "SYN001":
            os.utime(touched)  # another process rewrites the file while it is being read
        return real(job)

    monkeypatch.setattr(execute, "safe_process", while_running)
    out = tmp_path / "out"
    summary = run_study(archive, out, FAST_CONFIG)
    assert summary.failed_patients == ["SYN001"]
    rows = summary.errors[summary.errors["stage"] == "inputs"]
    assert list(rows["patient_id"]) == ["SYN001"]
    assert "changed between the archive scan and the end" in rows["message"].iloc[0]
    assert not list((out / ".work" / "patients" / "SYN001").glob("*/done.json"))


# --- absorbed faults become rows ------------------------------------------------------------------


def _set(files, **values) -> None:  # noqa: ANN001
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in values.items():
            setattr(ds, k, v)
        ds.save_as(f)


@pytest.mark.slow
def test_identity_faults_and_clinical_dates_are_rows_and_in_the_report(
    tiny_archive: Path, tmp_path: Path
) -> None:
    archive = _copy(tiny_archive, tmp_path)
    # a SEG of SYN002's follow-up whose PatientID names SYN001
    seg = sorted((archive / "SYN002").glob("*/SEG/*.dcm"))[-1]
    _set([seg], PatientID="SYN001")
    # SYN002's exams carry SYN001's name and birth date: a possible patient-ID split
    first = pydicom.dcmread(next((archive / "SYN001").glob("*/CT/*.dcm")), stop_before_pixels=True)
    _set(
        sorted((archive / "SYN002").glob("*/CT/*.dcm")),
        PatientName=first.PatientName,
        PatientBirthDate=first.PatientBirthDate,
    )
    # SYN001: ICI start after every scan, death in 2036
    clinical = pd.read_csv(archive / "clinical.csv", dtype=str, keep_default_na=False)
    columns = ["ici_start_date", "treatment_stop_date", "death_date"]
    clinical.loc[clinical["patient_id"] == "SYN001", columns] = ["2030-01-01", "", "2036-03-01"]
    clinical.to_csv(archive / "clinical.csv", index=False)
    out = tmp_path / "out"
    summary = run_study(archive, out, FAST_CONFIG)
    assert summary.exit_code == 1
    errors = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    assert list(errors.columns) == ["patient_id", "stage", "file", "message", "severity", "rule", "value"]
    mismatch = errors[errors["rule"] == "mask_patient_mismatch"]
    assert sorted(mismatch["patient_id"]) == ["SYN001", "SYN002"] and set(mismatch["severity"]) == {"error"}
    assert "PatientID 'SYN001' differs from the PatientID 'SYN002'" in mismatch["message"].iloc[0]
    split = errors[errors["rule"] == "patient_id_split"]
    assert sorted(split["patient_id"]) == ["SYN001", "SYN002"] and set(split["severity"]) == {"warning"}
    dates = errors[errors["stage"] == "clinical"]
    assert set(dates.loc[dates["rule"] == "future_date", "value"]) == {
        "ici_start_date=2030-01-01",
        "death_date=2036-03-01",
    }
    after = dates[dates["rule"] == "ici_start_after_last_scan"]
    assert list(after["patient_id"]) == ["SYN001"] and list(after["severity"]) == ["error"]
    # the SEG was not merged into SYN002's lesions (no "L01+L01" fragments)
    lesions = pd.read_csv(out / "lesions.csv", dtype=str, keep_default_na=False)
    assert not lesions["label"].str.contains(r"\+").any()
    kinetics = pd.read_csv(out / "kinetics.csv", dtype=str, keep_default_na=False)
    assert not kinetics.apply(lambda c: c.str.contains("died before the first evaluation")).any().any()
    # the report shows each warning on its patient's page, not on the others'
    section = (out / "report_patients" / "SYN002.html").read_text()
    assert 'id="p-SYN002"' in section and "possible patient-ID split" in section
    assert "possible patient-ID split" not in (out / "report.html").read_text()


def test_unmeasured_baseline_lesion_is_an_error_row_not_measured_0() -> None:
    import datetime as dt

    from hpd_imaging.pipeline.identity import unmeasured_baseline_lesions

    base, later = dt.date(2024, 1, 1), dt.date(2024, 3, 1)
    lesions = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P1", "P2", "P3", "P3"],
            "scan_date": [base, base, later, base, base, base],
            "lesion_id": ["L1", "L2", "L1", "L9", "L1", "L2"],
            # P2's L9 and P3's L2: seen before, not found at baseline (no mask there)
            "label": ["roi1", "roi2", "roi1", "", "roi1", ""],
            "voxel_count": [120, 0, 0, 0, 80, 0],
            "longest_axial_diameter_mm": [12.0, 0.0, 0.0, 0.0, 9.0, 0.0],
        }
    )
    dates = {"P1": base, "P2": base, "P3": base}
    rows = unmeasured_baseline_lesions(lesions, dates)
    assert [(r["patient_id"], r["value"], r["rule"]) for r in rows] == [
        ("P1", "L2", "baseline_lesion_unmeasured")
    ]
    assert "never computed with this lesion measured 0" in rows[0]["message"]
    # a loader fault on P3's baseline segmentation: its lesion "not found" there is no evidence of absence
    rows = unmeasured_baseline_lesions(lesions, dates, faulty_baseline={"P3"})
    assert [(r["patient_id"], r["value"]) for r in rows] == [("P1", "L2"), ("P3", "L2")]


# --- no hang --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_patient_past_its_time_limit_is_an_error_row(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpd_imaging.pipeline.execute as execute
    from hpd_imaging.settings import load_config

    real = execute.safe_process

    def slow_for_syn002(job):  # noqa: ANN001, ANN202
        if job.patient_id == "SYN002":
            time.sleep(120)
        return real(job)

    monkeypatch.setattr(execute, "safe_process", slow_for_syn002)
    cfg = load_config(FAST_CONFIG)
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"patient_time_limit_s": 30.0})})
    t0 = time.perf_counter()
    summary = run_study(tiny_archive, tmp_path / "out", cfg, config_dir=FAST_CONFIG.parent)
    assert time.perf_counter() - t0 < 100
    assert summary.failed_patients == ["SYN002"] and summary.exit_code == 1
    row = summary.errors[summary.errors["stage"] == "time_limit"].iloc[0]
    assert row["patient_id"] == "SYN002" and "run.patient_time_limit_s = 30 s" in row["message"]
