"""Failure isolation and exit codes: corrupt patients become rows of errors.csv while the others finish
(exit 1); bad usage or configuration exits 2 before any work."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pipeline_helpers import FAST_CONFIG, cli, make_archive
from typer.testing import CliRunner

from hpd_imaging.cli import app


def _exam(archive: Path, patient: str, n: int) -> Path:
    return sorted(p for p in (archive / patient).iterdir() if p.is_dir())[n]


@pytest.fixture(scope="module")
def corrupt_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SYN001 intact; SYN002 one slice moved 2 mm (uneven spacing, refused); SYN003 an all-empty SEG;
    SYN004 a CT slice truncated inside its pixel data."""
    root = tmp_path_factory.mktemp("corrupt") / "archive"
    make_archive(root, n_patients=4, n_followups=1, seed=11)
    ct = _exam(root, "SYN002", 1) / "CT" / "10.dcm"
    ds = pydicom.dcmread(ct)
    ipp = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [ipp[0], ipp[1], ipp[2] + 2.0]
    ds.save_as(ct)
    seg = _exam(root, "SYN003", 1) / "SEG" / "seg.dcm"
    ds = pydicom.dcmread(seg)
    ds.PixelData = bytes(len(ds.PixelData))
    ds.save_as(seg)
    truncated = _exam(root, "SYN004", 0) / "CT" / "10.dcm"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) - 2000])
    return root


@pytest.mark.slow
def test_corrupt_patients_are_rows_and_the_others_finish(corrupt_archive: Path, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "logs" / "run.log"
    proc = subprocess.run(
        cli(
            "run",
            corrupt_archive,
            "--out",
            out,
            "--config",
            FAST_CONFIG,
            "--quiet",
            "--log-file",
            log,
            "--log-level",
            "INFO",
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    errors = pd.read_csv(out / "errors.csv", dtype=str, keep_default_na=False)
    failing = errors[errors["severity"] == "error"]
    rows = {pid: failing[failing["patient_id"] == pid].iloc[0] for pid in ("SYN002", "SYN003", "SYN004")}
    assert rows["SYN002"]["stage"] == "load_ct" and "uneven slice spacing" in rows["SYN002"]["message"]
    assert rows["SYN002"]["file"].startswith("SYN002/")
    assert rows["SYN003"]["stage"] == "load_masks" and rows["SYN003"]["file"].endswith("SEG/seg.dcm")
    assert "non-empty segment" in rows["SYN003"]["message"]
    assert rows["SYN004"]["stage"] == "load_ct" and rows["SYN004"]["file"].endswith("CT/10.dcm")
    assert "truncated" in rows["SYN004"]["message"]
    assert "SYN001" not in set(failing["patient_id"])
    # the intact patient went all the way: lesions, kinetics and radiomics
    assert set(pd.read_csv(out / "lesions.csv", dtype=str)["patient_id"]) == {"SYN001"}
    kinetics = pd.read_csv(out / "kinetics.csv", dtype=str)
    assert kinetics.loc[kinetics["patient_id"] == "SYN001", "hpd_champiat2017"].iloc[0] in {"hpd", "no_hpd"}
    assert set(pd.read_parquet(out / "radiomics.parquet")["patient_id"]) == {"SYN001"}
    info = json.loads((out / "run.json").read_text())
    assert info["patients"]["failed"] == ["SYN002", "SYN003", "SYN004"]
    # the log file holds the run's story even with --quiet
    text = log.read_text()
    assert "4 patients: 4 to process, 0 already done" in text
    assert "INFO hpd_imaging.pipeline" in text
    assert "non-empty segment" not in proc.stdout


def test_usage_errors_exit_2(tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("radiomics: [unclosed\n")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text("run:\n  wokers: 2\n")
    monkeypatch.delenv("HPD_PSEUDONYM_KEY", raising=False)
    o = {n: str(tmp_path / f"o{n}") for n in range(1, 7)}
    cases = {
        "bad YAML": (["run", str(tiny_archive), "--out", o[1], "--config", str(bad_yaml)], "invalid YAML"),
        "unknown key": (["run", str(tiny_archive), "--out", o[2], "--config", str(unknown_key)], "wokers"),
        "missing study": (["run", str(tmp_path / "nowhere"), "--out", o[3]], "study folder"),
        "out inside the archive": (
            ["run", str(tiny_archive), "--out", str(tiny_archive / "results")],
            "outside the input archive",
        ),
        "pseudonymize without key": (
            ["run", str(tiny_archive), "--out", o[4], "--pseudonymize"],
            "expected a secret key",
        ),
        "short key": (
            ["run", str(tiny_archive), "--out", o[5], "--pseudonymize", "--pseudonym-key", "short"],
            "at least 16 characters",
        ),
        "bad log level": (["run", str(tiny_archive), "--out", o[6], "--log-level", "LOUD"], "LOUD"),
    }
    for name, (args, message) in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (name, result.output)
        assert message in result.output, (name, result.output)
    assert not (tiny_archive / "results").exists()
    assert not any((tmp_path / f"o{n}").exists() for n in (1, 2, 3, 4, 5))
