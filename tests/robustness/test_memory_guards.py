"""Memory-bomb guards: a header declaring gigabytes is refused before anything is allocated.

Each test writes a tiny file whose header declares a huge pixel matrix (or contour), calls the loader under
tracemalloc, and checks the error class, the message (file, rule, value) and that the peak of traced
allocations stayed small (numpy registers its buffers with tracemalloc).
"""

from __future__ import annotations

import gzip
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import RLELossless

from hpd_imaging.errors import DicomReadError, InputLimitError
from hpd_imaging.io import load_ct, load_masks, read_labelmap, read_rtstruct, read_seg
from hpd_imaging.settings.io import LoaderSettings
from tools.fuzz import corpus
from tools.fuzz.mutate import dataset_bytes, million_points, read_dataset

PEAK_BUDGET_BYTES = 32 * 2**20  # far below the gigabytes declared


def _peak(call: Callable[[], Any]) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - returned for the assertions
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ct")
    for k in range(corpus.N_SLICES):
        corpus.ct_slice(k).save_as(folder / f"{k}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def ct(ct_folder: Path):  # noqa: ANN201
    return load_ct(ct_folder)


def _bomb_series(tmp: Path, rows: int, columns: int, syntax: str | None = None) -> Path:
    """The seed series with one slice whose header declares rows x columns (pixel data unchanged)."""
    tmp.mkdir(parents=True, exist_ok=True)
    for k in range(corpus.N_SLICES):
        ds = corpus.ct_slice(k, syntax) if syntax else corpus.ct_slice(k)
        if k == 1:
            ds.Rows, ds.Columns = rows, columns
        ds.save_as(tmp / f"{k}.dcm", enforce_file_format=True)
    return tmp


def test_uncompressed_slice_declaring_gigabytes_is_refused_by_file_size(tmp_path: Path) -> None:
    folder = _bomb_series(tmp_path / "ct", 40000, 40000)  # 3.2 GB of int16 declared, 128 bytes stored
    exc, peak = _peak(lambda: load_ct(folder))
    assert isinstance(exc, DicomReadError), exc
    assert str(folder / "1.dcm") in str(exc)
    assert "declares 3200000000 bytes of uncompressed pixel data" in str(exc)
    assert "expected at most the 128 bytes the file holds" in str(exc)
    assert peak < PEAK_BUDGET_BYTES


def test_declared_size_over_the_configured_limit_is_an_input_limit_error(tmp_path: Path) -> None:
    folder = _bomb_series(tmp_path / "ct", 65535, 65535)  # 8.6 GB declared > default 4 GiB
    exc, peak = _peak(lambda: load_ct(folder))
    assert isinstance(exc, InputLimitError), exc
    assert "header declares 8589672450 bytes of pixel data (65535 rows x 65535 columns" in str(exc)
    assert f"max_pixel_data_bytes={4 * 2**30}" in str(exc)
    assert peak < PEAK_BUDGET_BYTES
    # the limit is configurable: the untouched seed series is refused under a 100-byte limit
    with pytest.raises(
        InputLimitError, match=r"0\.dcm: header declares 128 bytes .*max_pixel_data_bytes=100"
    ):
        load_ct(
            _bomb_series(tmp_path / "ok", corpus.N_ROWS, corpus.N_COLUMNS),
            LoaderSettings(max_pixel_data_bytes=100),
        )


def test_compressed_slice_declaring_gigabytes_is_refused_by_the_limit(tmp_path: Path) -> None:
    """RLE data cannot be compared with the file size (the ratio is unbounded): the limit is the guard."""
    folder = _bomb_series(tmp_path / "ct", 65535, 65535, syntax=RLELossless)
    exc, peak = _peak(lambda: load_ct(folder))
    assert isinstance(exc, InputLimitError), exc
    assert peak < PEAK_BUDGET_BYTES
    small = LoaderSettings(max_pixel_data_bytes=2**20)
    folder2 = _bomb_series(tmp_path / "ct2", 1000, 1000, syntax=RLELossless)  # 2 MB declared
    with pytest.raises(InputLimitError, match="2000000 bytes of pixel data"):
        load_ct(folder2, small)


def test_enhanced_ct_declaring_a_million_frames_is_refused(tmp_path: Path) -> None:
    ds = corpus.enhanced_ct()
    ds.NumberOfFrames = 1_000_000
    path = tmp_path / "ect.dcm"
    ds.save_as(path, enforce_file_format=True)
    exc, peak = _peak(lambda: load_ct(path))
    assert isinstance(exc, InputLimitError | DicomReadError), exc
    assert "1000000 frames" in str(exc) and str(path) in str(exc)
    assert peak < PEAK_BUDGET_BYTES


def test_seg_declaring_gigabytes_is_refused_before_highdicom_reads_it(
    tmp_path: Path, ct_folder: Path, ct: Any
) -> None:
    import highdicom  # noqa: F401 - imported outside the measured call

    slices = [corpus.ct_slice(k) for k in range(corpus.N_SLICES)]
    seg = corpus._seg(slices, fractional=False)
    seg.Rows, seg.Columns = 65535, 65535
    path = tmp_path / "seg.dcm"
    seg.save_as(path, enforce_file_format=True)
    exc, peak = _peak(lambda: read_seg(path, ct))
    assert isinstance(exc, InputLimitError | DicomReadError), exc
    assert "65535 rows x 65535 columns" in str(exc) or "65535 x 65535" in str(exc)
    assert peak < PEAK_BUDGET_BYTES


def _nifti_with_dims(tmp_path: Path, dims: tuple[int, ...], *, gz: bool) -> Path:
    path = corpus.write_labelmap(tmp_path / ("labels.nii.gz" if gz else "labels.nii"))
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    raw = raw[:40] + struct.pack("<8h", *dims) + raw[56:]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_nifti_header_declaring_gigabytes_is_refused(tmp_path: Path, ct: Any) -> None:
    path = _nifti_with_dims(tmp_path, (3, 32767, 32767, 32767, 1, 1, 1, 1), gz=True)
    exc, peak = _peak(lambda: read_labelmap(path, ct))
    assert isinstance(exc, InputLimitError), exc
    assert "(32767, 32767, 32767)" in str(exc) and str(path) in str(exc)
    assert peak < PEAK_BUDGET_BYTES


def test_uncompressed_nifti_larger_than_its_file_is_refused(tmp_path: Path, ct: Any) -> None:
    path = _nifti_with_dims(tmp_path, (3, 300, 300, 3, 1, 1, 1, 1), gz=False)  # 270 kB declared, 544 B stored
    with pytest.raises(DicomReadError, match=r"labels\.nii: header declares 270000 bytes of voxel data"):
        read_labelmap(path, ct)


def test_a_million_contour_points_are_counted_from_the_raw_bytes_and_refused(tmp_path: Path, ct: Any) -> None:
    """The limit counts the stored values (NumberOfContourPoints may lie), fast and in little memory."""
    seed = tmp_path / "seed.dcm"
    corpus.rtstruct().save_as(seed, enforce_file_format=True)
    import random

    for n in range(20):  # a random stream whose mutation declares a lying NumberOfContourPoints of 4
        ds = read_dataset(seed.read_bytes())
        if "1000000 points (NumberOfContourPoints 4)" in million_points(ds, random.Random(n)):
            break
    else:
        pytest.fail("no lying point count in 20 streams")
    path = tmp_path / "rt.dcm"
    path.write_bytes(dataset_bytes(ds))
    assert path.stat().st_size > 10_000_000
    settings = LoaderSettings(max_contour_points=200_000)
    t0 = time.perf_counter()
    exc, peak = _peak(lambda: read_rtstruct(path, ct, settings=settings))
    seconds = time.perf_counter() - t0
    assert isinstance(exc, InputLimitError), exc
    assert "1000012 contour points exceed the limit max_contour_points=200000" in str(exc)
    assert seconds < 5.0
    assert peak < 64 * 2**20  # the 12 MB file itself, not 3 million Python floats
    # under the default limit it is read: parsed by numpy in C, rasterised onto the 8 x 8 grid
    masks = load_masks(path, ct)
    assert {m.label for m in masks} == {"GTV lesion", "lymph node 1"}
    assert np.all([m.mask.shape == ct.geometry.shape for m in masks])


def test_polygon_fill_work_is_limited_before_filling(tmp_path: Path, ct: Any) -> None:
    """Filling costs vertices x bounding-box pixels; a file over max_contour_fill_work is refused up front."""
    angles = np.linspace(0, 2 * np.pi, 1000, endpoint=False)
    circle = np.stack([2.5 * np.cos(angles), 2.5 * np.sin(angles), np.zeros_like(angles)], axis=1)
    path = tmp_path / "rt.dcm"
    corpus.rtstruct([("GTV round", [circle])]).save_as(path, enforce_file_format=True)
    [mask] = read_rtstruct(path, ct)  # 1000 vertices x 6 x 6 pixels: fine under the default limit
    assert int(mask.mask.sum()) == 21  # integer points with x^2 + y^2 < 2.5^2: 5 + 2 x 5 + 2 x 3
    with pytest.raises(
        InputLimitError,
        match=r"rt\.dcm: ROI GTV round: .*max_contour_fill_work=10000 .*a contour of 1000 points",
    ):
        read_rtstruct(path, ct, settings=LoaderSettings(max_contour_fill_work=10_000))


def test_masks_per_file_are_limited_before_they_are_built(tmp_path: Path, ct: Any) -> None:
    """A label map of noise (one value per voxel) would become 192 dense masks; the limit refuses it first."""
    noise = np.arange(1, corpus.N_SLICES * corpus.N_ROWS * corpus.N_COLUMNS + 1, dtype=np.uint16)
    path = corpus.write_labelmap(tmp_path / "noise.nii.gz", noise.reshape(corpus.N_SLICES, corpus.N_ROWS, -1))
    assert len(read_labelmap(path, ct)) == 192  # 192 masks x 192 voxels: fine by default
    small = LoaderSettings(max_mask_bytes=192 * 100)
    with pytest.raises(InputLimitError, match=r"noise\.nii\.gz: 192 label values .*max_mask_bytes=19200"):
        read_labelmap(path, ct, settings=small)
    dots = np.zeros((corpus.N_SLICES, corpus.N_ROWS, corpus.N_COLUMNS), dtype=np.uint8)
    dots[::2, ::2, ::2] = 1  # one label, 32 isolated voxels (no 26-neighbours)
    dotted = corpus.write_labelmap(tmp_path / "dots.nii.gz", dots)
    assert len(load_masks(dotted, ct, split_components=True)) == 32
    with pytest.raises(
        InputLimitError, match=r"dots\.nii\.gz: 32 connected components .*max_mask_bytes=1000"
    ):
        load_masks(dotted, ct, settings=LoaderSettings(max_mask_bytes=1000), split_components=True)
    seg = tmp_path / "seg.dcm"
    corpus._seg([corpus.ct_slice(k) for k in range(corpus.N_SLICES)], False).save_as(
        seg, enforce_file_format=True
    )
    with pytest.raises(InputLimitError, match=r"seg\.dcm: 2 segments"):
        read_seg(seg, ct, settings=LoaderSettings(max_mask_bytes=300))
    rt = tmp_path / "rt.dcm"
    corpus.rtstruct().save_as(rt, enforce_file_format=True)
    with pytest.raises(InputLimitError, match=r"rt\.dcm: 2 ROIs"):
        read_rtstruct(rt, ct, settings=LoaderSettings(max_mask_bytes=300))
    assert (
        len(read_rtstruct(rt, ct, settings=LoaderSettings(max_mask_bytes=300), roi_names=["GTV lesion"])) == 1
    )
