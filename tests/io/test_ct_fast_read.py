"""The fast paths of ``load_ct`` give pydicom's values (hpd_imaging.io._pixeldecode, io/ct.py).

* JPEG 2000 through imagecodecs on threads: same stored values as pydicom + pylibjpeg-openjpeg (today's
  decoder), including pydicom's sign correction when the codestream's signedness differs from the header's;
  a slice imagecodecs cannot decode, or decodes to another shape, goes through pydicom; a slice neither can
  decode is an error naming the file; a daemonic process (a Dask worker is one) decodes on threads.
* Uncompressed slices read straight into a reused buffer: unused high bits cleared or sign-extended as pydicom
  does, implicit VR, lengths pydicom must judge handed to pydicom.
* HU written in place: equal to pydicom's ``apply_modality_lut`` for slope 1, other integral slopes,
  fractional slopes (float32) and values beyond int16; a rescale with one attribute missing is not applied,
  as pydicom does.
* Only the header attributes the loader reads are converted: a damaged attribute it never reads does not
  refuse the series, a damaged one it reads does, naming the file.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from io_dicom_writers import write_ct_series
from pydicom.dataelem import RawDataElement
from pydicom.pixels import apply_modality_lut
from pydicom.tag import Tag
from pydicom.uid import ImplicitVRLittleEndian, JPEG2000Lossless

from hpd_imaging.errors import DicomReadError
from hpd_imaging.io import LoaderSettings, _pixeldecode, load_ct
from hpd_imaging.io._dicomread import read_dicom

pytest.importorskip("imagecodecs", reason="imagecodecs is a dependency of hpd-imaging; not installed here")

ROWS, COLS, N = 40, 36, 6
THREADS = LoaderSettings(decode_workers=2)
POSITIONS = [(0.0, 0.0, 2.0 * n) for n in range(N)]


def _pydicom_hu(files: list[Path]) -> np.ndarray:
    """The independent reference: pydicom decodes (pylibjpeg for J2K) and rescales each file, stacked."""
    slices = []
    for f in files:
        ds = pydicom.dcmread(f)
        slices.append(apply_modality_lut(ds.pixel_array, ds))
    return np.stack(slices)


def _rewrite(files: list[Path], edit: Any) -> None:
    for f in files:
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f, enforce_file_format=True)


def _twelve_bit(n: int) -> np.ndarray:
    """Signed 12-bit values (-2048..2047) that differ per voxel and slice."""
    rng = np.random.default_rng(100 + n)
    return rng.integers(-2048, 2048, size=(ROWS, COLS)).astype(np.int16)


# --------------------------------------------------------------------------------------------------
# JPEG 2000 through imagecodecs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header_signed", [1, 0], ids=["header_signed", "header_unsigned"])
def test_j2k_signedness_mismatch_corrected_as_pydicom_does(tmp_path: Path, header_signed: int) -> None:
    """Codestream signedness opposite to PixelRepresentation (BitsStored 12): pydicom re-extends the sign."""
    truth = [_twelve_bit(n) for n in range(N)]
    # encode with the opposite signedness, then declare header_signed in the header
    encoded_signed = 1 - header_signed
    stored = [t if encoded_signed else (t.astype(np.int32) & 0xFFF).astype(np.uint16) for t in truth]
    files = write_ct_series(tmp_path, POSITIONS, stored, pixel_representation=encoded_signed, intercept=0.0)

    def compress(ds: pydicom.Dataset) -> None:
        ds.BitsStored, ds.HighBit = 12, 11
        ds.compress(JPEG2000Lossless)
        ds.PixelRepresentation = header_signed

    _rewrite(files, compress)
    assert _pixeldecode.get_j2k_parameters(
        next(pydicom.encaps.generate_frames(pydicom.dcmread(files[0]).PixelData, number_of_frames=1))
    )["is_signed"] == bool(encoded_signed)
    ours = load_ct(tmp_path, THREADS)
    expected = np.stack(truth) if header_signed else (np.stack(truth).astype(np.int32) & 0xFFF)
    np.testing.assert_array_equal(_pydicom_hu(files), expected)  # the reference does what we think
    np.testing.assert_array_equal(ours.hu, expected)
    assert ours.hu.dtype == np.int16


def _j2k_series(folder: Path) -> list[Path]:
    files = write_ct_series(folder, POSITIONS, lambda n: _twelve_bit(n) + 1000)
    _rewrite(files, lambda ds: ds.compress(JPEG2000Lossless))
    return files


def test_j2k_imagecodecs_refusing_or_misshaping_falls_back_to_pydicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _j2k_series(tmp_path)
    reference = _pydicom_hu(files)
    calls = []

    def refusing(frame: bytes, **kwargs: Any) -> np.ndarray:
        calls.append("refused")
        raise RuntimeError("opj_decode failed")

    def misshaping(frame: bytes, **kwargs: Any) -> np.ndarray:
        calls.append("misshaped")
        return np.zeros((ROWS // 2, COLS), np.int16)

    for fake in (refusing, misshaping):
        monkeypatch.setattr(_pixeldecode, "_jpeg2k_decode", lambda fake=fake: fake)
        np.testing.assert_array_equal(load_ct(tmp_path, THREADS).hu, reference)
    assert calls.count("refused") == N and calls.count("misshaped") == N  # every slice went to pydicom


def test_j2k_slice_no_decoder_can_read_is_an_error_naming_it(tmp_path: Path) -> None:
    files = _j2k_series(tmp_path)
    ds = pydicom.dcmread(files[3])
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 8]])
    ds.save_as(files[3], enforce_file_format=True)
    with pytest.raises(
        DicomReadError, match=rf"{files[3].name}: cannot decode pixel data \(transfer syntax JPEG"
    ):
        load_ct(tmp_path, THREADS)


def test_j2k_plan_without_imagecodecs_is_the_process_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _j2k_series(tmp_path)
    items = [(f, read_dicom(f, stop_before_pixels=True)[0]) for f in files]
    assert _pixeldecode.plan_decode(items, 2, 2) == _pixeldecode.DecodePlan("threads", 2)
    assert _pixeldecode.plan_decode(items, 1, 2) == _pixeldecode.DecodePlan("serial")
    monkeypatch.setattr(_pixeldecode, "_jpeg2k_decode", lambda: None)
    assert _pixeldecode.plan_decode(items, 2, 2) == _pixeldecode.DecodePlan("processes", 2)
    np.testing.assert_array_equal(load_ct(tmp_path, THREADS).hu, _pydicom_hu(files))  # pydicom's own path


def _load_in_daemon(folder: str, out: Any) -> None:
    """Runs in a daemonic child: load on 2 threads, report where each slice was decoded."""
    names: set[str] = set()
    original = _pixeldecode.decode_j2k_slice

    def spy(path: Path, ds: pydicom.Dataset) -> np.ndarray:
        names.add(threading.current_thread().name)
        return original(path, ds)

    _pixeldecode.decode_j2k_slice = spy  # type: ignore[assignment]  # this child process only
    try:
        ct = load_ct(folder, THREADS)
        out.put((multiprocessing.current_process().daemon, sorted(names), ct.hu))
    except BaseException as exc:  # report, do not hang the parent
        out.put((None, [repr(exc)], None))


def test_j2k_decodes_on_threads_inside_a_daemonic_process(tmp_path: Path) -> None:
    """Dask worker processes are daemonic: no child processes, but threads; the decode must use them."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method (POSIX)")
    files = _j2k_series(tmp_path)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_load_in_daemon, args=(str(tmp_path), out), daemon=True)
    child.start()
    try:
        daemon, names, hu = out.get(timeout=120)
    except queue.Empty:
        pytest.fail("the daemonic child did not answer within 120 s")
    finally:
        child.join(timeout=30)
    assert daemon is True, names
    assert names and all(n.startswith("hpd-decode") for n in names), names  # pool threads, not MainThread
    np.testing.assert_array_equal(hu, _pydicom_hu(files))


# --------------------------------------------------------------------------------------------------
# uncompressed slices read into a reused buffer
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def native_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per slice, whether the buffer read served it (True) or handed it to pydicom (False)."""
    seen: list[bool] = []
    original = _pixeldecode.read_native_slice

    def spy(path: Path, ds: pydicom.Dataset, buffer: np.ndarray) -> np.ndarray | None:
        result = original(path, ds, buffer)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(_pixeldecode, "read_native_slice", spy)
    return seen


@pytest.mark.parametrize("signed", [1, 0], ids=["signed", "unsigned"])
def test_native_unused_high_bits_as_pydicom(tmp_path: Path, signed: int, native_reads: list[bool]) -> None:
    """BitsStored 12 with junk in the 4 unused bits: pydicom sign-extends (signed) or clears (unsigned)."""
    rng = np.random.default_rng(7)
    junk = [(rng.integers(0, 16, (ROWS, COLS)) << 12).astype(np.uint16) for _ in range(N)]
    twelve = [(_twelve_bit(n).astype(np.int32) & 0xFFF).astype(np.uint16) for n in range(N)]
    stored = [(t | j).view(np.int16) if signed else (t | j) for t, j in zip(twelve, junk, strict=True)]
    files = write_ct_series(tmp_path, POSITIONS, stored, pixel_representation=signed, intercept=-1000.0)

    def twelve_bits(ds: pydicom.Dataset) -> None:
        ds.BitsStored, ds.HighBit = 12, 11

    _rewrite(files, twelve_bits)
    ours = load_ct(tmp_path)
    truth = np.stack([_twelve_bit(n) for n in range(N)]) if signed else np.stack(twelve).astype(np.int32)
    np.testing.assert_array_equal(_pydicom_hu(files), truth - 1000)
    np.testing.assert_array_equal(ours.hu, truth - 1000)
    assert native_reads == [True] * N


def test_native_implicit_vr_read_from_the_buffer(tmp_path: Path, native_reads: list[bool]) -> None:
    files = write_ct_series(tmp_path, POSITIONS, lambda n: _twelve_bit(n) * 7)

    def implicit(ds: pydicom.Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian

    _rewrite(files, implicit)
    assert pydicom.dcmread(files[0]).original_encoding[0] is True
    np.testing.assert_array_equal(load_ct(tmp_path).hu, _pydicom_hu(files))
    assert native_reads == [True] * N


def test_native_unexpected_length_left_to_pydicom(tmp_path: Path, native_reads: list[bool]) -> None:
    """Pixel Data 2 bytes longer than Rows x Columns x 2: pydicom judges it (it reads the first frame)."""
    files = write_ct_series(tmp_path, POSITIONS, _twelve_bit)
    ds = pydicom.dcmread(files[2])
    ds.PixelData = ds.PixelData + b"\x00\x00"
    ds.save_as(files[2], enforce_file_format=True)
    np.testing.assert_array_equal(load_ct(tmp_path).hu, _pydicom_hu(files))
    assert native_reads == [True, True, False, True, True, True]


# --------------------------------------------------------------------------------------------------
# HU in place, equal to apply_modality_lut
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slope", "intercept", "dtype"),
    [(1.0, -1024.0, np.int16), (2.0, -1000.0, np.int16), (0.5, 0.25, np.float32), (1.0, 20000.0, np.float32)],
    ids=["slope1", "slope2", "fractional", "beyond_int16"],
)
def test_hu_equal_to_apply_modality_lut(tmp_path: Path, slope: float, intercept: float, dtype: type) -> None:
    """Stored values up to +-16376: with intercept 20000 the HU leave int16 and the volume widens."""
    scale = 8 if intercept == 20000.0 else 1
    files = write_ct_series(
        tmp_path, POSITIONS, lambda n: _twelve_bit(n) * scale, slope=slope, intercept=intercept
    )
    ours = load_ct(tmp_path)
    reference = _pydicom_hu(files)
    assert ours.hu.dtype == dtype
    np.testing.assert_array_equal(ours.hu, reference.astype(dtype))
    if dtype == np.float32:
        np.testing.assert_allclose(ours.hu, reference, rtol=1e-6)  # float32 of pydicom's float64


def test_rescale_with_intercept_missing_is_not_applied_as_pydicom(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path, POSITIONS, _twelve_bit, slope=1.0, intercept=-1024.0)

    def drop(ds: pydicom.Dataset) -> None:
        del ds.RescaleIntercept

    _rewrite(files, drop)
    np.testing.assert_array_equal(load_ct(tmp_path).hu, np.stack([_twelve_bit(n) for n in range(N)]))
    np.testing.assert_array_equal(load_ct(tmp_path).hu, _pydicom_hu(files))


# --------------------------------------------------------------------------------------------------
# headers: only what the loader reads is converted
# --------------------------------------------------------------------------------------------------


def _break_element(path: Path, tag: int) -> None:
    """An element of VR US with 3 value bytes: converting it raises (pydicom BytesLengthException)."""
    ds = pydicom.dcmread(path)
    ds[tag] = RawDataElement(Tag(tag), "US", 3, b"\x01\x02\x03", 0, False, True)
    ds.save_as(path, enforce_file_format=True)


def test_damaged_attribute_the_loader_never_reads_does_not_refuse(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path, POSITIONS, _twelve_bit)
    number_of_slices = 0x00540081  # (0054,0081) NumberOfSlices, US: not read by the CT loader
    _break_element(files[1], number_of_slices)
    with pytest.raises(DicomReadError, match=rf"{files[1].name}: cannot read as DICOM"):
        read_dicom(files[1])  # converting everything: the element really is damaged
    ct = load_ct(tmp_path)
    np.testing.assert_array_equal(ct.hu, np.stack([_twelve_bit(n) for n in range(N)]) - 1024)


def test_damaged_attribute_the_loader_reads_refuses_naming_the_file(tmp_path: Path) -> None:
    files = write_ct_series(tmp_path, POSITIONS, _twelve_bit)
    _break_element(files[4], 0x00280002)  # (0028,0002) SamplesPerPixel
    with pytest.raises(DicomReadError, match=rf"{files[4].name}: cannot read as a DICOM image header"):
        load_ct(tmp_path)
