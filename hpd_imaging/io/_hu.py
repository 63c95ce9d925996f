"""Stored pixel values -> HU in a preallocated volume, one slice at a time: the one conversion the eager and
the lazy CT loaders share (:mod:`hpd_imaging.io.ct`, :mod:`hpd_imaging.io._lazyct`), so that their values,
types and error messages are the same."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from hpd_imaging.errors import DicomReadError
from hpd_imaging.io._pixeldecode import iter_stored, plan_decode

log = logging.getLogger(__name__)

_INT16 = np.iinfo(np.int16)


def hu_dtype(rescales: Sequence[tuple[float, float]]) -> np.dtype:
    """int16 when every slope/intercept is integral (HU are integers), float32 otherwise.

    The int16 choice is optimistic: :func:`store_slice` widens the volume to float32 once if a decoded slice
    leaves the int16 range (e.g. unsigned 16-bit data with a large value); typical CT stays at 2 bytes/voxel.
    """
    for slope, intercept in rescales:
        if slope != round(slope) or intercept != round(intercept):
            return np.dtype(np.float32)
    return np.dtype(np.int16)


def store_slice(hu: np.ndarray, k: int, values: np.ndarray, label: str) -> np.ndarray:
    """Write one slice of HU into the preallocated volume; widen int16 -> float32 once if needed."""
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise DicomReadError(
            f"{label}: slice {k}: expected finite HU values, got NaN or infinity", path=label
        )
    if hu.dtype == np.int16 and values.size and (values.min() < _INT16.min or values.max() > _INT16.max):
        log.info("%s: HU values beyond the int16 range; storing the volume as float32", label)
        hu = hu.astype(np.float32)
    hu[k] = values
    return hu


def _store_rescaled(
    hu: np.ndarray, k: int, stored: np.ndarray, rescale: tuple[float, float], label: str
) -> np.ndarray:
    """``stored * slope + intercept`` into slice ``k``: the values of pydicom's ``apply_modality_lut``.

    Why not that function: it makes a float64 copy of every slice (8 bytes/voxel) and ``store_slice`` then
    scans it twice; for the usual CT (integer stored values, slope 1, integral intercept, int16 volume) the
    range of the result follows from the stored minimum and maximum, and one integer add writes the slice
    in place. Other slopes go through one float64 slice of scratch, as pydicom computes them.
    """
    slope, intercept = rescale
    if hu.dtype == np.int16 and slope == 1.0 and abs(intercept) < 2**31 and stored.size:
        lo, hi = int(stored.min()) + int(intercept), int(stored.max()) + int(intercept)
        if _INT16.min <= lo and hi <= _INT16.max:
            np.add(stored, np.int32(intercept), out=hu[k], casting="unsafe")  # exact: int32 arithmetic
            return hu
    values = np.multiply(stored, slope, dtype=np.float64)
    values += intercept
    return store_slice(hu, k, values, label)


def decode_error(path: Path, ds: Dataset, what: str, exc: Exception) -> DicomReadError:
    """The error for pixels that fail to decode: names the file, what failed and the transfer syntax."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return DicomReadError(
        f"{path}: cannot decode {what} (transfer syntax {getattr(syntax, 'name', syntax)}): {exc}",
        path=str(path),
    )


def store_stored(
    hu: np.ndarray,
    k: int,
    stored: np.ndarray,
    path: Path,
    ds: Dataset,
    rescale: tuple[float, float],
    rows_columns: tuple[int, int],
) -> np.ndarray:
    """Slice ``k`` of ``hu`` from one slice's stored values (``stored``, as decoded from ``path``), through
    the modality LUT as pydicom applies it; returns ``hu`` (a new float32 array if it had to widen)."""
    if stored.shape != rows_columns:
        raise DicomReadError(
            f"{path}: expected a {rows_columns[0]}x{rows_columns[1]} single-frame image, got pixel "
            f"array {stored.shape}",
            path=str(path),
        )
    if "ModalityLUTSequence" in ds or stored.dtype.kind not in "iu":
        try:
            values = apply_modality_lut(stored, ds)
        except Exception as exc:
            raise decode_error(path, ds, "pixel data", exc) from exc
        return store_slice(hu, k, values, str(path))
    # pydicom's apply_modality_lut rescales only when both attributes are present
    rescaled = "RescaleSlope" in ds and "RescaleIntercept" in ds
    return _store_rescaled(hu, k, stored, rescale if rescaled else (1.0, 0.0), str(path))


def decode_slices(
    hu: np.ndarray,
    slices: Sequence[int],
    items: Sequence[tuple[Path, Dataset]],
    rescales: Sequence[tuple[float, float]],
    rows_columns: tuple[int, int],
    *,
    workers: int | None,
    min_slices: int,
    label: str,
    on_slice: Callable[[int, np.ndarray], None] | None = None,
    logger: logging.Logger = log,
) -> np.ndarray:
    """Decode the stack's slices ``slices`` (indices into ``items``, in that order) into ``hu``; returns
    ``hu`` (a new float32 array if it had to widen). ``on_slice(k, hu)`` runs after each slice is stored;
    the decode plan is logged (debug) on the caller's ``logger``.

    JPEG 2000 decodes on threads (imagecodecs releases the GIL), other compressed syntaxes on processes, in
    order and at most a few slices ahead; uncompressed slices are read into one reused buffer (see
    :mod:`hpd_imaging.io._pixeldecode`). A slice that fails raises :class:`DicomReadError` naming its file;
    the slices before it stay stored.
    """
    subset = [items[k] for k in slices]
    plan = plan_decode(subset, workers, min_slices)
    logger.debug("%s: decoding %d of %d slices %s", label, len(subset), len(items), plan.describe())
    stored_slices = iter_stored(subset, plan)
    try:
        for k, (path, ds) in zip(slices, subset, strict=True):
            try:
                stored = next(stored_slices)
            except Exception as exc:  # decoder plugins raise many types; report the file and the syntax
                raise decode_error(path, ds, "pixel data", exc) from exc
            hu = store_stored(hu, k, stored, path, ds, rescales[k], rows_columns)
            if on_slice is not None:
                on_slice(k, hu)
    finally:
        stored_slices.close()  # cancels slices still queued when a slice failed
    return hu
