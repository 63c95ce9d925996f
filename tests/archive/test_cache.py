"""Header-index cache: hits on an unchanged archive, exactly the changed files re-read, records versioned."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from archive_factory import ct_slice, seg, write, write_series

from hpd_imaging.archive import ArchiveSettings, scan_archive
from hpd_imaging.archive import cache as cache_module
from hpd_imaging.archive import headers as headers_module


class ReadSpy:
    """Wraps headers.read_header and records which files were actually parsed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[Path] = []
        original = headers_module.read_header

        def spy(path: Path) -> dict[str, Any]:
            self.paths.append(path)
            return original(path)

        monkeypatch.setattr(headers_module, "read_header", spy)

    def take(self) -> list[Path]:
        out, self.paths = self.paths, []
        return out


@pytest.fixture()
def archive_dir(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    write_series(root / "P1" / "20240101", 6, series_uid="1.2.826.0.30.1")
    write_series(root / "P1" / "20240301", 6, series_uid="1.2.826.0.30.2", study_date="20240301")
    write(seg(ref_series_uid="1.2.826.0.30.1", frame_z=[1, 2]), root / "P1" / "20240101" / "seg.dcm")
    (root / "notes.txt").write_text("not DICOM")
    return root


def test_warm_scan_reads_nothing_and_gives_the_same_index(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadSpy(monkeypatch)
    out = tmp_path / "out"
    calls: list[tuple[int, int]] = []
    cold = scan_archive(archive_dir, cache_dir=out, progress=lambda done, total: calls.append((done, total)))
    assert len(spy.take()) == 14 and cold.scan_stats["n_read"] == 14
    assert calls[0] == (0, 14) and calls[-1] == (14, 14)
    assert (out / "header_index.sqlite").is_file()
    warm = scan_archive(archive_dir, cache_dir=out)
    assert spy.take() == [] and warm.scan_stats["n_cached"] == 14
    assert warm.series_table().equals(cold.series_table())
    assert warm.timepoints == cold.timepoints
    assert warm.n_non_dicom_skipped == cold.n_non_dicom_skipped == 1


def test_touched_file_is_reread_alone(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ReadSpy(monkeypatch)
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out)
    spy.take()
    touched = archive_dir / "P1" / "20240301" / "000.dcm"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    scan_archive(archive_dir, cache_dir=out)
    assert spy.take() == [touched]
    # a rewrite that changes the size (same mtime) is also caught, and the new content is used
    write(ct_slice(z=0.0, series_uid="1.2.826.0.30.2", study_date="20240301", description="changed"), touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    archive = scan_archive(archive_dir, cache_dir=out)
    assert spy.take() == [touched]
    assert "changed" in archive.series_table()["series_description"].tolist()


def test_new_and_deleted_files(archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ReadSpy(monkeypatch)
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out)
    spy.take()
    added = write(ct_slice(z=6.0, series_uid="1.2.826.0.30.1"), archive_dir / "P1" / "20240101" / "new.dcm")
    (archive_dir / "P1" / "20240301" / "000.dcm").unlink()
    archive = scan_archive(archive_dir, cache_dir=out)
    assert spy.take() == [added]
    assert sorted(tp.ct.n_slices for tp in archive.timepoints["P1"]) == [5, 7]
    with sqlite3.connect(out / "header_index.sqlite") as conn:
        (n_rows,) = conn.execute("SELECT COUNT(*) FROM headers").fetchone()
    assert n_rows == 14  # 14 - 1 deleted + 1 added


def test_outdated_record_version_rereads_everything(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out)
    spy = ReadSpy(monkeypatch)
    monkeypatch.setattr(cache_module, "RECORD_VERSION", cache_module.RECORD_VERSION + 1)
    scan_archive(archive_dir, cache_dir=out)
    assert len(spy.take()) == 14


def test_cache_can_be_switched_off(archive_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out, settings=ArchiveSettings(use_cache=False))
    assert not (out / "header_index.sqlite").exists()


def test_cache_inside_the_archive_is_not_scanned(archive_dir: Path) -> None:
    out = archive_dir / "output"
    scan_archive(archive_dir, cache_dir=out)
    archive = scan_archive(archive_dir, cache_dir=out)
    assert archive.n_files == 14 and archive.n_non_dicom_skipped == 1
