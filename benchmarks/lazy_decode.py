"""Issue 21: what decoding only the used CT slices saves per patient (lazy ``load_ct`` in the pipeline).

One patient of a real-size archive (3 exams of 512x512x200, SEG with Tracking UIDs, e.g. the JPEG 2000 archive
benchmarks/real_size.py writes), through :func:`hpd_imaging.pipeline.process_patient` twice per repeat,
interleaved: ``eager`` (every CT decoded whole at load, as before: ``load_ct`` forced to ``lazy=False``) and
``lazy`` (the pipeline as it is: slices decoded when a stage reads them). Same configuration for both:
default settings with the Original-only parameter file (pipelines/radiomics_ct_original.yaml: the default's
resampling to 1 mm with B-spline, so the default's crop margins) so that radiomics does not dominate, and
snapshots on.

Reported per candidate: the median wall time of the patient and of its stages (load, tracking + measurement,
radiomics, snapshots), the slices decoded, and whether the tables are equal (``image_sha256`` excepted: a lazy
CT's digest is of its stored input). Ratios are eager / lazy from the same run.

    uv run python -m benchmarks.lazy_decode ARCHIVE [--patient SYN001] [--repeats 3]

``--only eager|lazy`` runs one candidate in this process and adds its peak RSS (``ru_maxrss``: the whole
process, interpreter and libraries included; run each candidate in its own process to compare).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import hpd_imaging.io as hio
from hpd_imaging.archive import scan_archive
from hpd_imaging.io import _lazyct
from hpd_imaging.pipeline import PatientJob, assign_roles, process_patient
from hpd_imaging.settings import load_config

REPO = Path(__file__).resolve().parents[1]


def _job(archive: Path, patient: str | None, out: Path) -> PatientJob:
    scanned = scan_archive(archive)
    pid = patient or sorted(scanned.patients)[0]
    config = load_config(REPO / "pipelines" / "default.yaml")
    radiomics = config.radiomics.model_copy(update={"params_file": Path("radiomics_ct_original.yaml")})
    config = config.model_copy(update={"radiomics": radiomics})
    return PatientJob(pid, assign_roles(scanned.timepoints[pid], None), config, out, REPO / "pipelines")


def _run(job: PatientJob, eager: bool, out: Path) -> dict[str, Any]:
    decoded = [0]
    real_load, real_decode = hio.load_ct, _lazyct.LazySeriesVoxels._decode

    def load_eager(*args: Any, **kwargs: Any) -> Any:
        kwargs["lazy"] = False
        ct = real_load(*args, **kwargs)
        decoded[0] += ct.geometry.shape[0]
        return ct

    def counting(self: _lazyct.LazySeriesVoxels, missing: list[int]) -> None:
        decoded[0] += len(missing)
        real_decode(self, missing)

    if eager:
        hio.load_ct = load_eager  # type: ignore[assignment]
    _lazyct.LazySeriesVoxels._decode = counting  # type: ignore[method-assign]
    try:
        job = PatientJob(**{**job.__dict__, "result_dir": out})
        t0 = time.perf_counter()
        status = process_patient(job)
        wall = time.perf_counter() - t0
    finally:
        hio.load_ct = real_load  # type: ignore[assignment]
        _lazyct.LazySeriesVoxels._decode = real_decode  # type: ignore[method-assign]
    assert status["ok"] and not status["errors"], status["errors"]
    return {"wall_s": wall, **status["timings_s"], "slices_decoded": decoded[0]}


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {
        p.name: pd.read_parquet(p).drop(columns=["image_sha256"], errors="ignore")
        for p in sorted(folder.glob("*.parquet"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--patient")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["eager", "lazy"])
    args = parser.parse_args()
    if args.only:
        with tempfile.TemporaryDirectory() as tmp:
            job = _job(args.archive, args.patient, Path(tmp) / "x")
            result = _run(job, args.only == "eager", Path(tmp) / args.only)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
        print(json.dumps({"candidate": args.only, **result, "peak_rss_mib": peak_mib}, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        job = _job(args.archive, args.patient, Path(tmp) / "x")
        runs: dict[str, list[dict[str, Any]]] = {"eager": [], "lazy": []}
        for r in range(args.repeats):
            for name in ("eager", "lazy") if r % 2 == 0 else ("lazy", "eager"):
                runs[name].append(_run(job, name == "eager", Path(tmp) / f"{name}{r}"))
        a, b = _tables(Path(tmp) / "eager0"), _tables(Path(tmp) / "lazy0")
        equal = a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)
    summary: dict[str, Any] = {"patient": job.patient_id, "exams": len(job.timepoints), "tables_equal": equal}
    for name, rs in runs.items():
        summary[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    summary["ratio_eager_over_lazy"] = {
        k: summary["eager"][k] / summary["lazy"][k] for k in summary["eager"] if summary["lazy"][k]
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
