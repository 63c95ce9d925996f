"""Decode the pixel data of a single-frame series, in order, serially or on a pool of worker processes.

Why processes and not threads: pylibjpeg-openjpeg 2.6 (JPEG 2000) holds the GIL for the whole decode (its
Cython ``Decode`` reads the codestream through Python file callbacks, no ``nogil`` section), and exposes no
thread-count option of its own (``opj_codec_set_threads`` is linked in but not reachable from Python).
Measured on the 512x512 JPEG 2000 benchmark slices: 47 ms/slice serial, 49 ms/slice on 2 threads, i.e.
threads gain nothing. pydicom's RLE decoder and pylibjpeg-libjpeg are Python/GIL-bound as well. So
compressed series of at least ``LoaderSettings.parallel_decode_min_slices`` slices are decoded on a
process pool (``LoaderSettings.decode_workers``, default: the usable cores).

Memory stays bounded: at most ``2 x workers`` decoded slices are in flight; the caller writes each one into
its preallocated volume as it arrives, in slice order. Workers receive the file path, where Pixel Data
starts, and the pixel-module attributes only (not the whole header), and return the stored values; the
modality LUT, dtype widening and every check stay in the caller, so values and error messages are those
of the serial path. The pool is created once per process (fork start, see :func:`_get_pool`) and reused by
later loads; it is never created inside a daemonic process (e.g. a Dask worker), where
child processes are not allowed: those decode serially.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.pixels import pixel_array as decode_pixels

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


def decode_slice(path: Path, ds: Dataset) -> np.ndarray:
    """Decode one single-frame image without parsing its header a second time.

    Why: re-reading every file with ``pixel_array(path)`` parses all header elements again, which doubled the
    load time of series with long private sequences. The header pass recorded where Pixel Data starts; here
    pydicom reads just that element, decodes it with the header's attributes, and drops it again.
    """
    offset = getattr(ds, "_hpd_pixel_offset", None)  # set by ct._read_headers
    if offset is None:
        return decode_pixels(path)
    with BoundedReader(path) as fp:  # a corrupt length must not allocate gigabytes
        fp.seek(offset)
        pixel_ds = read_dataset(fp, *ds.original_encoding)
    if "PixelData" not in pixel_ds:
        return decode_pixels(path)
    ds.update(pixel_ds)
    try:
        return decode_pixels(ds)
    finally:
        del ds.PixelData


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


def iter_stored(items: Sequence[tuple[Path, Dataset]], workers: int) -> Generator[np.ndarray, None, None]:
    """Stored pixel values of every item, in order.

    A failed slice raises its decoder's exception (serial) or :class:`SliceDecodeError` with the same message
    (pool) when its turn comes; the caller wraps it with the file name.
    """
    if workers <= 1:
        for path, ds in items:
            yield decode_slice(path, ds)
        return
    pool = _get_pool(workers)
    window = 2 * workers  # decoded slices in flight: bounded memory
    pending: deque[Future[np.ndarray | _Failure]] = deque()
    tasks = iter(items)
    try:
        for path, ds in tasks:
            pending.append(pool.submit(_decode_task, _task(path, ds)))
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
                try:
                    pending.append(pool.submit(_decode_task, _task(*next_item)))
                except BrokenProcessPool as exc:
                    _drop_pool()
                    raise SliceDecodeError(f"a decoder process ended abruptly ({exc})") from exc
            if isinstance(result, _Failure):
                raise SliceDecodeError(result.message)
            yield result
    finally:
        for future in pending:
            future.cancel()
