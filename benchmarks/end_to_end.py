"""Benchmark 5: ``hpd-imaging run`` end to end, how its time grows with the archive, and memory per worker.

For each archive size N (patients, 3 timepoints each, 256x256 CT by default), ``hpd-imaging run ARCHIVE --out
TMP --workers W --quiet`` runs as a subprocess exactly as a user would start it (default pipeline config:
archive index, CT + SEG loading, tracking, measurement, baseline radiomics with pipelines/radiomics_ct.yaml
and a 5 mm ring, kinetics/HPD labels, report). While it runs, every process of its tree is sampled (psutil)
for its kernel peak resident set (``VmHWM`` in /proc/<pid>/status, the exact high-water mark, not a
sampled guess).

Figures:

* patients per minute at each size and the growth ratio t(N_max) / t(N_min) next to the linear N_max / N_min
  (a fixed start-up cost -- Dask cluster, imports, report -- makes the growth sub-linear at small N);
* patient-level speed-up: the smallest multi-patient size also runs with ``--workers 1`` (in-process);
* memory: peak RSS of each Dask worker process, minus the RSS of a fresh interpreter that imports the same
  stages (the fixed cost of the code), compared with the largest single patient's image data (all timepoints'
  CT voxels + one full-grid mask per lesion); and the peak at the largest size vs the smallest. If a worker
  held more than one patient's images, its peak would grow with the number of patients it processed.

Same answer: every run must exit 0 with every patient done and no error rows.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    BenchOptions,
    Timing,
    figure,
    hpd_imaging_command,
    log,
    ratio,
    result_head,
    synth_archive,
    timestamp,
    write_result,
)

NAME = "end_to_end"
_SAMPLE_S = 0.05
_IMPORTS = (
    "import hpd_imaging.pipeline.patient, hpd_imaging.io, hpd_imaging.measure, hpd_imaging.tracking, "
    "hpd_imaging.radiomics, hpd_imaging.report.inputs, distributed"
)


def _peak_kib(pid: int) -> int | None:
    """Kernel high-water mark of the resident set (VmHWM, KiB) of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_monitored(cmd: list[str], *, other_is_worker: bool = False, tail_chars: int = 2000) -> dict[str, Any]:
    """Run ``cmd``; return wall time, CPU seconds of its whole tree, exit code and the peak RSS (MiB) of each
    process of its tree. ``other_is_worker``: a child that is neither the driver nor the resource tracker is a
    worker even without a multiprocessing command line (a forked process pool keeps its parent's).

    CPU seconds come from getrusage(RUSAGE_CHILDREN) around the run: a process's reaped descendants are added
    to it when it is reaped, so the delta is the work of every process the command started. The output is
    drained on a thread, so a chatty command never blocks on a full pipe while it is sampled.
    """
    import threading

    import psutil  # type: ignore[import-untyped]

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks: dict[int, dict[str, Any]] = {}
    root = psutil.Process(proc.pid)
    tail: list[str] = []

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            del tail[:-40]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = [root]
        for p in tree:
            entry = peaks.get(p.pid)
            if entry is None:
                try:
                    cmdline = " ".join(p.cmdline())
                except psutil.Error:
                    continue
                kind = (
                    "driver"
                    if p.pid == proc.pid
                    else "resource_tracker"
                    if "resource_tracker" in cmdline
                    else "worker"
                    if other_is_worker or "spawn_main" in cmdline or "multiprocessing" in cmdline
                    else "other"
                )
                entry = peaks[p.pid] = {"kind": kind, "peak_kib": 0, "cpu_s": 0.0}
            kib = _peak_kib(p.pid)
            if kib is not None:
                entry["peak_kib"] = max(entry["peak_kib"], kib)
            try:  # the process's own CPU seconds so far (its last sample before it ends)
                t = p.cpu_times()
                entry["cpu_s"] = max(entry["cpu_s"], t.user + t.system)
            except psutil.Error:
                pass
        time.sleep(_SAMPLE_S)
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    procs = [
        {
            "pid": pid,
            "kind": e["kind"],
            "peak_rss_mib": round(e["peak_kib"] / 1024, 1),
            "cpu_s": round(e["cpu_s"], 2),
        }
        for pid, e in peaks.items()
        if e["peak_kib"] > 0
    ]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "returncode": proc.returncode,
        "processes": procs,
        "output_tail": "".join(tail)[-tail_chars:],
    }


def import_rss_mib() -> float:
    """Peak RSS of a fresh interpreter that imports every stage a worker runs (the code's fixed cost)."""
    code = f"{_IMPORTS}\nprint(open('/proc/self/status').read())"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def patient_image_mib(archive: Path, matrix: int) -> float:
    """Largest patient's image data as the pipeline holds it: int16 CT voxels of every timepoint plus one
    full-grid boolean mask per lesion present at each timepoint (from ground_truth.json)."""
    truth = json.loads((archive / "ground_truth.json").read_text())
    sizes = []
    for p in truth["patients"]:
        total = 0
        for tp in p["timepoints"]:
            voxels = int(tp["n_slices"]) * matrix * matrix
            present = sum(
                1
                for les in p["lesions"]
                for m in les["measurements"]
                if m["scan_date"] == tp["scan_date"] and m["present"]
            )
            total += voxels * 2 + voxels * present
        sizes.append(total)
    return max(sizes) / 2**20


def subset_archive(full: Path, n: int) -> Path:
    """The first ``n`` patients of ``full`` as a sibling folder of symbolic links (the archive scan follows
    links), with clinical.csv and ground_truth.json cut to those patients.

    Why not one ``synth`` per size: generating is slower than the pipeline itself on this machine, and the
    sizes then share their patients, so the growth ratios compare like with like.
    """
    truth = json.loads((full / "ground_truth.json").read_text())
    if n >= len(truth["patients"]):
        return full
    out = full.parent / f"{full.name}_first{n}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    keep = truth["patients"][:n]
    ids = {p["patient_id"] for p in keep}
    for pid in sorted(ids):
        (out / pid).symlink_to(full / pid, target_is_directory=True)
    lines = (full / "clinical.csv").read_text().splitlines()
    rows = [row for row in lines[1:] if row.split(",", 1)[0] in ids]
    (out / "clinical.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    (out / "ground_truth.json").write_text(json.dumps({**truth, "patients": keep}))
    return out


def _run_once(archive: Path, workers: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="hpd_bench_e2e_"))
    try:
        cmd = [
            *hpd_imaging_command(),
            "run",
            str(archive),
            "--out",
            str(out / "out"),
            "--workers",
            str(workers),
            "--quiet",
        ]
        result = run_monitored(cmd)
        result["command"] = " ".join(["hpd-imaging", *cmd[1:]])
        assert result["returncode"] == 0, (
            f"hpd-imaging run exited {result['returncode']}: {result['output_tail']}"
        )
        errors = (out / "out" / "errors.csv").read_text().strip().splitlines()
        n_error_rows = sum(1 for row in errors[1:] if ",error," in f",{row},")
        assert n_error_rows == 0, f"errors.csv has error rows: {errors[:5]}"
        run_json = json.loads((out / "out" / "run.json").read_text())
        result["stage_timings_s"] = run_json["timings_s"]["stages"]
        per_patient = run_json["timings_s"]["per_patient"]
        result["per_patient_mean_s"] = {
            k: round(float(np.mean([t.get(k, 0.0) for t in per_patient.values()])), 3)
            for k in ("load_s", "track_measure_s", "radiomics_s", "outputs_s")
        }
        result["n_patients_done"] = len(per_patient)
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(opts: BenchOptions) -> dict[str, Any]:
    started = timestamp()
    sizes = sorted(set(opts.e2e_sizes))
    base_rss = import_rss_mib()
    runs: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    full = synth_archive(
        f"e2e_{sizes[-1]}p_{opts.e2e_matrix}",
        ["--patients", str(sizes[-1]), "--followups", "1", "--matrix", str(opts.e2e_matrix), "--seed", "2"],
        opts.data_dir,
    )
    for n in sizes:
        archive = subset_archive(full, n)
        image_mib = patient_image_mib(archive, opts.e2e_matrix)
        for workers in (
            (opts.e2e_workers, 1) if n == next((s for s in sizes if s > 1), None) else (opts.e2e_workers,)
        ):
            # a few-minute run: the repeats are the sizes themselves; one run per (size, workers)
            log(f"{NAME}: {n} patients, --workers {workers}")
            r = _run_once(archive, workers)
            assert r["n_patients_done"] == n, f"{r['n_patients_done']} of {n} patients done"
            workers_rss = [p["peak_rss_mib"] for p in r["processes"] if p["kind"] == "worker"]
            driver_rss = max(
                (p["peak_rss_mib"] for p in r["processes"] if p["kind"] == "driver"), default=0.0
            )
            runs.append(
                {
                    "patients": n,
                    "workers": workers,
                    "wall_s": round(r["wall_s"], 2),
                    "patients_per_min": round(n / r["wall_s"] * 60, 2),
                    "driver_peak_rss_mib": driver_rss,
                    "worker_peak_rss_mib": workers_rss,
                    "largest_patient_image_mib": round(image_mib, 1),
                    "stage_timings_s": r["stage_timings_s"],
                    "per_patient_mean_s": r["per_patient_mean_s"],
                    "command": r["command"],
                }
            )
    main = [r for r in runs if r["workers"] == opts.e2e_workers]
    first, last = main[0], main[-1]
    for r in main:
        figures.append(
            figure(
                f"End to end {r['patients']} patients x 3 timepoints ({opts.e2e_matrix}x{opts.e2e_matrix}), "
                f"{opts.e2e_workers} workers: patients per minute",
                r["patients_per_min"],
                unit="patients/min",
                context=f"{r['wall_s']:.0f} s wall",
            )
        )
    if last["patients"] > first["patients"]:
        growth = last["wall_s"] / first["wall_s"]
        linear = last["patients"] / first["patients"]
        slope = np.polyfit([r["patients"] for r in main], [r["wall_s"] for r in main], 1)
        figures.append(
            figure(
                f"End to end time growth {first['patients']} -> {last['patients']} patients",
                growth,
                goal=f"<= {linear:g} (linear)",
                met=growth <= linear * 1.1,
                context=f"{slope[0]:.1f} s per extra patient + {slope[1]:.1f} s fixed (least squares)",
            )
        )
    single = [r for r in runs if r["workers"] == 1]
    if single and opts.e2e_workers > 1:
        twin = next(r for r in main if r["patients"] == single[0]["patients"])
        figures.append(
            figure(
                f"End to end {twin['patients']} patients: {opts.e2e_workers} workers vs 1 (patient level)",
                ratio(Timing([single[0]["wall_s"]]), Timing([twin["wall_s"]])),
                goal=f"ideal {opts.e2e_workers:g} on idle cores",
                context=f"{twin['wall_s']:.0f} s vs {single[0]['wall_s']:.0f} s, Dask LocalCluster start-up "
                "included",
            )
        )
    peaks = [(r["patients"], max(r["worker_peak_rss_mib"] or [r["driver_peak_rss_mib"]])) for r in main]
    work_mib = peaks[-1][1] - base_rss
    figures.append(
        figure(
            "Peak worker RSS above the imported code / largest patient's image data",
            work_mib / last["largest_patient_image_mib"],
            context=f"peak {peaks[-1][1]:.0f} MiB - imports {base_rss:.0f} MiB vs "
            f"{last['largest_patient_image_mib']:.0f} MiB (CT int16 + masks, all timepoints)",
        )
    )
    if len(peaks) > 1:
        figures.append(
            figure(
                f"Peak worker RSS at {peaks[-1][0]} patients / at {peaks[0][0]} patients",
                peaks[-1][1] / peaks[0][1],
                goal="~1 (no accumulation across patients)",
                met=peaks[-1][1] / peaks[0][1] <= 1.25,
                context=f"{peaks[-1][1]:.0f} MiB vs {peaks[0][1]:.0f} MiB",
            )
        )
    payload = {
        **result_head(
            NAME,
            "hpd-imaging run end to end: patients per minute, growth with archive size, peak memory",
            started,
        ),
        "options": {"e2e_sizes": sizes, "e2e_matrix": opts.e2e_matrix, "e2e_workers": opts.e2e_workers},
        "import_baseline_rss_mib": round(base_rss, 1),
        "runs": runs,
        "checks": {"exit_code_0_all_patients_done_no_error_rows": True},
        "figures": figures,
        "notes": [
            "One run per (size, workers): each run is itself minutes of work; growth ratios compare runs of "
            "the same invocation, so a busy machine shows up as noise in them (see machine.load_avg).",
            "Peak RSS = kernel VmHWM per process, sampled every 50 ms while the process lives.",
        ],
    }
    write_result(opts.results_dir, NAME, payload)
    return payload
