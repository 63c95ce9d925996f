"""Shared pieces of the benchmarks: options, synthetic data, timing, result files.

Why medians of ratios measured in the same run: the benchmark machine is shared and noisy (other jobs start
and stop while we measure), so absolute seconds move by tens of percent between runs. A ratio of two medians
taken back to back (ours and the baseline interleaved in every repeat) is far more stable, and it is the
figure the goals are stated in. Absolute times are still recorded for context.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "_data"  # git-ignored: generated archives, reused between runs
RESULTS_DIR = PACKAGE_DIR / "results"
SCHEMA_VERSION = 1


@dataclass
class BenchOptions:
    """Sizes and repeats of one benchmark run (``python -m benchmarks --help`` documents each)."""

    repeats: int = 5
    quick: bool = False
    ct_matrix: int = 512
    ct_slices: int = 96
    ct_compressions: tuple[str, ...] = ("none", "jpeg2000")
    archive_patients: int = 5
    archive_slice_mm: float = 1.0
    lesion_sizes_mm: tuple[float, ...] = (10.0, 20.0, 50.0)
    lesion_spacing_mm: float = 0.7
    e2e_sizes: tuple[int, ...] = (2, 4, 8)
    e2e_matrix: int = 256
    e2e_workers: int = 2
    radiomics_ct_yaml: bool = True  # also time pipelines/radiomics_ct.yaml (slow: 14 filtered images)
    data_dir: Path = DATA_DIR
    results_dir: Path = RESULTS_DIR
    only: tuple[str, ...] = ()  # benchmark names to run; empty = all

    @classmethod
    def quick_defaults(cls) -> BenchOptions:
        """Smallest sizes that still exercise every code path (a minute or two once the data exists)."""
        return cls(
            repeats=3,
            quick=True,
            ct_matrix=256,
            ct_slices=48,
            archive_patients=2,
            archive_slice_mm=2.0,
            lesion_sizes_mm=(10.0, 20.0),
            e2e_sizes=(1, 2),
            radiomics_ct_yaml=False,
        )

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        out["results_dir"] = str(self.results_dir)
        return out


# --------------------------------------------------------------------------------------------------
# synthetic data through the command a user would run
# --------------------------------------------------------------------------------------------------


def hpd_imaging_command() -> list[str]:
    """The ``hpd-imaging`` console script of this environment (the one next to the running interpreter)."""
    script = Path(sys.executable).parent / "hpd-imaging"
    if script.exists():
        return [str(script)]
    found = shutil.which("hpd-imaging")
    if found:
        return [found]
    return [sys.executable, "-c", "from hpd_imaging.cli import main; main()"]


def synth_archive(name: str, args: Sequence[str], data_dir: Path = DATA_DIR) -> Path:
    """``hpd-imaging synth data_dir/name ARGS`` unless an archive made with the same arguments is there.

    The arguments are stored next to the archive (``.bench_synth.json``); any difference regenerates it, so a
    size option changed on the command line never reuses stale data.
    """
    out = data_dir / name
    stamp = out / ".bench_synth.json"
    wanted = {"args": list(args)}
    if stamp.exists() and (out / "ground_truth.json").exists() and json.loads(stamp.read_text()) == wanted:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*hpd_imaging_command(), "synth", str(out), *args, "--log-level", "WARNING"]
    log(f"generating {name}: {' '.join(cmd[1:])}")
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps(wanted))
    log(f"generated {name} in {time.perf_counter() - t:.1f} s")
    return out


def ct_archive(opts: BenchOptions, compression: str) -> Path:
    """The one-patient CT archive (opts.ct_matrix x opts.ct_slices over synth's 240 mm scan, seed 0).

    ct_load times it per compression and radiomics_overhead extracts from its uncompressed copy; one name and
    one argument list here means both use the same generated archive instead of generating it twice.
    """
    return synth_archive(
        f"ct_{opts.ct_matrix}x{opts.ct_slices}_{compression}",
        [
            "--patients",
            "1",
            "--followups",
            "1",
            "--matrix",
            str(opts.ct_matrix),
            "--slice-thickness-mm",
            f"{240.0 / opts.ct_slices:g}",  # synth's default scan length is 240 mm
            "--compression",
            compression,
            "--seed",
            "0",
        ],
        opts.data_dir,
    )


def first_ct_dir(archive: Path) -> Path:
    """The CT folder of the first timepoint of the first patient (from ground_truth.json)."""
    truth = json.loads((archive / "ground_truth.json").read_text())
    return archive / truth["patients"][0]["timepoints"][0]["ct_dir"]


# --------------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock seconds of one measured operation over its repeats."""

    times_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median_s, 6),
            "min_s": round(min(self.times_s), 6),
            "max_s": round(max(self.times_s), 6),
            "repeats": len(self.times_s),
            "times_s": [round(t, 6) for t in self.times_s],
        }


def time_interleaved(
    candidates: dict[str, Callable[[], Any]], repeats: int, *, warmup: bool = True
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Time every candidate ``repeats`` times, interleaved (a, b, c, a, b, c, ...).

    Interleaving spreads the machine's load changes over all candidates instead of penalising whichever
    happened to run during a busy minute. One untimed warm-up call each first (imports, page cache, JIT-free
    but allocator warm-up); the last return value of each is handed back for correctness checks.
    """
    timings = {name: Timing() for name in candidates}
    last: dict[str, Any] = {}
    if warmup:
        for name, fn in candidates.items():
            last[name] = fn()
    for _ in range(max(1, repeats)):
        for name, fn in candidates.items():
            t = time.perf_counter()
            last[name] = fn()
            timings[name].times_s.append(time.perf_counter() - t)
    return timings, last


def time_blocks(
    candidates: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Time each candidate in its own block (warm-up, then ``repeats`` calls), one candidate after the other.

    For short deterministic CPU work (milliseconds) interleaving hurts more than it helps: OpenBLAS threads
    left spinning after a large matrix product (the brute-force diameter) steal the core from the next,
    millisecond-long call (the hull diameter), inflating it ten-fold. In blocks, that only hits the untimed
    warm-up call.
    """
    timings: dict[str, Timing] = {}
    last: dict[str, Any] = {}
    for name, fn in candidates.items():
        timing, out = time_interleaved({name: fn}, repeats)
        timings.update(timing)
        last.update(out)
    return timings, last


def ratio(numerator: Timing, denominator: Timing) -> float:
    """Ratio of medians (numerator / denominator)."""
    return numerator.median_s / denominator.median_s


def figure(
    label: str,
    value: float,
    *,
    unit: str = "x",
    goal: str | None = None,
    met: bool | None = None,
    context: str = "",
) -> dict[str, Any]:
    """One row of the summary table."""
    return {
        "label": label,
        "value": round(value, 4),
        "unit": unit,
        "goal": goal,
        "met": met,
        "context": context,
    }


# --------------------------------------------------------------------------------------------------
# machine state and result files
# --------------------------------------------------------------------------------------------------


def machine_state() -> dict[str, Any]:
    """What was running around us: load averages, cores, library versions."""
    import numpy
    import pydicom
    import SimpleITK

    try:
        import radiomics  # type: ignore[import-untyped]

        pyradiomics_version = str(radiomics.__version__)
    except Exception:  # noqa: BLE001 - reporting only
        pyradiomics_version = "unavailable"
    from hpd_imaging import __version__ as ours

    load1, load5, load15 = os.getloadavg()
    return {
        "load_avg_1_5_15": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            "hpd_imaging": ours,
            "numpy": numpy.__version__,
            "pydicom": pydicom.__version__,
            "SimpleITK": SimpleITK.Version_VersionString(),
            "pyradiomics": pyradiomics_version,
        },
    }


def timestamp() -> str:
    """Local wall-clock time as the result files store it (``started``, ``finished``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def result_head(name: str, title: str, started: str) -> dict[str, Any]:
    """The first keys of every result file: name, title, started, finished (now) and machine (now)."""
    return {
        "name": name,
        "title": title,
        "started": started,
        "finished": timestamp(),
        "machine": machine_state(),
    }


def write_result(results_dir: Path, name: str, payload: dict[str, Any]) -> Path:
    """benchmarks/results/<name>.json (schema: name, schema_version, started/finished, machine, options,
    figures [the ratios], measurements [absolute times], checks [same-answer assertions], notes)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    return path


def log(message: str) -> None:
    """Progress lines go to stderr (the benchmark is an application, not library code)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
