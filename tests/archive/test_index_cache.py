"""Whole-index cache: an unchanged archive reuses its finished index; any change falls back and rebuilds it.

Each test compares against a scan without any cache (the reference: every header parsed, everything
grouped), so a reused or rebuilt index must equal what a cold scan finds -- stacks with their records,
masks, timepoints, series.csv, issues.
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from archive_factory import ct_slice, seg, write, write_series

from hpd_imaging.archive import Archive, ArchiveSettings, index_cache, scan_archive
from hpd_imaging.archive import headers as headers_module
from hpd_imaging.archive import scan as scan_module
from hpd_imaging.errors import ConfigError


class Spies:
    """Counts header reads and groupings (build_stacks calls) made by scan_archive."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: list[Path] = []
        self.groupings = 0
        read, build = headers_module.read_header, scan_module.build_stacks

        def read_spy(path: Path) -> dict[str, Any]:
            self.reads.append(path)
            return read(path)

        def build_spy(*args: Any, **kwargs: Any) -> Any:
            self.groupings += 1
            return build(*args, **kwargs)

        monkeypatch.setattr(headers_module, "read_header", read_spy)
        monkeypatch.setattr(scan_module, "build_stacks", build_spy)

    def take(self) -> tuple[list[Path], int]:
        out = (self.reads, self.groupings)
        self.reads, self.groupings = [], 0
        return out


@pytest.fixture()
def archive_dir(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    write_series(root / "P1" / "20240101", 6, series_uid="1.2.826.0.40.1")
    write_series(root / "P1" / "20240301", 6, series_uid="1.2.826.0.40.2", study_date="20240301")
    write(seg(ref_series_uid="1.2.826.0.40.1", frame_z=[1, 2]), root / "P1" / "20240101" / "seg.dcm")
    # a damaged DICOM file gives an issue, which the reused index must keep
    (root / "P2").mkdir()
    (root / "P2" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7fgarbage")
    (root / "notes.txt").write_text("not DICOM")
    return root


def assert_same_index(got: Archive, reference: Archive) -> None:
    assert got.series_table().equals(reference.series_table())
    assert got.timepoints == reference.timepoints
    assert got.issues == reference.issues
    assert got.stacks == reference.stacks  # dataclass equality: files and every header record
    assert [(m.ref, m.stack, m.exam) for m in got.masks] == [
        (m.ref, m.stack, m.exam) for m in reference.masks
    ]
    assert (got.n_files, got.n_non_dicom_skipped) == (reference.n_files, reference.n_non_dicom_skipped)
    assert (got.study_dir, got.clinical_path, got.manifest_path) == (
        reference.study_dir,
        reference.clinical_path,
        reference.manifest_path,
    )


def test_unchanged_archive_reuses_the_index_without_reading_or_grouping(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = scan_archive(archive_dir)  # no cache at all
    out = tmp_path / "out"
    spies = Spies(monkeypatch)
    cold = scan_archive(archive_dir, cache_dir=out)
    reads, groupings = spies.take()
    assert len(reads) == 15 and groupings == 1 and "index_reused" not in cold.scan_stats
    progress: list[tuple[int, int]] = []
    warm = scan_archive(archive_dir, cache_dir=out, progress=lambda d, t: progress.append((d, t)))
    assert spies.take() == ([], 0)
    assert warm.scan_stats["index_reused"] == 1.0
    assert warm.scan_stats["n_read"] == 0 and warm.scan_stats["n_cached"] == 15
    assert progress[-1] == (15, 15)
    assert len(warm.issues) >= 1  # the broken file
    assert_same_index(warm, reference)
    # and again: a reused index can be reused
    again = scan_archive(archive_dir, cache_dir=out)
    assert spies.take() == ([], 0) and again.scan_stats["index_reused"] == 1.0
    assert_same_index(again, reference)


@pytest.mark.parametrize("change", ["mtime", "size", "new", "deleted", "non_dicom"])
def test_any_change_rebuilds_the_index_reading_only_what_changed(
    change: str, archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out)
    spies = Spies(monkeypatch)
    target = archive_dir / "P1" / "20240301" / "000.dcm"
    st = target.stat()
    expected_reads: list[Path] = []
    if change == "mtime":
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        expected_reads = [target]
    elif change == "size":  # same mtime, new content (and size): the new description must show
        write(
            ct_slice(z=0.0, series_uid="1.2.826.0.40.2", study_date="20240301", description="rewritten"),
            target,
        )
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        expected_reads = [target]
    elif change == "new":
        added = write(
            ct_slice(z=6.0, series_uid="1.2.826.0.40.2", study_date="20240301"), target.with_name("x.dcm")
        )
        expected_reads = [added]
    elif change == "deleted":
        target.unlink()
    else:  # a non-DICOM file is an input too (clinical.csv, masks.csv): any file counts
        (archive_dir / "notes.txt").write_text("not DICOM, longer now")
    changed = scan_archive(archive_dir, cache_dir=out)
    reads, groupings = spies.take()
    assert groupings == 1 and "index_reused" not in changed.scan_stats
    if change != "non_dicom":
        assert reads == expected_reads
    reference = scan_archive(archive_dir)  # no cache
    spies.take()
    assert_same_index(changed, reference)
    if change == "size":
        assert "rewritten" in changed.series_table()["series_description"].tolist()
    # the rebuilt index is the one reused next time
    warm = scan_archive(archive_dir, cache_dir=out)
    assert spies.take() == ([], 0) and warm.scan_stats["index_reused"] == 1.0
    assert_same_index(warm, reference)


def test_changed_settings_do_not_reuse_the_index(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out)
    spies = Spies(monkeypatch)
    settings = ArchiveSettings(min_slices=7)  # 6-slice series are no CT volumes any more
    changed = scan_archive(archive_dir, cache_dir=out, settings=settings)
    assert spies.take() == ([], 1)  # headers from the cache, grouping redone
    assert changed.timepoints == {}
    assert_same_index(changed, scan_archive(archive_dir, settings=settings))


def test_damaged_index_row_falls_back_to_a_full_regrouping(
    archive_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    scan_archive(archive_dir, cache_dir=out)
    with sqlite3.connect(out / "header_index.sqlite") as conn:
        # a pickle that would run a shell command: the allow-list unpickler must refuse it
        conn.execute("UPDATE archive_index SET payload = ?", (pickle.dumps(os.system),))
    spies = Spies(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="hpd_imaging.archive.scan"):
        archive = scan_archive(archive_dir, cache_dir=out)
    assert "cached index unusable" in caplog.text and "refusing global posix.system" in caplog.text
    assert spies.take() == ([], 1)
    assert_same_index(archive, scan_archive(archive_dir))


def test_records_of_a_reused_index_are_fetched_on_first_use(archive_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cold = scan_archive(archive_dir, cache_dir=out)
    warm = scan_archive(archive_dir, cache_dir=out)
    assert warm.scan_stats["index_reused"] == 1.0
    assert all("records" not in s.__dict__ for s in warm.stacks)  # not decoded by the scan itself
    assert [s.n_slices for s in warm.stacks] == [s.n_slices for s in cold.stacks] == [6, 6]
    assert warm.stacks[0].records == cold.stacks[0].records
    assert warm.stacks[0].records[0]["sop_instance_uid"]
    # an index whose row was replaced since (archive changed and re-scanned) says so instead of lying
    stale = scan_archive(archive_dir, cache_dir=out)
    (archive_dir / "notes.txt").write_text("changed")
    scan_archive(archive_dir, cache_dir=out)
    with pytest.raises(ConfigError, match="re-indexed since"):
        _ = stale.stacks[1].records


def test_path_rebuilt_from_parent_equals_parsed_path() -> None:
    for text in ["/a/b/c.dcm", "/c.dcm", "//srv/share/x.dcm", "/a b/ü/x y.dcm", "rel/x.dcm", "x.dcm"]:
        rebuilt = index_cache._path_from_text(text)
        assert rebuilt == Path(text) and str(rebuilt) == str(Path(text)) and rebuilt.parts == Path(text).parts
