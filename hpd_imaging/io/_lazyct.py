"""A CT series whose slices are decoded when first asked for (issue 21), and the cheap load-time checks of
its stored pixel data.

Why: in a longitudinal run most decoded voxels were never read. With declared lesion identity a follow-up
exam's voxels feed only one snapshot slice per lesion, and radiomics reads only a crop around each baseline
lesion; decoding JPEG 2000 was the largest part of a patient's load (benchmarks/README.md). The loader
(:func:`hpd_imaging.io.ct.load_ct` with ``lazy=True``) still reads and checks every header and the stack
geometry at load time; :class:`LazySeriesVoxels` then holds the checked headers and decodes slices through the
same code as the eager path (:func:`hpd_imaging.io._hu.decode_slices`), so
values, types and error messages are those of an eager load.

What is still found at load time without decoding (:func:`check_stored_pixels`): a slice whose file ends
inside its pixel data (uncompressed: :func:`hpd_imaging.io._limits.check_dicom_pixel_size`; encapsulated: the
fragment items are walked to the sequence delimiter), and, for JPEG 2000, a codestream without its SOC / SIZ
markers or whose SIZ size, components or precision disagree with Rows / Columns / SamplesPerPixel /
BitsAllocated. A slice that fails only when decoded raises :class:`~hpd_imaging.errors.DicomReadError` naming
the file in the stage that asked for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from hpd_imaging.errors import DicomReadError
from hpd_imaging.io._hu import decode_slices
from hpd_imaging.io._pixeldecode import is_compressed, is_j2k

log = logging.getLogger(__name__)

_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_PIXEL_DATA = (0x7FE0, 0x0010)
_MAX_FRAGMENTS = 100_000  # a single-frame image in more fragments than this is refused as corrupt
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "


def _u16(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 2], "big")


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "big")


def check_stored_pixels(path: Path, ds: Dataset) -> None:
    """Cheap load-time check of one compressed slice's stored pixel data (no decoding).

    Walks the encapsulated Pixel Data (always explicit VR little endian, PS3.5 A.4): every item must lie
    inside the file and the sequence delimiter must follow; for JPEG 2000 the first fragment must start with
    the SOC and SIZ markers (ISO 15444-1 A.5.1) whose image size, component count and precision fit the
    header. Raises :class:`DicomReadError` naming the file; returns quietly for uncompressed data (checked
    from its length by ``check_dicom_pixel_size``) or when the header pass did not record where Pixel Data
    starts.
    """
    offset = getattr(ds, "_hpd_pixel_offset", None)
    if offset is None or not is_compressed(ds):
        return
    where = str(path)
    size = os.path.getsize(path)

    def truncated(detail: str) -> DicomReadError:
        return DicomReadError(
            f"{where}: encapsulated pixel data truncated: {detail}; expected the items to end with a "
            f"sequence delimiter inside the file's {size} bytes (truncated or corrupt file)",
            path=where,
        )

    with open(path, "rb") as fp:
        fp.seek(offset)
        head = fp.read(12)
        if len(head) < 12:
            raise truncated(f"the file ends {size - offset} bytes after the Pixel Data element starts")
        if (int.from_bytes(head[0:2], "little"), int.from_bytes(head[2:4], "little")) != _PIXEL_DATA:
            return  # not where we expected it: the decoder reads the file its own way and reports problems
        pos = offset + 12
        first_fragment = True
        for n in range(_MAX_FRAGMENTS + 2):
            fp.seek(pos)
            item = fp.read(8)
            if len(item) < 8:
                raise truncated(f"item {n} header at byte {pos} is cut off")
            tag = (int.from_bytes(item[0:2], "little"), int.from_bytes(item[2:4], "little"))
            length = int.from_bytes(item[4:8], "little")
            if tag == _SEQUENCE_DELIMITER:
                return
            if tag != _ITEM:
                raise DicomReadError(
                    f"{where}: encapsulated pixel data: expected an item or sequence delimiter tag at byte "
                    f"{pos}, got ({tag[0]:04X},{tag[1]:04X}) (corrupt file)",
                    path=where,
                )
            if pos + 8 + length > size:
                raise truncated(
                    f"item {n} declares {length} bytes at byte {pos + 8}, the file ends "
                    f"{size - pos - 8} bytes later"
                )
            if n > 0 and first_fragment and length:
                first_fragment = False
                if is_j2k(ds):
                    fp.seek(pos + 8)
                    _check_j2k_siz(fp.read(min(length, 64)), ds, where)
            pos += 8 + length
    raise DicomReadError(f"{where}: encapsulated pixel data: more than {_MAX_FRAGMENTS} items", path=where)


def _check_j2k_siz(code: bytes, ds: Dataset, where: str) -> None:
    """SOC + SIZ of a JPEG 2000 codestream against the image header (Rows, Columns, samples, bits)."""
    if code.startswith(_JP2_SIGNATURE):
        return  # a JP2 file instead of a codestream (not conformant, but pydicom decodes it): left to it
    if len(code) < 43 or not code.startswith(_J2K_SOC_SIZ):
        raise DicomReadError(
            f"{where}: JPEG 2000 pixel data: expected a codestream starting with the SOC and SIZ markers "
            f"(FF4F FF51), got {code[:4].hex(' ').upper() or 'nothing'}",
            path=where,
        )
    width, height = _u32(code, 8) - _u32(code, 16), _u32(code, 12) - _u32(code, 20)
    components = _u16(code, 40)
    precision = (code[42] & 0x7F) + 1
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.get("BitsAllocated", 16) or 16)
    if (height, width) != (rows, columns) or components != samples or precision > bits:
        raise DicomReadError(
            f"{where}: JPEG 2000 codestream SIZ: expected {rows} rows x {columns} columns, {samples} "
            f"component(s) of at most {bits} bits (the DICOM header), got {height} x {width}, {components} "
            f"component(s) of {precision} bits",
            path=where,
        )


class LazySeriesVoxels:
    """The HU slices of one checked single-frame series, decoded on demand and kept once decoded.

    Implements :class:`hpd_imaging.domain.VoxelSource`. ``items`` are the (path, header) pairs in stack order
    (the header pass's datasets, with where Pixel Data starts), ``rescales`` their (slope, intercept).
    Decoded slices live in one array of the whole shape allocated with ``np.empty``: the operating system
    commits a page only when it is first written, so undecoded slices cost address space, not memory, and
    :meth:`whole` returns that array itself (no copy). If a decoded slice leaves the int16 range the array is
    widened to float32 as the eager loader widens its volume (from then on every slice is held). The one
    difference from an eager load: slices read before that (or when the out-of-range slice is never read)
    come as int16 where the eager volume would be float32 (same HU values; pyradiomics resamples an int16
    image to int16). HU beyond +-32767 are not CT values (they come from damaged or mis-rescaled data).

    Thread-safe: one lock per series; a thread asking for slices another thread is decoding waits and then
    finds them decoded (each slice is decoded once, however many threads ask).
    """

    def __init__(
        self,
        items: Sequence[tuple[Path, Dataset]],
        rescales: Sequence[tuple[float, float]],
        dtype: np.dtype,
        rows_columns: tuple[int, int],
        *,
        workers: int | None,
        parallel_min_slices: int,
        identity: str,
        label: str,
    ) -> None:
        self._items = list(items)
        self._rescales = list(rescales)
        self._rows_columns = rows_columns
        self._workers = workers
        self._min_slices = parallel_min_slices
        self._identity = identity
        self._label = label
        self._array = np.empty((len(self._items), *rows_columns), dtype=dtype)
        self._done = np.zeros(len(self._items), dtype=bool)
        self._all_resident = False  # True once widened (astype touches every page)
        self._lock = threading.Lock()
        self._digest: str | None = None
        #: slices decoded so far, counted once each (for tests and logs)
        self.n_decoded = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._array.shape  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def decoded_nbytes(self) -> int:
        if self._all_resident:
            return int(self._array.nbytes)
        return int(np.count_nonzero(self._done)) * int(self._array[0].nbytes) if len(self._done) else 0

    def slab(self, k0: int, k1: int) -> np.ndarray:
        n = len(self._items)
        if not (0 <= k0 <= k1 <= n):
            raise IndexError(f"{self._label}: expected slices within 0:{n}, got {k0}:{k1}")
        with self._lock:
            self._decode([k for k in range(k0, k1) if not self._done[k]])
            return self._array[k0:k1]

    def whole(self) -> np.ndarray:
        return self.slab(0, len(self._items))

    def _decode(self, missing: list[int]) -> None:
        """Decode ``missing`` slices into the array (caller holds the lock); a failing slice raises
        :class:`DicomReadError` naming its file, the slices before it stay decoded."""
        if not missing:
            return

        def stored(k: int, hu: np.ndarray) -> None:
            self._all_resident |= hu.dtype != self._array.dtype  # widened: astype touched every page
            self._array = hu
            self._done[k] = True
            self.n_decoded += 1

        decode_slices(
            self._array,
            missing,
            self._items,
            self._rescales,
            self._rows_columns,
            workers=self._workers,
            min_slices=self._min_slices,
            label=self._label,
            on_slice=stored,
            logger=log,
        )

    def input_sha256(self) -> str:
        """sha256 of what identifies this image without decoding it: the grid, HU type and per-slice rescale
        (``identity``, from the loader), then, per slice in stack order, its transfer syntax and the bytes of
        its file from the Pixel Data element to the end (the stored pixel data, compressed or not).

        Deterministic for the same files; a change to any stored pixel byte, rescale or grid changes it. Two
        encodings of the same voxels (e.g. uncompressed and JPEG 2000 lossless) give different digests.
        """
        with self._lock:
            if self._digest is None:
                h = hashlib.sha256(self._identity.encode())
                for path, ds in self._items:
                    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
                    h.update(json.dumps([syntax, getattr(ds, "_hpd_pixel_offset", None) is None]).encode())
                    with open(path, "rb") as fp:
                        fp.seek(getattr(ds, "_hpd_pixel_offset", None) or 0)
                        while chunk := fp.read(1 << 20):
                            h.update(chunk)
                self._digest = h.hexdigest()
            return self._digest


def identity_text(
    shape: Sequence[int],
    spacing_mm: Sequence[float],
    origin_mm: Sequence[float],
    direction: Sequence[float],
    dtype: np.dtype,
    rescales: Sequence[tuple[float, float]],
) -> str:
    """The header part of :meth:`LazySeriesVoxels.input_sha256` (JSON, stable key order)."""
    return json.dumps(
        {
            "shape": list(shape),
            "spacing_mm": list(spacing_mm),
            "origin_mm": list(origin_mm),
            "direction": list(direction),
            "dtype": str(dtype),
            "rescales": [list(r) for r in rescales],
        },
        sort_keys=True,
    )
