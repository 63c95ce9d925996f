"""Parallel decoding of compressed CT series (hpd_imaging.io._pixeldecode) gives the serial path's result.

Same voxels, dtype and geometry as ``decode_workers=1`` on the real TotalSegmentator JPEG 2000 series and on
tiny synthetic RLE / JPEG 2000 series; a damaged slice is reported with its own file name and the same
message as the serial path; at most ``2 x workers`` slices are in flight.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_dicom_writers import write_ct_series
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless, RLELossless

from hpd_imaging.errors import DicomReadError
from hpd_imaging.io import LoaderSettings, _pixeldecode, load_ct

SERIAL = LoaderSettings(decode_workers=1)
PARALLEL = LoaderSettings(decode_workers=2, parallel_decode_min_slices=2)
N_SLICES, ROWS, COLS = 12, 40, 36  # J2K default: 6 resolutions need >= 32 pixels


def _pixels(n: int) -> np.ndarray:
    """Stored values that differ per slice and per voxel (a misplaced slice or voxel changes the volume)."""
    rng = np.random.default_rng(n)
    return (rng.integers(-1000, 3000, size=(ROWS, COLS)) + 7 * n).astype(np.int16)


def _write_compressed(folder: Path, syntax: str) -> list[Path]:
    files = write_ct_series(folder, [(0.0, 0.0, 2.5 * n) for n in range(N_SLICES)], _pixels)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(syntax)
        ds.save_as(f, enforce_file_format=True)
    return files


@pytest.fixture(scope="module", params=[RLELossless, JPEG2000Lossless], ids=["rle", "j2k"])
def compressed_series(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(f"ct_{request.param.name.split()[0].lower()}")
    _write_compressed(folder, request.param)
    return folder


def _decoded_on(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split(" slices ")[-1] for r in caplog.records if "decoding" in r.getMessage()]


def test_synthetic_compressed_series_parallel_equals_serial_and_ground_truth(
    compressed_series: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hpd_imaging.io.ct"):
        serial = load_ct(compressed_series, SERIAL)
        parallel = load_ct(compressed_series, PARALLEL)
    # JPEG 2000 on imagecodecs' threads (GIL released), RLE on processes (pydicom's decoder holds the GIL)
    pool = "threads" if "jpeg" in compressed_series.name else "processes"
    assert _decoded_on(caplog) == ["serially", f"on 2 {pool}"]
    expected = np.stack([_pixels(n) for n in range(N_SLICES)]).astype(np.int32) - 1024
    np.testing.assert_array_equal(serial.hu, expected)
    np.testing.assert_array_equal(parallel.hu, expected)
    assert parallel.hu.dtype == serial.hu.dtype == np.int16
    assert parallel.geometry == serial.geometry
    assert parallel.provenance == serial.provenance


def test_progress_reported_in_slice_order_on_the_pool(compressed_series: Path) -> None:
    seen: list[tuple[int, int]] = []
    load_ct(compressed_series, PARALLEL, progress=lambda k, n: seen.append((k, n)))
    assert seen == [(k, N_SLICES) for k in range(1, N_SLICES + 1)]


def _damage_slice(path: Path) -> None:
    """Keep the header, replace the compressed frame with a truncated (undecodable) one."""
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    if ds.file_meta.TransferSyntaxUID == RLELossless:
        bad = (3).to_bytes(4, "little") + bytes(60) + frame[64:80]  # header claims 3 segments at offset 0
    else:
        bad = frame[: len(frame) // 8]
    ds.PixelData = encapsulate([bad])
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "j2k"])
def test_damaged_slice_named_with_the_serial_message(tmp_path: Path, syntax: str) -> None:
    files = _write_compressed(tmp_path, syntax)
    bad = files[7]
    _damage_slice(bad)
    messages = []
    for settings in (SERIAL, PARALLEL):
        with pytest.raises(DicomReadError, match=rf"{bad.name}: cannot decode pixel data \(transfer syntax "):
            load_ct(tmp_path, settings)
        try:
            load_ct(tmp_path, settings)
        except DicomReadError as exc:
            messages.append((str(exc), exc.path))
    assert messages[0] == messages[1]  # same file, same words, serial or pool
    assert messages[1][1] == str(bad)
    # the pool survives a failed series: the next load works
    after = load_ct(files[:7], PARALLEL)
    np.testing.assert_array_equal(after.hu[:, 0, 0], [_pixels(n)[0, 0] - 1024 for n in range(7)])


class _CountingItems:
    """An iterable of (path, header) that counts how many items the decoder has taken."""

    def __init__(self, items: list[tuple[Path, pydicom.Dataset]]) -> None:
        self.items, self.taken = items, 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in self.items:
            self.taken += 1
            yield item

    def __len__(self) -> int:
        return len(self.items)


def test_at_most_two_slices_per_worker_in_flight(tmp_path: Path) -> None:
    files = _write_compressed(tmp_path, RLELossless)
    items = _CountingItems([(f, pydicom.dcmread(f, stop_before_pixels=True)) for f in files])
    stored = _pixeldecode.iter_stored(items, 2)  # type: ignore[arg-type]
    for k, values in enumerate(stored):
        np.testing.assert_array_equal(values, _pixels(k))
        assert items.taken <= min(N_SLICES, k + 1 + 4)  # yielded + at most 2 x 2 queued
    assert items.taken == N_SLICES


def test_worker_count_policy() -> None:
    decide = _pixeldecode.decode_workers
    assert decide(96, compressed=False, workers=8, min_slices=16) == 1  # uncompressed: copying, no pool
    assert decide(10, compressed=True, workers=8, min_slices=16) == 1  # small series: start-up would not pay
    assert decide(20, compressed=True, workers=8, min_slices=16) == 8
    assert decide(20, compressed=True, workers=64, min_slices=16) == 20  # never more than slices
    assert decide(20, compressed=True, workers=None, min_slices=16) == min(_pixeldecode.usable_cores(), 20)
    assert decide(20, compressed=True, workers=1, min_slices=16) == 1
    with pytest.raises(ValueError, match="decode_workers"):
        LoaderSettings(decode_workers=0)


def test_daemonic_process_decodes_serially(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask worker processes are daemonic (distributed.worker.daemon) and may not start children."""

    class _Daemon:
        daemon = True

    monkeypatch.setattr(_pixeldecode.multiprocessing, "current_process", lambda: _Daemon())
    assert _pixeldecode.decode_workers(96, compressed=True, workers=8, min_slices=16) == 1


def test_totalsegmentator_j2k_series_parallel_equals_serial(
    real_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = real_data / "totalseg_ct_jpeg2000" / "tests" / "reference_files" / "example_ct_dicom"
    with caplog.at_level(logging.DEBUG, logger="hpd_imaging.io.ct"):
        serial = load_ct(folder, SERIAL)
        parallel = load_ct(folder, LoaderSettings(decode_workers=2))
    assert _decoded_on(caplog) == ["serially", "on 2 threads"]
    assert parallel.hu.shape == (20, 512, 512)
    assert parallel.hu.dtype == serial.hu.dtype
    np.testing.assert_array_equal(parallel.hu, serial.hu)
    assert parallel.geometry == serial.geometry
    # a real CT: air and soft tissue present (the volume is not blank or garbage)
    assert serial.hu.min() <= -1000 and 0 <= float(np.median(serial.hu[serial.hu > -500])) <= 100


def test_totalsegmentator_j2k_imagecodecs_equals_pylibjpeg_and_simpleitk(
    real_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real JPEG 2000 series: imagecodecs (threads) = pydicom + pylibjpeg-openjpeg = SimpleITK (GDCM)."""
    sitk = pytest.importorskip("SimpleITK")
    folder = real_data / "totalseg_ct_jpeg2000" / "tests" / "reference_files" / "example_ct_dicom"
    ours = load_ct(folder, LoaderSettings(decode_workers=2))
    monkeypatch.setattr(_pixeldecode, "_jpeg2k_decode", lambda: None)  # today's decoder on processes
    pylibjpeg = load_ct(folder, LoaderSettings(decode_workers=2))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    itk = sitk.GetArrayFromImage(reader.Execute())
    np.testing.assert_array_equal(ours.hu, pylibjpeg.hu)
    assert ours.hu.shape == itk.shape
    np.testing.assert_array_equal(ours.hu, itk)
