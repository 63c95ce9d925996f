"""Read DICOM headers defensively: bounded reads, every element converted inside one ``try``.

Two failure modes of damaged or hostile files that a plain ``pydicom.dcmread`` lets through:

* an element length field of, say, 0xFFFFFFF0 makes the file object allocate that many bytes *before*
  finding out that the file is short (CPython's ``read(n)`` allocates ``n``). :class:`BoundedReader` caps
  every read at the bytes left in the file, so a lying length costs nothing;
* pydicom converts element values lazily, so a damaged VR or value raises (``NotImplementedError``,
  ``ValueError``, ``struct.error`` ...) wherever the loader happens to touch it first. :func:`read_dicom`
  converts every element (into sequences) at once and turns any failure into one :class:`DicomReadError`
  that names the file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from hpd_imaging.errors import DicomReadError

_CLAMP_FROM = 1 << 16  # reads smaller than this are never clamped (no need for the extra tell())


class BoundedReader(io.BufferedReader):
    """A buffered file whose ``read(n)`` never asks for more than the bytes left in the file."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(io.FileIO(os.fspath(path), "rb"))
        self._size = os.fstat(self.fileno()).st_size

    def read(self, size: int | None = -1, /) -> bytes:
        if size is not None and size > _CLAMP_FROM:
            size = max(0, min(size, self._size - self.tell()))
        return super().read(size)


def convert_all(ds: Dataset, skip_tags: frozenset[int] | set[int] = frozenset()) -> None:
    """Convert every standard element (recursively) so that broken values raise here, not later.

    Private elements (odd groups, often large vendor blocks) are left raw: no loader reads them. ``skip_tags``
    stay raw (e.g. ContourData, whose millions of values the caller parses itself).
    """
    for tag in list(ds.keys()):
        if tag in skip_tags or tag.is_private:  # private elements are never read by the loaders
            continue
        elem = ds[tag]  # item access converts the raw element
        if elem.VR == "SQ" and elem.value is not None:
            for item in elem.value:
                if isinstance(item, Dataset):
                    convert_all(item, skip_tags)


def convert_tags(ds: Dataset, tags: Collection[int]) -> None:
    """Convert only ``tags`` (top level; their sequences completely), so that they raise here if broken."""
    for tag in tags:
        if tag in ds:
            elem = ds[tag]
            if elem.VR == "SQ" and elem.value is not None:
                for item in elem.value:
                    if isinstance(item, Dataset):
                        convert_all(item)


def read_dicom(
    path: Path | str,
    *,
    stop_before_pixels: bool = False,
    what: str = "DICOM",
    force: bool = False,
    skip_tags: frozenset[int] | set[int] = frozenset(),
    only_tags: Collection[int] | None = None,
) -> tuple[Dataset, int]:
    """Read and fully convert a DICOM file; returns the dataset and the offset where reading stopped.

    Raises :class:`DicomReadError` naming the file for anything pydicom cannot parse. ``InvalidDicomError``
    (not DICOM at all) is re-raised as is, so that callers may skip non-DICOM files. ``only_tags``: convert
    just these elements (and the file meta), for a caller that reads nothing else from the dataset: the
    other elements stay raw and are never looked at, so a damaged one cannot raise later either (converting
    every element was 40 % of the CT loader's header time, benchmarks/README.md).
    """
    where = str(path)
    try:
        fp = BoundedReader(path)
    except OSError as exc:
        raise DicomReadError(f"{where}: cannot open: {exc}", path=where) from exc
    try:
        with fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=force)
            offset = fp.tell()
            if only_tags is None:
                convert_all(ds, skip_tags)
            else:
                convert_tags(ds, only_tags)
            if getattr(ds, "file_meta", None) is not None:
                convert_all(ds.file_meta)
    except InvalidDicomError:
        raise
    except Exception as exc:  # pydicom raises many types on damaged files (struct, value, recursion, VR)
        raise DicomReadError(
            f"{where}: cannot read as {what}: expected a well-formed DICOM file, got "
            f"{type(exc).__name__}: {exc}".rstrip(": "),
            path=where,
        ) from exc
    if stop_before_pixels or "PixelData" in ds:
        check_transfer_syntax(ds, where)
    return ds, offset


def check_transfer_syntax(ds: Dataset, where: str) -> None:
    """Refuse a file whose (0002,0010) TransferSyntaxUID is a UID but not a transfer syntax.

    Why: pydicom reads the header of such a file (guessing its encoding) and only raises a bare
    ``ValueError("UID is not a transfer syntax.")`` when a property like ``is_compressed`` is first asked,
    naming neither the file nor the value. Only files whose pixel data will be decoded are checked (the
    callers that stop before the pixels, or a dataset holding PixelData): the transfer syntax says how to
    decode them. An absent or empty value is left to the decoder, which reports it with the file's name.
    """
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    if not value:
        return
    uid = UID(str(value))
    if not uid.is_transfer_syntax:
        shown = str(value) if len(str(value)) <= 80 else f"{str(value)[:80]}... ({len(str(value))} chars)"
        raise DicomReadError(
            f"{where}: TransferSyntaxUID (0002,0010): expected a DICOM transfer syntax UID (e.g. "
            f"1.2.840.10008.1.2.1 Explicit VR Little Endian), got {shown!r}, which is not a transfer syntax: "
            "the pixel data cannot be decoded (re-export the file from its source)",
            path=where,
        )


def raw_ds_bytes(ds: Dataset, tag: int) -> bytes | None:
    """The stored bytes of a (long) DS attribute without pydicom's per-value conversion, or None.

    Why: pydicom turns every value into a DSfloat object (~100 bytes each); ContourData of a million points
    would cost hundreds of MB and seconds before any limit could be checked.
    """
    if tag not in ds:
        return None
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement):
        return bytes(elem.value or b"")
    value = ds[tag].value
    if value is None:
        return None
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    return "\\".join(str(v) for v in values).encode("ascii", errors="replace")


def count_ds_values(raw: bytes | None) -> int:
    """Number of backslash-separated values in a raw DS/IS value (0 for an empty one)."""
    text = (raw or b"").strip(b" \x00")
    return text.count(b"\\") + 1 if text else 0


def parse_ds_array(raw: bytes, where: str) -> np.ndarray:
    """A raw DS multi-value as float64 (parsed in C by ``numpy.loadtxt``; no Python object per value).

    Raises :class:`DicomReadError` naming ``where`` for text that is not a list of decimal numbers (an empty
    value in the middle would silently shift every following coordinate, so it is refused too).
    """
    text = raw.decode("ascii", errors="replace").strip(" \x00")
    if not text:
        return np.zeros(0)
    n_values = text.count("\\") + 1
    try:
        values = np.loadtxt(io.StringIO(text.replace("\\", "\n")), dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise DicomReadError(
            f"{where}: expected decimal numbers, got {exc}", path=where.split(": ")[0]
        ) from exc
    if values.size != n_values:
        raise DicomReadError(
            f"{where}: expected {n_values} decimal numbers, got {n_values - values.size} empty value(s)",
            path=where.split(": ")[0],
        )
    return values
