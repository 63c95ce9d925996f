"""Issue 21: a CT loaded with ``lazy=True`` decodes only the slices asked for, gives the eager voxels, finds
truncated / lying pixel data at load time, reports a slice that fails only when decoded with its file, and
is safe with threads.

Ground truth: the stored values written into the files (``_pixels``), and the eager loader on the same files.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_dicom_writers import write_ct_series
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless

from hpd_imaging.errors import DicomReadError
from hpd_imaging.io import load_ct

N_SLICES, ROWS, COLS = 12, 40, 36  # J2K default: 6 resolutions need >= 32 pixels


def _pixels(n: int) -> np.ndarray:
    """Stored values that differ per slice and per voxel (a misplaced slice or voxel changes the volume)."""
    rng = np.random.default_rng(100 + n)
    return (rng.integers(-1000, 3000, size=(ROWS, COLS)) + 7 * n).astype(np.int16)


def _truth() -> np.ndarray:
    return np.stack([_pixels(n) for n in range(N_SLICES)]).astype(np.int32) - 1024


def _write(folder: Path, syntax: str | None) -> list[Path]:
    files = write_ct_series(folder, [(0.0, 0.0, 2.5 * n) for n in range(N_SLICES)], _pixels)
    if syntax is not None:
        for f in files:
            ds = pydicom.dcmread(f)
            ds.compress(syntax)
            ds.save_as(f, enforce_file_format=True)
    return files


@pytest.fixture(scope="module", params=[None, JPEG2000Lossless], ids=["native", "j2k"])
def series(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lazy_native" if request.param is None else "lazy_j2k")
    _write(folder, request.param)
    return folder


def test_lazy_slabs_and_boxes_equal_eager_and_truth_for_random_ranges_and_edges(series: Path) -> None:
    eager = load_ct(series)
    lazy = load_ct(series, lazy=True)
    assert lazy.is_lazy and not eager.is_lazy
    assert lazy.lazy is not None and lazy.lazy.n_decoded == 0 and lazy.decoded_nbytes == 0  # nothing yet
    assert lazy.geometry == eager.geometry and lazy.dtype == eager.dtype == np.int16
    truth = _truth()
    np.testing.assert_array_equal(eager.hu, truth)
    rng = np.random.default_rng(5)
    ranges = [
        (0, 1),
        (N_SLICES - 1, N_SLICES),
        (4, 4),
        *(tuple(sorted(rng.integers(0, N_SLICES + 1, 2))) for _ in range(8)),
    ]
    for k0, k1 in ranges:
        got = lazy.slab(int(k0), int(k1))
        assert got.shape == (k1 - k0, ROWS, COLS)
        np.testing.assert_array_equal(got, truth[k0:k1])
    for _ in range(8):
        lo = rng.integers(0, [N_SLICES, ROWS, COLS])
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, (N_SLICES, ROWS, COLS), strict=True)]
        box = tuple(slice(int(a), b) for a, b in zip(lo, hi, strict=True))
        np.testing.assert_array_equal(lazy.voxels(box), truth[box])  # type: ignore[arg-type]
    np.testing.assert_array_equal(lazy.hu, truth)
    assert lazy.hu.dtype == eager.hu.dtype
    assert lazy.lazy.n_decoded == N_SLICES  # each slice decoded once, however often it was asked for
    assert lazy.decoded_nbytes == truth.size * 2
    assert lazy.provenance["sop_instance_uids"] == eager.provenance["sop_instance_uids"]


def test_only_the_slices_asked_for_are_decoded(series: Path) -> None:
    lazy = load_ct(series, lazy=True)
    assert lazy.lazy is not None
    lazy.slab(3, 6)
    assert lazy.lazy.n_decoded == 3 and lazy.decoded_nbytes == 3 * ROWS * COLS * 2
    lazy.voxels((slice(5, 7), slice(0, 4), slice(2, 9)))
    assert lazy.lazy.n_decoded == 4  # slice 5 was decoded already: only slice 6 is new
    lazy.slab(8, 8)
    assert lazy.lazy.n_decoded == 4
    with pytest.raises(IndexError, match=r"expected slices within 0:12, got 11:13"):
        lazy.lazy.slab(11, 13)


def test_input_digest_is_deterministic_decodes_nothing_and_follows_the_stored_bytes(tmp_path: Path) -> None:
    files = _write(tmp_path / "a", JPEG2000Lossless)
    first, second = load_ct(tmp_path / "a", lazy=True), load_ct(tmp_path / "a", lazy=True)
    digest = first.input_sha256()
    assert digest is not None and len(digest) == 64 and digest == second.input_sha256()
    assert first.lazy is not None and first.lazy.n_decoded == 0
    assert load_ct(tmp_path / "a").input_sha256() is None  # eager: the caller hashes the voxels
    ds = pydicom.dcmread(files[4])
    ds.RescaleIntercept = -1000  # same stored bytes, other HU
    ds.save_as(files[4], enforce_file_format=True)
    assert load_ct(tmp_path / "a", lazy=True).input_sha256() != digest
    ds.RescaleIntercept = -1024
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[-3] ^= 0x01  # one stored byte
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(files[4], enforce_file_format=True)
    assert load_ct(tmp_path / "a", lazy=True).input_sha256() != digest


@pytest.mark.parametrize("syntax", [None, JPEG2000Lossless], ids=["native", "j2k"])
def test_a_slice_truncated_inside_its_pixel_data_is_refused_at_load(
    tmp_path: Path, syntax: str | None
) -> None:
    files = _write(tmp_path, syntax)
    data = files[6].read_bytes()
    files[6].write_bytes(data[: len(data) - 200])
    with pytest.raises(DicomReadError, match=rf"{files[6].name}: .*truncated") as info:
        load_ct(tmp_path, lazy=True)
    assert info.value.path == str(files[6])
    files[6].write_bytes(data)  # the intact file loads: the check does not refuse good data
    assert load_ct(tmp_path, lazy=True).geometry.shape == (N_SLICES, ROWS, COLS)


def test_a_codestream_whose_siz_disagrees_with_the_header_is_refused_at_load(tmp_path: Path) -> None:
    files = _write(tmp_path, JPEG2000Lossless)
    for f in files:  # every slice declares 2 more columns than its codestream holds (consistent stack)
        ds = pydicom.dcmread(f)
        ds.Columns = COLS + 2
        ds.save_as(f, enforce_file_format=True)
    with pytest.raises(
        DicomReadError, match=rf"SIZ: expected {ROWS} rows x {COLS + 2} columns.*got {ROWS} x {COLS}"
    ):
        load_ct(tmp_path, lazy=True)
    files2 = _write(tmp_path / "b", JPEG2000Lossless)
    ds = pydicom.dcmread(files2[2])
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([b"\x00\x00" + frame[2:]])  # SOC marker gone
    ds.save_as(files2[2], enforce_file_format=True)
    with pytest.raises(
        DicomReadError, match=rf"{files2[2].name}: JPEG 2000 pixel data: expected a codestream"
    ):
        load_ct(tmp_path / "b", lazy=True)


def test_a_slice_that_fails_only_when_decoded_names_its_file_and_keeps_the_rest(tmp_path: Path) -> None:
    files = _write(tmp_path, JPEG2000Lossless)
    ds = pydicom.dcmread(files[7])
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 8]])  # SOC + SIZ intact, tile data cut short
    ds.save_as(files[7], enforce_file_format=True)
    lazy = load_ct(tmp_path, lazy=True)  # nothing at load: the damage shows only when decoded
    np.testing.assert_array_equal(lazy.slab(0, 7), _truth()[:7])
    with pytest.raises(DicomReadError, match=rf"{files[7].name}: cannot decode pixel data") as info:
        lazy.slab(5, 10)
    assert info.value.path == str(files[7])
    np.testing.assert_array_equal(lazy.slab(8, 12), _truth()[8:])  # the other slices still decode
    with pytest.raises(DicomReadError, match=files[7].name):
        _ = lazy.hu


def _ask_together(ct: object, ranges: list[tuple[int, int]]) -> list[np.ndarray]:
    """``ct.slab`` of each range, each in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(ranges))
    results: list[np.ndarray | None] = [None] * len(ranges)
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            barrier.wait()
            results[n] = np.array(ct.slab(*ranges[n]))  # type: ignore[attr-defined]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(ranges))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [r for r in results if r is not None]


def test_two_threads_asking_overlapping_ranges_get_the_truth_and_decode_each_slice_once(series: Path) -> None:
    truth = _truth()
    for _ in range(5):
        lazy = load_ct(series, lazy=True)
        a, b = _ask_together(lazy, [(0, 8), (4, 12)])
        np.testing.assert_array_equal(a, truth[0:8])
        np.testing.assert_array_equal(b, truth[4:12])
        assert lazy.lazy is not None and lazy.lazy.n_decoded == N_SLICES
