"""Benchmark 1: CT series loading.

``hpd_imaging.io.load_ct`` (every geometry check: orientation, spacing regularity, gaps, tilt, modality LUT)
against what a user would otherwise call on the same folder:

* SimpleITK ``ImageSeriesReader`` (GDCM sorts the files, ITK decodes and rescales) -- the usual choice;
* a plain pydicom loop: ``dcmread`` every file, sort by ImagePositionPatient z, ``pixel_array`` * slope +
  intercept, ``np.stack`` -- no geometry checks at all;
* ``dcmread(stop_before_pixels=True)`` of every file: the header parsing any pydicom-based loader pays (it
  explains most of the distance to the raw read);
* reading the raw bytes of every file (``Path.read_bytes``): the floor of any loader. The page cache cannot be
  dropped without root, so every candidate (this one included) runs on warm-cache files; the floor is the
  cost of the system calls and memory copies, not of the disk.

Same answer: our HU volume equals SimpleITK's voxel for voxel (and the pydicom loop's), with the same spacing,
origin and direction. Uncompressed and JPEG 2000 (lossless) series of the same size are both measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    BenchOptions,
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


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".dcm")


def load_ours(folder: Path) -> Any:
    from hpd_imaging.io import load_ct

    return load_ct(folder)


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


def read_headers_only(folder: Path) -> int:
    """``dcmread(stop_before_pixels=True)`` of every file: the header-parsing part of any pydicom loader."""
    import pydicom

    return len([pydicom.dcmread(f, stop_before_pixels=True) for f in _files(folder)])


def read_raw_bytes(folder: Path) -> int:
    return sum(len(f.read_bytes()) for f in _files(folder))


def _check_same(ours: Any, itk_image: Any, loop: np.ndarray) -> dict[str, Any]:
    """Voxel and geometry equality; raises AssertionError (the benchmark must not report a wrong loader)."""
    import SimpleITK as sitk  # noqa: N813

    itk = sitk.GetArrayViewFromImage(itk_image)
    assert ours.hu.shape == itk.shape, f"shape: ours {ours.hu.shape}, SimpleITK {itk.shape}"
    assert np.array_equal(ours.hu, itk), "HU voxels differ from SimpleITK's"
    assert np.array_equal(ours.hu, loop), "HU voxels differ from the pydicom loop's"
    g = ours.geometry
    assert np.allclose(g.spacing_mm, itk_image.GetSpacing(), atol=1e-6), "spacing differs from SimpleITK"
    assert np.allclose(g.origin_mm, itk_image.GetOrigin(), atol=1e-4), "origin differs from SimpleITK"
    assert np.allclose(g.direction, itk_image.GetDirection(), atol=1e-6), "direction differs from SimpleITK"
    return {
        "voxels_equal_simpleitk": True,
        "voxels_equal_pydicom_loop": True,
        "geometry_equal_simpleitk": True,
        "shape_kji": list(ours.hu.shape),
        "our_dtype": str(ours.hu.dtype),
        "simpleitk_pixel_type": itk_image.GetPixelIDTypeAsString(),
    }


def bench_one(folder: Path, compression: str, repeats: int) -> dict[str, Any]:
    candidates = {
        "hpd_imaging_load_ct": lambda: load_ours(folder),
        "simpleitk_series_reader": lambda: load_simpleitk(folder),
        "pydicom_loop": lambda: load_pydicom_loop(folder),
        "raw_bytes_read_warm": lambda: read_raw_bytes(folder),
        "pydicom_headers_only": lambda: read_headers_only(folder),
    }
    timings, last = time_interleaved(candidates, repeats)
    checks = _check_same(last["hpd_imaging_load_ct"], last["simpleitk_series_reader"], last["pydicom_loop"])
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
            context=f"{ours.median_s * 1000:.0f} ms vs {itk.median_s * 1000:.0f} ms",
        ),
        figure(
            f"CT load {compression} {shape}: ours / pydicom loop",
            ratio(ours, loop),
            context=f"{ours.median_s * 1000:.0f} ms vs {loop.median_s * 1000:.0f} ms (loop checks nothing)",
        ),
        figure(
            f"CT load {compression} {shape}: ours / raw bytes read (warm cache)",
            ratio(ours, raw),
            goal="<= 2.0" if compression == "none" else None,
            met=ratio(ours, raw) <= 2.0 if compression == "none" else None,
            context=f"{ours.median_s * 1000:.0f} ms vs {raw.median_s * 1000:.0f} ms; parsing the headers "
            f"alone (dcmread stop_before_pixels) takes {headers.median_s * 1000:.0f} ms",
        ),
    ]
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


def run(opts: BenchOptions) -> dict[str, Any]:
    started = timestamp()
    cases = []
    for compression in opts.ct_compressions:
        archive = ct_archive(opts, compression)
        # JPEG 2000: seconds per load (decoding dominates, little variance): at most 3 repeats
        repeats = opts.repeats if compression == "none" else max(1, min(opts.repeats, 3))
        log(f"{NAME}: {compression}, {repeats} repeats")
        cases.append(bench_one(first_ct_dir(archive), compression, repeats))
    payload = {
        **result_head(
            NAME,
            "CT series loading vs SimpleITK ImageSeriesReader, a pydicom loop and a raw read",
            started,
        ),
        "options": {
            "repeats": opts.repeats,
            "ct_matrix": opts.ct_matrix,
            "ct_slices": opts.ct_slices,
            "ct_compressions": list(opts.ct_compressions),
        },
        "cases": cases,
        "checks": {c["compression"]: c["checks"] for c in cases},
        "figures": [f for c in cases for f in c["figures"]],
        "notes": [
            "Warm page cache for every candidate (dropping it needs root); raw read = syscall/copy floor.",
            "SimpleITK time includes GDCM's file sorting (GetGDCMSeriesFileNames), as a user would call it.",
            "Timed interleaved (ours, SimpleITK, loop, raw, ours, ...); figures are ratios of medians.",
        ],
    }
    write_result(opts.results_dir, NAME, payload)
    return payload
