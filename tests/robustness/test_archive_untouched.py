"""The input archive is never modified, outputs go only under --out, a read-only archive works.

``hpd-imaging run`` runs in a child process on a copy of one sample_dicom patient (or, without sample_dicom, a
tiny synthetic archive) made read-only with chmod; its working directory and TMPDIR are empty folders inside
tmp_path. Afterwards every archive file has the same sha256, no file was added to or removed from the archive,
and nothing exists in tmp_path outside --out except the archive and the (empty) working/temporary folders.
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


def _copy_archive(dst: Path) -> str:
    """One sample_dicom patient (4 exams, CT + SEG) with its clinical row; a tiny synthetic one without it."""
    if (SAMPLE / "clinical.csv").exists() and (SAMPLE / "SYN001").is_dir():
        shutil.copytree(SAMPLE / "SYN001", dst / "SYN001")
        with (
            open(SAMPLE / "clinical.csv", newline="") as src,
            open(dst / "clinical.csv", "w", newline="") as out,
        ):
            rows = list(csv.reader(src))
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows([rows[0], *[r for r in rows[1:] if r and r[0] == "SYN001"]])
        return "sample_dicom/SYN001"
    from hpd_imaging.synth.generate import generate_archive
    from hpd_imaging.synth.settings import SynthSettings

    generate_archive(dst, SynthSettings(n_patients=1, seed=3, matrix=32, n_followups=1))
    return "synthetic"


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
    source = _copy_archive(archive)
    before = _digest(archive)
    _make_read_only(archive)
    yield archive, before, source
    _make_writable(archive)  # so that pytest can clean tmp_path


def test_run_leaves_a_read_only_archive_byte_identical_and_writes_only_under_out(
    read_only_archive: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    archive, before, source = read_only_archive
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
    assert proc.returncode == 0, f"{source}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
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
    errors = (out / "errors.csv").read_text().strip().splitlines()
    assert len(errors) == 1, errors  # header only: the read-only archive cost nothing


def test_out_inside_the_archive_is_refused(read_only_archive: tuple[Path, dict[str, str], str]) -> None:
    from typer.testing import CliRunner

    from hpd_imaging.cli import app

    archive, before, _ = read_only_archive
    result = CliRunner().invoke(app, ["run", str(archive), "--out", str(archive / "results"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "expected a folder outside the input archive" in result.output
    assert _digest(archive) == before
