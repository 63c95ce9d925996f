"""The index's headers read by a pool of processes (as a run with several workers does, issue 21) give the
same archive as one process: the same series table, timepoints and issues, and the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpd_imaging.archive import scan as scan_module
from hpd_imaging.archive import scan_archive
from hpd_imaging.settings.archive import ArchiveSettings


@pytest.mark.slow
def test_pool_of_header_readers_gives_the_serial_archive(
    sample_dicom: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = scan_archive(sample_dicom, settings=ArchiveSettings(workers=1))
    # 787 files: below the run's thresholds, so lower them to make a pool of 2 processes read them
    monkeypatch.setattr(scan_module, "HEADERS_PER_READER", 100)
    monkeypatch.setattr(scan_module, "MIN_READERS", 2)
    pooled = scan_archive(sample_dicom, settings=ArchiveSettings(workers=2))
    assert pooled.scan_stats["n_read"] == serial.scan_stats["n_read"] > 700
    pd_equal = pooled.series_table().equals(serial.series_table())
    assert pd_equal, pooled.series_table().compare(serial.series_table())
    assert pooled.timepoints == serial.timepoints
    assert pooled.issues == serial.issues == []
    truth = json.loads((sample_dicom / "ground_truth.json").read_text())
    assert pooled.patients == sorted(p["patient_id"] for p in truth["patients"])
    for patient in truth["patients"]:
        uids = [tp.ct.series_instance_uid for tp in pooled.timepoints[patient["patient_id"]]]
        assert uids == [t["series_instance_uid"] for t in patient["timepoints"]]


def test_the_pool_starts_only_for_large_cold_archives(
    sample_dicom: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pool below MIN_READERS readers of HEADERS_PER_READER headers each (its start-up would cost more
    than the reads); above, one reader per HEADERS_PER_READER headers, at most ``workers``."""
    started: list[int] = []

    class NoPool:
        def __init__(self, n: int, **kwargs: object) -> None:
            started.append(n)
            raise AssertionError("a pool was started")

    monkeypatch.setattr(scan_module, "ProcessPoolExecutor", NoPool)
    archive = scan_archive(sample_dicom, settings=ArchiveSettings(workers=8))  # 787 // 500 = 1 reader
    assert archive.scan_stats["n_read"] > 700 and started == []
    monkeypatch.setattr(scan_module, "HEADERS_PER_READER", 200)  # 787 // 200 = 3 readers: still below 4
    scan_archive(sample_dicom, settings=ArchiveSettings(workers=8))
    assert started == []
    monkeypatch.setattr(scan_module, "HEADERS_PER_READER", 150)  # 5 readers
    with pytest.raises(AssertionError, match="a pool was started"):
        scan_archive(sample_dicom, settings=ArchiveSettings(workers=8))
    with pytest.raises(AssertionError, match="a pool was started"):
        scan_archive(sample_dicom, settings=ArchiveSettings(workers=4))
    assert started == [5, 4]  # at most ``workers``
