"""Benchmark 1: CT series loading, at the quick size and at a real size (512x512x240), in-process and inside a
daemonic worker process (what a Dask worker is).

``hpd_imaging.io.load_ct`` (every geometry check: orientation, spacing regularity, gaps, tilt, modality LUT)
against what a user would otherwise call on the same folder:

* SimpleITK ``ImageSeriesReader`` (GDCM sorts the files, ITK decodes and rescales) -- the usual choice;
* a plain pydicom loop: ``dcmread`` every file, sort by ImagePositionPatient z, ``pixel_array`` * slope +
  intercept, ``np.stack`` -- no geometry checks at all;
* ``dcmread(stop_before_pixels=True)`` of every file: the header parsing any pydicom-based loader pays;
* reading the raw bytes of every file (``Path.read_bytes``): the floor of any loader. The page cache cannot be
  dropped without root, so every candidate (this one included) runs on warm-cache files; the floor is the
  cost of the system calls and memory copies, not of the disk.

Candidates that argue the decoder and header choices (benchmarks/README.md, issue 21):

* JPEG 2000: ``load_ct`` with the previous decoder (pydicom + pylibjpeg-openjpeg, which holds the GIL, on a
  process pool of the usable cores; serial inside a daemonic process, where no pool can start) and ``load_ct``
  with ``decode_workers=1`` (imagecodecs on one thread: what the thread pool is measured against);
* uncompressed: a dicomsdl loop (C++ header parser; sort, copy the frame, rescale, no checks) when dicomsdl is
  installed (it is not a dependency: ``uv pip install dicomsdl`` to include it).

The daemonic worker is a ``spawn``-started ``multiprocessing`` process with ``daemon=True``, like a Dask
worker (``distributed`` starts its worker processes as daemons, so they cannot start a process pool); the
times are measured inside it, interleaved with the in-process candidates.

Same answer: our HU volume equals SimpleITK's voxel for voxel (and the pydicom loop's, the previous decoder's,
dicomsdl's, and the daemonic worker's), with the same spacing, origin and direction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    BenchOptions,
    Timing,
    ct_archive,
    figure,
    first_ct_dir,
    log,
    ratio,
    result_head,
    time_interleaved,
    timestamp,
    write_result,
)

NAME = "ct_load"
REAL_MATRIX, REAL_SLICES = 512, 240  # the real size (512x512, >= 200 slices): 1 mm over 240 mm


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".dcm")


def load_ours(folder: Path, decode_workers: int | None = None, previous_decoder: bool = False) -> Any:
    """``load_ct``; ``previous_decoder``: JPEG 2000 through pydicom + pylibjpeg-openjpeg (imagecodecs off)."""
    from hpd_imaging.io import LoaderSettings, _pixeldecode, load_ct

    settings = LoaderSettings(decode_workers=decode_workers)
    if not previous_decoder:
        return load_ct(folder, settings)
    original = _pixeldecode._jpeg2k_decode
    _pixeldecode._jpeg2k_decode = lambda: None  # type: ignore[assignment]
    try:
        return load_ct(folder, settings)
    finally:
        _pixeldecode._jpeg2k_decode = original


def load_simpleitk(folder: Path) -> Any:
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def load_pydicom_loop(folder: Path) -> np.ndarray:
    """What a script without a loader library does: no checks, sort by z, rescale, stack."""
    import pydicom

    datasets = [pydicom.dcmread(f) for f in _files(folder)]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])


def have_dicomsdl() -> bool:
    try:
        import dicomsdl  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def load_dicomsdl_loop(folder: Path) -> np.ndarray:
    """dicomsdl's C++ parser: headers, sort by z, each frame copied into one buffer, rescaled into int16."""
    import dicomsdl

    datasets = [dicomsdl.open(str(f)) for f in _files(folder)]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    first = datasets[0]
    volume = np.empty((len(datasets), first.Rows, first.Columns), np.int16)
    buffer = np.empty((first.Rows, first.Columns), np.int16 if first.PixelRepresentation else np.uint16)
    for k, ds in enumerate(datasets):
        ds.copyFrameData(0, buffer)
        np.multiply(buffer, float(ds.RescaleSlope), out=volume[k], casting="unsafe")
        volume[k] += np.int16(float(ds.RescaleIntercept))
    return volume


def read_headers_only(folder: Path) -> int:
    """``dcmread(stop_before_pixels=True)`` of every file: the header-parsing part of any pydicom loader."""
    import pydicom

    return len([pydicom.dcmread(f, stop_before_pixels=True) for f in _files(folder)])


def read_raw_bytes(folder: Path) -> int:
    return sum(len(f.read_bytes()) for f in _files(folder))


# --------------------------------------------------------------------------------------------------
# the daemonic worker
# --------------------------------------------------------------------------------------------------


def _digest(volume: np.ndarray) -> str:
    """Voxel digest independent of the integer dtype (ours int16, SimpleITK's may differ)."""
    return hashlib.blake2b(np.ascontiguousarray(volume, dtype=np.int32).tobytes(), digest_size=16).hexdigest()


def _serve(conn: Connection) -> None:
    """The daemonic worker's loop: (what, folder, digest?) -> (seconds inside the worker, digest or None)."""
    import SimpleITK as sitk  # noqa: N813

    while True:
        request = conn.recv()
        if request is None:
            return
        what, folder, want_digest = request
        try:
            t = time.perf_counter()
            if what == "simpleitk":
                image = load_simpleitk(Path(folder))  # kept alive: the view below is into its buffer
                volume = sitk.GetArrayViewFromImage(image)
            else:
                volume = load_ours(Path(folder), previous_decoder=what == "previous_decoder").hu
            elapsed = time.perf_counter() - t
            assert multiprocessing.current_process().daemon
            conn.send((elapsed, _digest(volume) if want_digest else None))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            conn.send((None, f"{type(exc).__name__}: {exc}"))


class DaemonWorker:
    """A daemonic child process (spawn start, like Dask's workers) that loads series on request."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), daemon=True, name="bench-daemon-worker")
        self.process.start()
        self.times: dict[str, list[float]] = {}
        self.digests: dict[str, str] = {}

    def candidate(self, what: str, folder: Path) -> Any:
        """A timing candidate: the first call (the untimed warm-up) also returns the voxel digest."""

        def call() -> str:
            self.conn.send((what, str(folder), what not in self.digests))
            elapsed, digest = self.conn.recv()
            if elapsed is None:
                raise RuntimeError(f"daemonic worker, {what}: {digest}")
            self.times.setdefault(what, []).append(elapsed)
            if digest is not None:
                self.digests[what] = digest
            return what

        return call

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()


# --------------------------------------------------------------------------------------------------
# one series
# --------------------------------------------------------------------------------------------------


def _check_same(last: dict[str, Any], worker: DaemonWorker | None) -> dict[str, Any]:
    """Voxel and geometry equality; raises AssertionError (the benchmark must not report a wrong loader)."""
    import SimpleITK as sitk  # noqa: N813

    ours, itk_image = last["hpd_imaging_load_ct"], last["simpleitk_series_reader"]
    itk = sitk.GetArrayViewFromImage(itk_image)
    assert ours.hu.shape == itk.shape, f"shape: ours {ours.hu.shape}, SimpleITK {itk.shape}"
    assert np.array_equal(ours.hu, itk), "HU voxels differ from SimpleITK's"
    assert np.array_equal(ours.hu, last["pydicom_loop"]), "HU voxels differ from the pydicom loop's"
    for name in ("hpd_imaging_previous_decoder", "hpd_imaging_one_thread"):
        if name in last:
            assert np.array_equal(ours.hu, last[name].hu), f"HU voxels differ from {name}"
    if "dicomsdl_loop" in last:
        assert np.array_equal(ours.hu, last["dicomsdl_loop"]), "HU voxels differ from the dicomsdl loop's"
    g = ours.geometry
    assert np.allclose(g.spacing_mm, itk_image.GetSpacing(), atol=1e-6), "spacing differs from SimpleITK"
    assert np.allclose(g.origin_mm, itk_image.GetOrigin(), atol=1e-4), "origin differs from SimpleITK"
    assert np.allclose(g.direction, itk_image.GetDirection(), atol=1e-6), "direction differs from SimpleITK"
    checks: dict[str, Any] = {
        "voxels_equal_simpleitk": True,
        "voxels_equal_pydicom_loop": True,
        "geometry_equal_simpleitk": True,
        "shape_kji": list(ours.hu.shape),
        "our_dtype": str(ours.hu.dtype),
        "simpleitk_pixel_type": itk_image.GetPixelIDTypeAsString(),
        "slice_spacing_mm": {"ours": g.spacing_mm[2], "simpleitk": itk_image.GetSpacing()[2]},
    }
    if worker is not None:
        digest = _digest(ours.hu)
        for what, other in worker.digests.items():
            assert other == digest, f"HU voxels of the daemonic worker's {what} differ from ours in-process"
        checks["voxels_equal_in_daemonic_worker"] = sorted(worker.digests)
    return checks


def _ms(t: Timing) -> str:
    return f"{t.median_s * 1000:.0f} ms"


def bench_one(folder: Path, compression: str, repeats: int, daemon: bool = True) -> dict[str, Any]:
    j2k = compression != "none"
    candidates = {
        "hpd_imaging_load_ct": lambda: load_ours(folder),
        "simpleitk_series_reader": lambda: load_simpleitk(folder),
        "pydicom_loop": lambda: load_pydicom_loop(folder),
        "raw_bytes_read_warm": lambda: read_raw_bytes(folder),
        "pydicom_headers_only": lambda: read_headers_only(folder),
    }
    if j2k:
        candidates["hpd_imaging_previous_decoder"] = lambda: load_ours(folder, previous_decoder=True)
        candidates["hpd_imaging_one_thread"] = lambda: load_ours(folder, decode_workers=1)
    elif have_dicomsdl():
        candidates["dicomsdl_loop"] = lambda: load_dicomsdl_loop(folder)
    worker = DaemonWorker() if daemon else None
    try:
        if worker is not None:
            candidates["daemon_hpd_imaging_load_ct"] = worker.candidate("ours", folder)
            candidates["daemon_simpleitk_series_reader"] = worker.candidate("simpleitk", folder)
            if j2k:
                candidates["daemon_hpd_imaging_previous_decoder"] = worker.candidate(
                    "previous_decoder", folder
                )
        timings, last = time_interleaved(candidates, repeats)
    finally:
        if worker is not None:
            worker.close()
    if worker is not None:  # the worker's own clock: no pipe round trip, no digest
        for what, key in (
            ("ours", "daemon_hpd_imaging_load_ct"),
            ("simpleitk", "daemon_simpleitk_series_reader"),
            ("previous_decoder", "daemon_hpd_imaging_previous_decoder"),
        ):
            if key in timings:
                timings[key] = Timing(worker.times[what][1:])  # [0] was the untimed warm-up
    checks = _check_same(last, worker)
    n_files = len(_files(folder))
    checks["bytes_on_disk"] = int(last["raw_bytes_read_warm"])
    ours, itk = timings["hpd_imaging_load_ct"], timings["simpleitk_series_reader"]
    loop, raw = timings["pydicom_loop"], timings["raw_bytes_read_warm"]
    headers = timings["pydicom_headers_only"]
    shape = "x".join(str(n) for n in checks["shape_kji"][::-1])
    figures = [
        figure(
            f"CT load {compression} {shape}: ours / SimpleITK",
            ratio(ours, itk),
            goal="<= 1.0",
            met=ratio(ours, itk) <= 1.0,
            context=f"{_ms(ours)} vs {_ms(itk)}",
        ),
        figure(
            f"CT load {compression} {shape}: ours / pydicom loop",
            ratio(ours, loop),
            context=f"{_ms(ours)} vs {_ms(loop)} (loop checks nothing)",
        ),
        figure(
            f"CT load {compression} {shape}: ours / raw bytes read (warm cache)",
            ratio(ours, raw),
            context=f"{_ms(ours)} vs {_ms(raw)}; parsing the headers alone (dcmread stop_before_pixels) "
            f"takes {_ms(headers)}",
        ),
    ]
    if j2k:
        previous, one = timings["hpd_imaging_previous_decoder"], timings["hpd_imaging_one_thread"]
        figures += [
            figure(
                f"CT load {compression} {shape}: ours (imagecodecs, thread pool) / previous decoder "
                "(pylibjpeg-openjpeg, process pool)",
                ratio(ours, previous),
                goal="<= 1.0",
                met=ratio(ours, previous) <= 1.0,
                context=f"{_ms(ours)} vs {_ms(previous)}",
            ),
            figure(
                f"CT load {compression} {shape}: ours on the thread pool / ours on one thread",
                ratio(ours, one),
                context=f"{_ms(ours)} vs {_ms(one)}; ideal 1/usable cores on idle cores",
            ),
        ]
    if "dicomsdl_loop" in timings:
        sdl = timings["dicomsdl_loop"]
        figures.append(
            figure(
                f"CT load {compression} {shape}: ours / dicomsdl loop (C++ parser, not a dependency)",
                ratio(ours, sdl),
                context=f"{_ms(ours)} vs {_ms(sdl)} (loop checks nothing)",
            )
        )
    if worker is not None:
        d_ours, d_itk = timings["daemon_hpd_imaging_load_ct"], timings["daemon_simpleitk_series_reader"]
        figures.append(
            figure(
                f"CT load {compression} {shape} in a daemonic worker: ours / SimpleITK",
                ratio(d_ours, d_itk),
                goal="<= 1.0",
                met=ratio(d_ours, d_itk) <= 1.0,
                context=f"{_ms(d_ours)} vs {_ms(d_itk)}; in-process ours {_ms(ours)}",
            )
        )
        if j2k:
            d_prev = timings["daemon_hpd_imaging_previous_decoder"]
            figures.append(
                figure(
                    f"CT load {compression} {shape} in a daemonic worker: ours / previous decoder (serial "
                    "there: no process pool in a daemon)",
                    ratio(d_ours, d_prev),
                    goal="<= 1.0",
                    met=ratio(d_ours, d_prev) <= 1.0,
                    context=f"{_ms(d_ours)} vs {_ms(d_prev)}",
                )
            )
    return {
        "compression": compression,
        "folder": str(folder),
        "n_files": n_files,
        "timings": {k: v.as_json() for k, v in timings.items()},
        "throughput": {
            "ours_slices_per_s": round(n_files / ours.median_s, 1),
            "simpleitk_slices_per_s": round(n_files / itk.median_s, 1),
            "raw_MB_per_s": round(checks["bytes_on_disk"] / raw.median_s / 1e6, 1),
        },
        "checks": checks,
        "figures": figures,
    }


def sizes(opts: BenchOptions) -> list[tuple[int, int]]:
    """(matrix, slices) measured: the options' size, plus the real size unless --quick."""
    out = [(opts.ct_matrix, opts.ct_slices)]
    if not opts.quick and (REAL_MATRIX, REAL_SLICES) not in out:
        out.append((REAL_MATRIX, REAL_SLICES))
    return out


def run(opts: BenchOptions) -> dict[str, Any]:
    started = timestamp()
    cases = []
    for matrix, slices in sizes(opts):
        sized = dataclasses.replace(opts, ct_matrix=matrix, ct_slices=slices)
        for compression in opts.ct_compressions:
            archive = ct_archive(sized, compression)
            # JPEG 2000: seconds per load (decoding dominates, little variance): at most 3 repeats
            repeats = opts.repeats if compression == "none" else max(1, min(opts.repeats, 3))
            log(f"{NAME}: {matrix}x{matrix}x{slices} {compression}, {repeats} repeats")
            cases.append(bench_one(first_ct_dir(archive), compression, repeats))
    payload = {
        **result_head(
            NAME,
            "CT series loading vs SimpleITK ImageSeriesReader, a pydicom loop and a raw read, in-process and "
            "in a daemonic worker",
            started,
        ),
        "options": {
            "repeats": opts.repeats,
            "sizes": [list(s) for s in sizes(opts)],
            "ct_compressions": list(opts.ct_compressions),
            "dicomsdl": have_dicomsdl(),
        },
        "cases": cases,
        "checks": {f"{c['checks']['shape_kji'][0]}_{c['compression']}": c["checks"] for c in cases},
        "figures": [f for c in cases for f in c["figures"]],
        "notes": [
            "Warm page cache for every candidate (dropping it needs root); raw read = syscall/copy floor.",
            "SimpleITK time includes GDCM's file sorting (GetGDCMSeriesFileNames), as a user would call it.",
            "Timed interleaved (ours, SimpleITK, loop, raw, ..., daemonic worker's candidates); figures are "
            "ratios of medians. Daemonic-worker times are measured inside the worker.",
        ],
    }
    write_result(opts.results_dir, NAME, payload)
    return payload
