"""``uv run python -m benchmarks [--quick] [--sizes 2,4,8] [--repeats N] [--only ct_load,...]``

Makes its own synthetic data with ``hpd-imaging synth`` (kept in benchmarks/_data/, git-ignored, reused while
the options that made it are unchanged), runs each benchmark, writes benchmarks/results/<name>.json and
benchmarks/results/summary.md. See benchmarks/README.md for the method.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from benchmarks import BENCHMARKS
from benchmarks._common import PACKAGE_DIR, RESULTS_DIR, BenchOptions, log
from benchmarks.summary import write_summary


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> BenchOptions:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smallest sizes, 3 repeats (a smoke run; results go to benchmarks/_work/quick_results)",
    )
    p.add_argument("--sizes", type=_ints, help="end-to-end archive sizes in patients (default 2,4,8)")
    p.add_argument("--repeats", type=int, help="repeats per measurement (median reported; default 5)")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    p.add_argument("--ct-matrix", type=int, help="CT loading/radiomics: in-plane matrix (default 512)")
    p.add_argument("--ct-slices", type=int, help="CT loading/radiomics: slices over 240 mm (default 96)")
    p.add_argument("--archive-patients", type=int, help="archive indexing: patients x 4 exams (default 5)")
    p.add_argument("--archive-slice-mm", type=float, help="archive indexing: slice thickness (default 1)")
    p.add_argument(
        "--lesion-sizes", type=_floats, help="measurement: lesion diameters in mm (default 10,20,50)"
    )
    p.add_argument("--e2e-matrix", type=int, help="end to end: in-plane matrix (default 256)")
    p.add_argument("--e2e-workers", type=int, help="end to end: Dask workers (default 2)")
    p.add_argument(
        "--no-radiomics-ct-yaml",
        action="store_true",
        help="radiomics: skip the slow pipelines/radiomics_ct.yaml comparison",
    )
    p.add_argument("--real-patients", type=int, help="real size: patients x 3 timepoints (default 12)")
    p.add_argument(
        "--real-distinct", type=int, help="real size: of which made by synth, the rest copies (default 4)"
    )
    p.add_argument("--real-matrix", type=int, help="real size: in-plane matrix (default 512)")
    p.add_argument("--real-slices", type=int, help="real size: slices over 240 mm (default 200)")
    p.add_argument("--real-compressions", help="real size: comma-separated, none,jpeg2000 (default both)")
    p.add_argument(
        "--real-workers", type=int, help="real size: Dask workers = plain script processes (default 2)"
    )
    p.add_argument("--data-dir", type=Path, help="where generated archives live (default benchmarks/_data)")
    p.add_argument("--results-dir", type=Path, help="where results go (default benchmarks/results)")
    a = p.parse_args(argv)
    opts = BenchOptions.quick_defaults() if a.quick else BenchOptions()
    if a.quick and a.results_dir is None:  # a smoke run never overwrites the committed results
        opts = dataclasses.replace(opts, results_dir=PACKAGE_DIR / "_work" / "quick_results")
    overrides = {
        "e2e_sizes": a.sizes,
        "repeats": a.repeats,
        "ct_matrix": a.ct_matrix,
        "ct_slices": a.ct_slices,
        "archive_patients": a.archive_patients,
        "archive_slice_mm": a.archive_slice_mm,
        "lesion_sizes_mm": a.lesion_sizes,
        "e2e_matrix": a.e2e_matrix,
        "e2e_workers": a.e2e_workers,
        "real_patients": a.real_patients,
        "real_distinct": a.real_distinct,
        "real_matrix": a.real_matrix,
        "real_slices": a.real_slices,
        "real_compressions": tuple(a.real_compressions.split(",")) if a.real_compressions else None,
        "real_workers": a.real_workers,
        "data_dir": a.data_dir,
        "results_dir": a.results_dir,
    }
    opts = dataclasses.replace(opts, **{k: v for k, v in overrides.items() if v is not None})
    if a.no_radiomics_ct_yaml:
        opts = dataclasses.replace(opts, radiomics_ct_yaml=False)
    only = [x.strip() for x in a.only.split(",")] if a.only else list(BENCHMARKS)
    unknown = [x for x in only if x not in BENCHMARKS]
    if unknown:
        p.error(f"--only: expected names among {', '.join(BENCHMARKS)}, got {unknown}")
    return dataclasses.replace(opts, only=tuple(only))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    t0 = time.perf_counter()
    for name in opts.only:
        log(f"--- {name}")
        t = time.perf_counter()
        BENCHMARKS[name](opts)
        log(f"--- {name} done in {time.perf_counter() - t:.0f} s")
    # the README's results section follows the committed results folder only
    readme = PACKAGE_DIR / "README.md" if opts.results_dir.resolve() == RESULTS_DIR.resolve() else None
    path = write_summary(opts.results_dir, readme)
    log(f"all done in {time.perf_counter() - t0:.0f} s; summary: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
