"""The input archive is never modified, outputs go only under --out, a read-only archive works.

``hpd-imaging run`` runs in a child process on a copy of two sample_dicom patients (or, without sample_dicom,
a tiny synthetic archive) made read-only with chmod; one patient has a truncated CT slice. Its working
directory and TMPDIR are empty folders inside tmp_path. Afterwards every archive file has the same sha256, no
file was added to or removed from the archive, nothing exists in tmp_path outside --out except the archive and
the (empty) working/temporary folders, and the damaged patient is rows in errors.csv while the other is
measured.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_dicom"
CONFIG = Path(__file__).resolve().parent / "data" / "config_fast.yaml"


def _truncate(path: Path) -> Path:
    """Cut a CT slice to 60 % of its bytes: the header survives, the pixel data does not."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def _copy_archive(dst: Path) -> tuple[str, Path]:
    """Two patients, two exams each: GOOD (untouched) and BAD (one CT slice truncated).

    From sample_dicom (SYN001 good, SYN002 bad, with their clinical rows) when it exists, else a tiny
    synthetic archive. Returns the source name and the truncated file.
    """
    if (SAMPLE / "clinical.csv").exists() and (SAMPLE / "SYN002").is_dir():
        for pid in ("SYN001", "SYN002"):
            for exam in sorted((SAMPLE / pid).iterdir())[:2]:
                shutil.copytree(exam, dst / pid / exam.name)
        with (
            open(SAMPLE / "clinical.csv", newline="") as src,
            open(dst / "clinical.csv", "w", newline="") as out,
        ):
            rows = list(csv.reader(src))
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows([rows[0], *[r for r in rows[1:] if r and r[0] in ("SYN001", "SYN002")]])
        second_exam = sorted((dst / "SYN002").iterdir())[1]
        return "sample_dicom", _truncate(sorted((second_exam / "CT").glob("*.dcm"))[10])
    from hpd_imaging.settings.synth import SynthSettings
    from hpd_imaging.synth.generate import generate_archive

    truth = generate_archive(dst, SynthSettings(n_patients=2, seed=3, matrix=32, n_followups=1))
    ct_dir = dst / truth["patients"][1]["timepoints"][-1]["ct_dir"]
    return "synthetic", _truncate(sorted(ct_dir.glob("*.dcm"))[2])


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _make_read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _make_writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def read_only_archive(tmp_path: Path):  # noqa: ANN201
    archive = tmp_path / "archive"
    archive.mkdir()
    source, truncated = _copy_archive(archive)
    before = _digest(archive)
    _make_read_only(archive)
    yield archive, before, (source, truncated)
    _make_writable(archive)  # so that pytest can clean tmp_path


def test_run_leaves_a_read_only_archive_byte_identical_and_writes_only_under_out(
    read_only_archive: tuple[Path, dict[str, str], tuple[str, Path]], tmp_path: Path
) -> None:
    """One run, three properties: the archive is untouched, outputs stay under --out, and the hostile patient
    (a truncated slice) is error rows while the other patient is measured."""
    archive, before, (source, truncated) = read_only_archive
    assert len(before) > 10
    assert not os.access(archive / "clinical.csv", os.W_OK) or os.geteuid() == 0  # root ignores mode bits
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "hpd_imaging.cli",
            "run",
            str(archive),
            "--out",
            str(out),
            "--config",
            str(CONFIG),
            "--quiet",
        ],  # fmt: skip
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, f"{source}: exit {proc.returncode}\n{proc.stderr[-3000:]}"  # 1: some failed
    # the archive: same files, same bytes, still read-only
    assert _digest(archive) == before
    assert all(not (p.stat().st_mode & stat.S_IWUSR) for p in [archive, *archive.rglob("*")])
    # outputs exist, and only under --out
    assert (out / "lesions.csv").is_file() and (out / "errors.csv").is_file() and (out / "run.json").is_file()
    outside = sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if not p.is_relative_to(out) and not p.is_relative_to(archive) and p not in (cwd, tmp)
    )
    assert outside == [], f"files created outside --out: {outside}"
    with open(out / "errors.csv", newline="") as f:
        errors = list(csv.DictReader(f))
    good, bad = sorted({p.name for p in archive.iterdir() if p.is_dir()})
    # issue 16: the good patient keeps only its first two exams, all before its ICI start: a clinical-date row
    clinical = [e for e in errors if e["stage"] == "clinical"]
    assert all(e["rule"] == "ici_start_after_last_scan" for e in clinical), clinical
    errors = [e for e in errors if e["stage"] != "clinical"]
    assert errors and {e["patient_id"] for e in errors} == {bad}, errors
    load_errors = [e for e in errors if e["stage"] == "load_ct"]
    assert len(load_errors) == 1, errors
    assert load_errors[0]["file"].endswith(truncated.name) or truncated.name in load_errors[0]["message"]
    assert "DicomReadError" in load_errors[0]["message"] or "pixel data" in load_errors[0]["message"]
    with open(out / "lesions.csv", newline="") as f:
        measured = {row["patient_id"] for row in csv.DictReader(f)}
    assert measured == {good}


def test_out_inside_the_archive_is_refused(
    read_only_archive: tuple[Path, dict[str, str], tuple[str, Path]],
) -> None:
    from typer.testing import CliRunner

    from hpd_imaging.cli import app

    archive, before, _ = read_only_archive
    result = CliRunner().invoke(app, ["run", str(archive), "--out", str(archive / "results"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "expected a folder outside the input archive" in result.output
    assert _digest(archive) == before
