"""Decode the pixel data of a single-frame series, in order: serially, on threads, or on worker processes.

Three paths, chosen per series by :func:`plan_decode` (measured in benchmarks/ct_load.py):

* **JPEG 2000 (and HTJ2K) on a thread pool through imagecodecs.** imagecodecs' OpenJPEG binding releases
  the GIL while it decodes, so threads decode in parallel, and threads (unlike processes) may be started
  inside daemonic processes such as Dask workers. pylibjpeg-openjpeg 2.6 (pydicom's plugin) holds the GIL
  for the whole decode (47 ms/slice serial, 49 ms/slice on 2 threads), which is why the process pool below
  exists. The stored values are the ones pydicom returns: the codestream is decoded as is and then given
  pydicom's own J2K sign correction (:func:`_j2k_stored`); a codestream imagecodecs refuses, or whose
  decoded shape or sample size is not the header's, goes through pydicom instead (today's decoder), and a
  file neither can decode raises its decoder's error, which the caller turns into one naming the file.
* **Other compressed syntaxes (RLE, JPEG lossless, JPEG-LS) on a process pool** (pydicom's decoders hold
  the GIL), for series of at least ``LoaderSettings.parallel_decode_min_slices`` slices; never inside a
  daemonic process, where children are not allowed: those decode serially.
* **Uncompressed slices are read in this thread, straight from the file** (:func:`read_native_slice`): the
  header pass recorded where Pixel Data starts, so one ``readinto`` fills a reused one-slice buffer; no
  second header parse, no per-slice array allocation (see benchmarks/README.md for the measurements).

Memory stays bounded: at most ``2 x workers`` decoded slices are in flight; the caller writes each one into
its preallocated volume as it arrives, in slice order. Process workers receive the file path, where Pixel
Data starts, and the pixel-module attributes only (not the whole header), and return the stored values; the
modality LUT, dtype widening and every check stay in the caller, so values and error messages do not depend
on the path. The process pool is created once per process (fork start, see :func:`_get_pool`) and reused.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.pixels.utils import get_j2k_parameters
from pydicom.uid import JPEG2000TransferSyntaxes

from hpd_imaging.io._dicomread import BoundedReader

log = logging.getLogger(__name__)

# what a pixel decoder reads from the header (pydicom.pixels' decoders), besides the transfer syntax
_PIXEL_KEYWORDS = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
)


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity / cgroup cpusets), not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def _read_pixel_element(path: Path, ds: Dataset) -> Dataset | None:
    """The Pixel Data element of ``path`` alone, read from where the header pass stopped (None: unknown)."""
    offset = getattr(ds, "_hpd_pixel_offset", None)  # set by ct._read_headers
    if offset is None:
        return None
    with BoundedReader(path) as fp:  # a corrupt length must not allocate gigabytes
        fp.seek(offset)
        pixel_ds = read_dataset(fp, *ds.original_encoding)
    return pixel_ds if "PixelData" in pixel_ds else None


def decode_slice(path: Path, ds: Dataset) -> np.ndarray:
    """Decode one single-frame image with pydicom without parsing its header a second time.

    Why: re-reading every file with ``pixel_array(path)`` parses all header elements again, which doubled the
    load time of series with long private sequences. The header pass recorded where Pixel Data starts; here
    pydicom reads just that element, decodes it with the header's attributes, and drops it again.
    """
    pixel_ds = _read_pixel_element(path, ds)
    if pixel_ds is None:
        return decode_pixels(path)
    ds.update(pixel_ds)
    try:
        return decode_pixels(ds)
    finally:
        del ds.PixelData


# --------------------------------------------------------------------------------------------------
# JPEG 2000 through imagecodecs (releases the GIL)
# --------------------------------------------------------------------------------------------------

_J2K_SYNTAXES = frozenset(str(uid) for uid in JPEG2000TransferSyntaxes)  # incl. HTJ2K (OpenJPEG >= 2.5)
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


@cache
def _jpeg2k_decode() -> Callable[..., np.ndarray] | None:
    """imagecodecs' JPEG 2000 decoder, or None when imagecodecs (or its OpenJPEG codec) is not installed."""
    try:
        import imagecodecs
    except ImportError:
        return None
    if not imagecodecs.JPEG2K.available:
        return None
    return imagecodecs.jpeg2k_decode  # type: ignore[no-any-return]


def _syntax(ds: Dataset) -> str:
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")


def is_j2k(ds: Dataset) -> bool:
    return _syntax(ds) in _J2K_SYNTAXES


def _pixel_dtype(ds: Dataset) -> np.dtype | None:
    """The stored sample type pydicom gives this slice (16-bit monochrome only), or None."""
    if (
        int(ds.get("BitsAllocated", 0) or 0) != 16
        or int(ds.get("SamplesPerPixel", 1) or 1) != 1
        or int(ds.get("NumberOfFrames", 1) or 1) != 1
        or str(ds.get("PhotometricInterpretation", "")).strip() not in _MONOCHROME
        or not 1 <= int(ds.get("BitsStored", 0) or 0) <= 16
        or ds.get("PixelRepresentation") not in (0, 1)
    ):
        return None
    return np.dtype("int16" if ds.PixelRepresentation == 1 else "uint16")


def _j2k_stored(decoded: Any, frame: bytes, ds: Dataset) -> np.ndarray | None:
    """imagecodecs' output as pydicom's stored values, or None when it is not what the header says.

    pydicom reads the decoder's bytes as the header's sample type (``PixelRepresentation``, 16 bits), then,
    when the codestream's signedness differs from the header's, re-extends the sign from the codestream's
    precision (pydicom.pixels.decoders.base._apply_sign_correction; some encoders write signed CT as
    unsigned). The same steps on the same bits give the same values.
    """
    dtype = _pixel_dtype(ds)
    if (
        dtype is None
        or not isinstance(decoded, np.ndarray)
        or decoded.shape != (int(ds.Rows), int(ds.Columns))
        or decoded.dtype.kind not in "iu"
        or decoded.dtype.itemsize != 2
    ):
        return None
    stored = decoded.view(dtype)
    info = get_j2k_parameters(frame)
    signed = info.get("is_signed", ds.PixelRepresentation)
    precision = info.get("precision", int(ds.BitsStored))
    shift = 16 - precision
    if shift > 0 and signed != ds.PixelRepresentation:
        np.left_shift(stored, shift, out=stored)
        np.right_shift(stored, shift, out=stored)
    return stored


def decode_j2k_slice(path: Path, ds: Dataset) -> np.ndarray:
    """Decode one JPEG 2000 slice with imagecodecs (GIL released), else with pydicom (today's decoder).

    The fallback covers what imagecodecs cannot do or what this function does not map to pydicom's values
    (colour, 8-bit, multi-frame, a codestream OpenJPEG through imagecodecs refuses): those go through
    :func:`decode_slice`, whose errors the caller reports with the file name.
    """
    decode = _jpeg2k_decode()
    pixel_ds = _read_pixel_element(path, ds) if decode is not None else None
    if decode is None or pixel_ds is None or _pixel_dtype(ds) is None:
        return decode_slice(path, ds)
    try:
        frame = next(generate_frames(pixel_ds.PixelData, number_of_frames=1))
        stored = _j2k_stored(decode(frame, numthreads=1), frame, ds)
    except Exception as exc:  # imagecodecs raises its own error types; pydicom decides and names the file
        log.debug("%s: imagecodecs could not decode (%s); trying pydicom", path, exc)
        stored = None
    return decode_slice(path, ds) if stored is None else stored


# --------------------------------------------------------------------------------------------------
# uncompressed slices, read straight into a reused buffer
# --------------------------------------------------------------------------------------------------

_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_NATIVE_LE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})  # implicit / explicit VR little endian


def native_layout(ds: Dataset) -> tuple[np.dtype, int] | None:
    """(stored type, pixel count) when :func:`read_native_slice` can read this slice; None: use pydicom."""
    if _syntax(ds) not in _NATIVE_LE or getattr(ds, "_hpd_pixel_offset", None) is None:
        return None
    dtype = _pixel_dtype(ds)
    if dtype is None:
        return None
    return dtype, int(ds.Rows) * int(ds.Columns)


def read_native_slice(path: Path, ds: Dataset, buffer: np.ndarray) -> np.ndarray | None:
    """The stored values of an uncompressed 16-bit slice, read into ``buffer``; None if pydicom must decide.

    Why by hand: pydicom's pixel path parses the element again, validates, and returns a new array per
    slice; here one ``readinto`` fills a buffer the caller reuses. It reads only the layout pydicom reads the
    same way (little endian, 16 bits allocated, one sample, one frame, a Pixel Data element of exactly
    Rows x Columns x 2 bytes); anything else (odd lengths, other tags, short files) returns None so that
    pydicom decodes it and warns or raises as it always did. Bits above BitsStored are cleared or
    sign-extended as pydicom's ``correct_unused_bits`` does.
    """
    offset = int(ds._hpd_pixel_offset)
    implicit = bool(ds.original_encoding[0])
    with open(path, "rb", buffering=0) as fp:
        fp.seek(offset)
        head = fp.read(8 if implicit else 12)
        if head[:4] != _PIXEL_DATA_TAG:
            return None
        if implicit and len(head) == 8:
            length = int.from_bytes(head[4:8], "little")
        elif not implicit and len(head) == 12 and head[4:6] in (b"OW", b"OB"):
            length = int.from_bytes(head[8:12], "little")
        else:
            return None
        if length != buffer.nbytes or fp.readinto(buffer.data) != buffer.nbytes:
            return None
    stored = buffer.reshape(int(ds.Rows), int(ds.Columns))
    shift = 16 - int(ds.BitsStored)
    if shift:
        np.left_shift(stored, shift, out=stored)
        np.right_shift(stored, shift, out=stored)
    return stored


def is_compressed(ds: Dataset) -> bool:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    # a UID that is not a transfer syntax raises a bare ValueError on .is_compressed; read_dicom refuses such
    # files with the file's name first, this only keeps a dataset from elsewhere from raising here
    return bool(syntax is not None and getattr(syntax, "is_transfer_syntax", False) and syntax.is_compressed)


# --------------------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    path: str
    header: Dataset  # pixel-module attributes + file_meta (TransferSyntaxUID) only
    offset: int | None
    encoding: tuple[bool, bool]  # (implicit VR, little endian) of the dataset


@dataclass(frozen=True)
class _Failure:
    """A decoder exception, as text: plugin exceptions need not be picklable."""

    type_name: str
    message: str


class SliceDecodeError(Exception):
    """A worker's decoder exception; ``str()`` is the original exception's message."""


def _pixel_header(ds: Dataset) -> Dataset:
    mini = Dataset()
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            setattr(mini, keyword, ds[keyword].value)
    meta = FileMetaDataset()
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None:
        meta.TransferSyntaxUID = syntax
    mini.file_meta = meta
    return mini


def _task(path: Path, ds: Dataset) -> _Task:
    implicit, little = ds.original_encoding
    return _Task(
        path=str(path),
        header=_pixel_header(ds),
        offset=getattr(ds, "_hpd_pixel_offset", None),
        encoding=(bool(implicit), bool(little)),
    )


def _decode_task(task: _Task) -> np.ndarray | _Failure:
    """Runs in a worker process: the same :func:`decode_slice` as the serial path."""
    ds = task.header
    ds.set_original_encoding(task.encoding[0], task.encoding[1], None)
    if task.offset is not None:
        ds._hpd_pixel_offset = task.offset
    try:
        return decode_slice(Path(task.path), ds)
    except Exception as exc:  # decoder plugins raise many types; the caller names the file
        return _Failure(type(exc).__name__, str(exc))


# --------------------------------------------------------------------------------------------------
# pool (one per process, reused)
# --------------------------------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            # fork: spawn/forkserver re-import the caller's __main__, which breaks every user script without
            # an ``if __name__ == "__main__"`` guard. The children only decode (no locks of the parent's
            # other threads are taken: no logging, no BLAS), so forking a threaded parent is safe here.
            ctx = multiprocessing.get_context("fork")
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            _pool_workers = workers
            log.debug("started a pool of %d decode worker processes", workers)
        return _pool


def _drop_pool() -> None:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool, _pool_workers = None, 0


atexit.register(_drop_pool)


def decode_workers(n_slices: int, compressed: bool, workers: int | None, min_slices: int) -> int:
    """How many processes decode this series: 1 (serial, in this process) unless parallel decoding pays."""
    wanted = usable_cores() if workers is None else workers
    wanted = min(wanted, n_slices)
    if wanted <= 1 or not compressed or n_slices < min_slices:
        return 1
    if multiprocessing.current_process().daemon:  # e.g. a Dask worker: no children allowed
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():  # Windows: decode serially
        return 1
    return wanted


DecodeMode = Literal["serial", "threads", "processes"]


@dataclass(frozen=True)
class DecodePlan:
    """How a series is decoded: ``mode`` with ``workers`` threads or processes (1 for serial)."""

    mode: DecodeMode
    workers: int = 1

    def describe(self) -> str:
        return "serially" if self.mode == "serial" else f"on {self.workers} {self.mode}"


def plan_decode(items: Sequence[tuple[Path, Dataset]], workers: int | None, min_slices: int) -> DecodePlan:
    """Threads for JPEG 2000 when imagecodecs is there (GIL released, allowed in daemonic processes and from
    2 slices on: a thread starts in microseconds); processes for the other compressed syntaxes (see
    :func:`decode_workers`); serial otherwise (uncompressed reads are copies, a pool would not pay)."""
    wanted = min(usable_cores() if workers is None else workers, len(items))
    if wanted > 1 and _jpeg2k_decode() is not None and all(is_j2k(ds) for _, ds in items):
        return DecodePlan("threads", wanted)
    n = decode_workers(len(items), any(is_compressed(ds) for _, ds in items), workers, min_slices)
    return DecodePlan("processes", n) if n > 1 else DecodePlan("serial")


def _decode_one(path: Path, ds: Dataset) -> np.ndarray:
    """One slice on the serial or thread path: imagecodecs for JPEG 2000, pydicom for the rest."""
    return decode_j2k_slice(path, ds) if is_j2k(ds) else decode_slice(path, ds)


def iter_stored(
    items: Sequence[tuple[Path, Dataset]], plan: DecodePlan | int
) -> Generator[np.ndarray, None, None]:
    """Stored pixel values of every item, in order.

    A failed slice raises its decoder's exception (serial, threads) or :class:`SliceDecodeError` with the
    same message (processes) when its turn comes; the caller wraps it with the file name. On the serial path
    uncompressed slices share one buffer: each yielded array is valid until the next one is asked for (the
    caller copies it into its volume first).
    """
    if isinstance(plan, int):
        plan = DecodePlan("processes", plan) if plan > 1 else DecodePlan("serial")
    if plan.mode == "serial":
        yield from _iter_serial(items)
    elif plan.mode == "threads":
        with ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="hpd-decode") as threads:
            yield from _iter_pool(threads, plan.workers, items, _decode_one, lambda path, ds: (path, ds))
    else:
        yield from _iter_pool(_get_pool(plan.workers), plan.workers, items, _decode_task, _task_args)


def _iter_serial(items: Sequence[tuple[Path, Dataset]]) -> Generator[np.ndarray, None, None]:
    buffers: dict[tuple[np.dtype, int], np.ndarray] = {}  # one slice of scratch per layout (one in practice)
    for path, ds in items:
        layout = native_layout(ds)
        stored = None
        if layout is not None:
            buffer = buffers.get(layout)
            if buffer is None:
                buffer = buffers.setdefault(layout, np.empty(layout[1], dtype=layout[0]))
            stored = read_native_slice(path, ds, buffer)
        yield _decode_one(path, ds) if stored is None else stored


def _task_args(path: Path, ds: Dataset) -> tuple[_Task]:
    return (_task(path, ds),)


def _iter_pool(
    pool: Executor,
    workers: int,
    items: Sequence[tuple[Path, Dataset]],
    work: Callable[..., np.ndarray | _Failure],
    args: Callable[[Path, Dataset], tuple[Any, ...]],
) -> Generator[np.ndarray, None, None]:
    window = 2 * workers  # decoded slices in flight: bounded memory
    pending: deque[Future[np.ndarray | _Failure]] = deque()
    tasks = iter(items)

    def submit(path: Path, ds: Dataset) -> None:
        try:
            pending.append(pool.submit(work, *args(path, ds)))
        except BrokenProcessPool as exc:
            _drop_pool()
            raise SliceDecodeError(f"a decoder process ended abruptly ({exc})") from exc

    try:
        for path, ds in tasks:
            submit(path, ds)
            if len(pending) >= window:
                break
        while pending:
            future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                _drop_pool()
                raise SliceDecodeError(f"a decoder process ended abruptly ({exc})") from exc
            next_item = next(tasks, None)
            if next_item is not None:
                submit(*next_item)
            if isinstance(result, _Failure):
                raise SliceDecodeError(result.message)
            yield result
    finally:
        for future in pending:
            future.cancel()
