"""Benchmark 6: ``hpd-imaging run`` at the sizes users have, against the plain script a user would write.

Archives (``hpd-imaging synth``, generated once into benchmarks/_data/ and reused): ``real_patients`` patients
x 3 timepoints (pre-baseline, baseline, follow-up) of ``real_matrix`` x ``real_matrix`` CTs of ``real_slices``
slices (default 12 x 3 x 512x512x200, 1.2 mm), SEG masks, once uncompressed and once JPEG 2000 lossless.

Per compression, interleaved (ours, plain, ours, plain, ...; ``real_repeats`` rounds, default 1: each run is
minutes of work):

* ours: ``hpd-imaging run ARCHIVE --out TMP --workers W --quiet --config CFG`` where CFG is
  pipelines/default.yaml with the peritumoral ring switched off (``radiomics.ring_widths_mm: []``), so that
  both sides extract the same regions with the same pyradiomics parameter file (pipelines/radiomics_ct.yaml);
* plain: benchmarks/plain_script.py (SimpleITK ImageSeriesReader + highdicom SEG + pyradiomics on each
  baseline lesion) on a process pool of the same W processes.

Same answer first: every baseline lesion of the plain script must have our row with every feature equal
within 1e-6 relative (the check raises before any figure is written). Recorded from each run: wall time, CPU
seconds of the whole process tree (getrusage of the reaped children: load-independent work), peak RSS (kernel
VmHWM) of every process, and ours' per-stage and per-patient timings from its run.json. A separate in-process
profile of one patient says where its time and memory go (load_ct, load_masks with the bytes the masks hold,
radiomics). From the measured CPU seconds per patient, an extrapolation to 200 patients x 4 timepoints on 2
and on 32 cores, with its assumptions written into the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    PACKAGE_DIR,
    BenchOptions,
    Timing,
    figure,
    hpd_imaging_command,
    log,
    ratio,
    result_head,
    timestamp,
    tree_bytes,
    write_result,
)
from benchmarks.end_to_end import run_monitored
from benchmarks.real_data import generation_cost, real_archive

NAME = "real_size"
_REL_TOL = 1e-6
_PIPELINES = PACKAGE_DIR.parent / "pipelines"


# --------------------------------------------------------------------------------------------------
# running and watching a process tree
# --------------------------------------------------------------------------------------------------


def run_tree(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``; wall s, CPU s of the whole process tree, peak RSS (VmHWM) per process (the one
    process monitor, :func:`benchmarks.end_to_end.run_monitored`; the plain script's forked pool counts
    as workers)."""
    before = [round(x, 2) for x in os.getloadavg()]
    r = run_monitored(cmd, other_is_worker=True, tail_chars=3000)
    return {
        **r,
        "wall_s": round(r["wall_s"], 2),
        "cpu_s": round(r["cpu_s"], 2),
        "load_avg_before": before,
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


def _nice() -> list[str]:
    """No extra niceness: children inherit the benchmark's (start it with ``nice``, as the README says)."""
    return []


def ours_config(tmp: Path) -> Path:
    """pipelines/default.yaml with the ring off and every file reference absolute (it lives in tmp)."""
    import yaml

    cfg = yaml.safe_load((_PIPELINES / "default.yaml").read_text())
    cfg["radiomics"]["ring_widths_mm"] = []
    cfg["radiomics"]["params_file"] = str(
        _PIPELINES / cfg["radiomics"].get("params_file", "radiomics_ct.yaml")
    )
    resp = cfg.setdefault("response", {})
    resp["definitions_file"] = str(_PIPELINES / resp.get("definitions_file", "hpd_definitions.yaml"))
    path = tmp / "bench_config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_ours(archive: Path, workers: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hpd_bench_real_"))
    try:
        cmd = [
            *_nice(),
            *hpd_imaging_command(),
            "run",
            str(archive),
            "--out",
            str(tmp / "out"),
            "--workers",
            str(workers),
            "--quiet",
            "--config",
            str(ours_config(tmp)),
        ]
        r = run_tree(cmd)
        assert r["returncode"] == 0, f"hpd-imaging run exited {r['returncode']}: {r['output_tail']}"
        errors = (tmp / "out" / "errors.csv").read_text().strip().splitlines()
        bad = [row for row in errors[1:] if ",error," in f",{row},"]
        assert not bad, f"errors.csv has error rows: {bad[:5]}"
        run_json = json.loads((tmp / "out" / "run.json").read_text())
        r["stage_timings_s"] = run_json["timings_s"]["stages"]
        r["per_patient_s"] = run_json["timings_s"]["per_patient"]
        # per worker process cost as the run measured it (run.json "resources", issue 21), when this version
        # of hpd-imaging writes it; the process-tree monitor's figures are kept beside it either way
        r["run_json_resources"] = run_json.get("resources")
        import pandas as pd

        r["features"] = pd.read_parquet(tmp / "out" / "radiomics.parquet")
        return r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_plain(archive: Path, workers: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hpd_bench_plain_"))
    try:
        cmd = [
            *_nice(),
            sys.executable,
            "-m",
            "benchmarks.plain_script",
            str(archive),
            "--params",
            str(_PIPELINES / "radiomics_ct.yaml"),
            "--out",
            str(tmp / "plain.json"),
            "--workers",
            str(workers),
        ]
        r = run_tree(cmd)
        assert r["returncode"] == 0, f"plain script exited {r['returncode']}: {r['output_tail']}"
        r["result"] = json.loads((tmp / "plain.json").read_text())
        return r
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare_features(ours: Any, plain: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """Every plain lesion's features equal ours within 1e-6 relative; raises AssertionError otherwise.

    With ``strict=False`` a value difference is reported instead (``identical`` False, the worst values
    listed) so that the run's measurements can still be written before the benchmark fails; missing rows or
    features always raise.
    """
    rows = ours[ours["region"] == "lesion"] if "region" in ours.columns else ours
    worst = 0.0
    worst_name = ""
    n_lesions = 0
    n_values = 0
    over: list[tuple[float, str, float, float]] = []
    for pat in plain["patients"]:
        mine = rows[rows["patient_id"] == pat["patient_id"]]
        assert len(mine) == len(pat["features"]), (
            f"{pat['patient_id']}: {len(mine)} lesion rows of ours vs {len(pat['features'])} baseline lesions"
        )
        for label, feats in pat["features"].items():
            match = mine[mine["lesion_id"] == label]
            assert len(match) == 1, f"{pat['patient_id']} lesion {label}: {len(match)} rows of ours"
            row = match.iloc[0]
            for k, ref in feats.items():
                assert k in row.index, f"feature {k} missing from ours"
                got = row[k]
                assert got is not None and np.isfinite(got), f"{pat['patient_id']} {label} {k}: ours {got}"
                rel = abs(float(got) - ref) / max(abs(ref), 1e-12)
                if rel > _REL_TOL:
                    over.append((rel, f"{pat['patient_id']} {label} {k}", float(got), ref))
                if rel > worst:
                    worst, worst_name = rel, f"{pat['patient_id']} {label} {k}"
                n_values += 1
            n_lesions += 1
    over.sort(reverse=True)
    result = {
        "lesions": n_lesions,
        "values": n_values,
        "max_rel_diff": worst,
        "at": worst_name,
        "identical": worst <= _REL_TOL,
        "values_over_tolerance": len(over),
        "worst": [{"rel": r, "value": n, "ours": g, "plain": f} for r, n, g, f in over[:25]],
        # where the differences are: "patient lesion image-type_class" -> values over tolerance
        "over_by_lesion_and_class": dict(
            sorted(
                __import__("collections")
                .Counter(
                    " ".join(n.split()[:2]) + " " + "_".join(n.split()[2].split("_")[:2])
                    for _, n, _, _ in over
                )
                .items()
            )
        ),
    }
    if strict:
        assert worst <= _REL_TOL, f"ours differs from plain pyradiomics: {worst:.2e} relative at {worst_name}"
    return result


# --------------------------------------------------------------------------------------------------
# profile of one patient, in a fresh process (where its time and memory go)
# --------------------------------------------------------------------------------------------------

_PROFILE = r"""
import json, sys, time, resource
from pathlib import Path
from hpd_imaging.settings import load_config
from hpd_imaging.io import load_ct, load_masks
from hpd_imaging.radiomics import extract_lesion_features, load_params
import dataclasses
import numpy as np

def arrays(record):  # the numpy arrays a loaded record holds, whatever its fields are called
    if dataclasses.is_dataclass(record):
        values = [getattr(record, f.name) for f in dataclasses.fields(record)]
    else:
        values = list(vars(record).values())
    return [v for v in values if isinstance(v, np.ndarray)]

archive, pid = Path(sys.argv[1]), sys.argv[2]
truth = json.loads((archive / "ground_truth.json").read_text())
patient = next(p for p in truth["patients"] if p["patient_id"] == pid)
cfg = load_config(None)
out = {"exams": []}
base = None
for tp in patient["timepoints"]:
    files = sorted((archive / tp["ct_dir"]).iterdir())
    t = time.perf_counter(); ct = load_ct(files, cfg.loader); ct_s = time.perf_counter() - t
    masks = []
    t = time.perf_counter()
    if tp.get("mask_path"):
        masks = load_masks(archive / tp["mask_path"], ct, settings=cfg.loader)
    m_s = time.perf_counter() - t
    mask_bytes = sum(a.nbytes for m in masks for a in arrays(m))
    out["exams"].append({"role": tp["role"], "load_ct_s": ct_s, "load_masks_s": m_s, "n_masks": len(masks),
                         "ct_bytes": sum(a.nbytes for a in arrays(ct)), "mask_bytes": mask_bytes,
                         "mask_voxels": [max((int(np.count_nonzero(a)) for a in arrays(m) if a.dtype == bool),
                                             default=None) for m in masks]})
    if tp["role"] == "baseline":
        base = (ct, masks)
    else:
        del ct, masks
params = load_params(Path(sys.argv[3]))
ct, masks = base
t = time.perf_counter()
res = extract_lesion_features(ct, masks, params, workers=1)
out["radiomics_s"] = time.perf_counter() - t
out["radiomics_lesions"] = len(masks)
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("PROFILE" + json.dumps(out))
"""


def profile_patient(archive: Path, patient_id: str) -> dict[str, Any]:
    cmd = [
        *_nice(),
        sys.executable,
        "-c",
        _PROFILE,
        str(archive),
        patient_id,
        str(_PIPELINES / "radiomics_ct.yaml"),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("PROFILE"))
    return json.loads(line[len("PROFILE") :])


# --------------------------------------------------------------------------------------------------
# extrapolation
# --------------------------------------------------------------------------------------------------


def extrapolate(
    cpu_per_patient_s: float,
    load_share: float,
    fixed_wall_s: float,
    peak_worker_mib: float,
    measured_timepoints: int,
    gib_per_exam: float,
    serial_cpu_per_patient_s: float = 0.0,
) -> dict[str, Any]:
    """200 patients x 4 timepoints on 2 and on 32 cores, from the CPU seconds one measured patient costs.

    Assumptions (written into the result next to the figures): the cores are idle and the work is CPU-bound
    (one worker per core, per-patient work independent, so wall = patients x CPU per patient / cores + the
    fixed start-up and report); loading grows with the timepoints (4 / measured) while radiomics stays the
    baseline exam's; the disk delivers the archive at least as fast as it is consumed; a worker's peak
    memory does not grow with the patients it has processed (the end_to_end benchmark shows this).
    ``serial_cpu_per_patient_s``: the driver's own CPU seconds per patient (index, kinetics, tables, report,
    Dask start-up), which run before or after the workers' part and so add to the wall time at any number of
    cores; scaled with the patients (an upper bound: start-up does not grow).
    """
    tp_factor = 4 / measured_timepoints
    cpu4 = cpu_per_patient_s * (load_share * tp_factor + (1 - load_share))
    out: dict[str, Any] = {"cpu_per_patient_4tp_s": round(cpu4, 1)}
    for cores in (2, 32):
        serial = 200 * serial_cpu_per_patient_s
        wall = fixed_wall_s + serial + 200 * cpu4 / cores
        data_gib = 200 * 4 * gib_per_exam
        out[f"{cores}_cores"] = {
            "wall_min": round(wall / 60, 1),
            "patients_per_hour": round(200 / wall * 3600, 1),
            "memory_gib": round(cores * peak_worker_mib * (4 / measured_timepoints) / 1024, 1),
            "disk_mib_per_s_needed": round(data_gib * 1024 / (wall - fixed_wall_s - serial), 1),
        }
    out["assumptions"] = [
        "idle cores, one Dask worker per core, CPU-bound: wall = fixed + 200 x serial driver CPU-s per "
        "patient + 200 x worker CPU-s per patient / cores",
        f"worker CPU per patient {cpu_per_patient_s:.1f} s and serial driver CPU per patient "
        f"{serial_cpu_per_patient_s:.1f} s, from this run's CPU seconds (start-up included, so upper "
        f"bounds); load share {load_share:.2f} of a patient's time scales x{tp_factor:.2f} for 4 "
        "timepoints, radiomics (baseline exam only) does not",
        f"fixed part {fixed_wall_s:.0f} s: 0 when the driver's CPU was measured (it is in the serial part); "
        "else the wall seconds not spent in patients (Dask start-up, index, tables, report) as measured "
        "here, not scaled, and inflated by the machine's load",
        "memory: per-worker peak of this run scaled by 4/3 for a 4th timepoint's CT + masks (held at once "
        "today), times workers",
        f"disk: {gib_per_exam:.2f} GiB per exam read once; the throughput needed is the archive over the "
        "compute time",
    ]
    return out


# --------------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------------


def _worker_peaks(r: dict[str, Any]) -> list[float]:
    """Peak RSS (MiB) of each worker process, largest first: from run.json's ``resources.workers`` when the
    run wrote it (each worker's VmHWM after its patients), else from the process-tree monitor (VmHWM sampled
    every 50 ms)."""
    res = r.get("run_json_resources") or {}
    rows = [w for w in res.get("workers") or [] if w.get("peak_rss_mib") is not None]
    if rows:
        return sorted((float(w["peak_rss_mib"]) for w in rows), reverse=True)
    return _monitor_worker_peaks(r)


def _peak_source(r: dict[str, Any]) -> str:
    res = r.get("run_json_resources") or {}
    return "run.json resources.workers" if res.get("workers") else "process-tree monitor (VmHWM)"


def _monitor_worker_peaks(r: dict[str, Any]) -> list[float]:
    """Worker processes' peaks; with one worker both sides run in-process, so the driver is the worker."""
    kinds = ("worker",) if any(p["kind"] == "worker" for p in r["processes"]) else ("driver",)
    return sorted((p["peak_rss_mib"] for p in r["processes"] if p["kind"] in kinds), reverse=True)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _payload(
    opts: BenchOptions,
    started: str,
    runs: dict[str, Any],
    profiles: dict[str, Any],
    checks: dict[str, Any],
    figures: list[dict[str, Any]],
) -> dict[str, Any]:
    workers = opts.real_workers
    return {
        **result_head(
            NAME,
            "hpd-imaging run at real size vs the plain SimpleITK + highdicom + pyradiomics script",
            started,
        ),
        "options": {
            "real_patients": opts.real_patients,
            "real_distinct": opts.real_distinct,
            "data_dir": str(opts.data_dir),
            "real_matrix": opts.real_matrix,
            "real_slices": opts.real_slices,
            "real_compressions": list(opts.real_compressions),
            "real_workers": workers,
            "real_repeats": opts.real_repeats,
        },
        "runs": runs,
        "profile_one_patient": profiles,
        "checks": checks,
        "figures": figures,
        "notes": [
            "Ours runs with the default config minus the peritumoral ring (the plain script extracts lesions "
            "only); both use pipelines/radiomics_ct.yaml.",
            "Both sides run at the benchmark process's niceness on a machine shared with other jobs: compare "
            "ratios of the same run, not seconds across runs.",
            "CPU seconds: getrusage of every reaped descendant (Dask workers, process pools) -- independent "
            "of the machine's load, unlike wall time.",
        ],
    }


def run(opts: BenchOptions) -> dict[str, Any]:
    started = timestamp()
    workers = opts.real_workers
    runs: dict[str, dict[str, Any]] = {}
    figures: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    for compression in opts.real_compressions:
        archive = real_archive(opts, compression)
        truth = json.loads((archive / "ground_truth.json").read_text())
        n_pat = len(truth["patients"])
        n_tp = len(truth["patients"][0]["timepoints"])
        exam_bytes = sum(
            f.stat().st_size for f in (archive / truth["patients"][0]["timepoints"][0]["ct_dir"]).iterdir()
        )
        ours_t, plain_t = Timing(), Timing()
        ours_runs, plain_runs = [], []
        for i in range(max(1, opts.real_repeats)):
            log(f"{NAME} {compression}: round {i + 1}: hpd-imaging run ({n_pat} patients, {workers} workers)")
            o = run_ours(archive, workers)
            log(f"{NAME} {compression}: ours {o['wall_s']:.0f} s wall, {o['cpu_s']:.0f} CPU-s; plain script")
            p = run_plain(archive, workers)
            log(f"{NAME} {compression}: plain {p['wall_s']:.0f} s wall, {p['cpu_s']:.0f} CPU-s")
            checks[f"{compression}_round{i + 1}"] = compare_features(
                o.pop("features"), p["result"], strict=False
            )
            ours_t.times_s.append(o["wall_s"])
            plain_t.times_s.append(p["wall_s"])
            ours_runs.append(o)
            plain_runs.append(p)
        log(f"{NAME} {compression}: profile of one patient")
        profiles[compression] = profile_patient(archive, truth["patients"][0]["patient_id"])
        o, p = ours_runs[-1], plain_runs[-1]
        per = o["per_patient_s"]
        stage_means = {
            k: round(_mean([float(t.get(k, 0.0)) for t in per.values()]), 2)
            for k in ("load_s", "track_measure_s", "radiomics_s", "outputs_s")
        }
        plain_means = {
            k: round(_mean([float(x[k]) for x in p["result"]["patients"]]), 2)
            for k in ("load_s", "radiomics_s")
        }
        load_share = stage_means["load_s"] / max(sum(stage_means.values()), 1e-9)
        fixed = max(0.0, o["wall_s"] - sum(sum(float(v) for v in t.values()) for t in per.values()) / workers)
        wpeak = _worker_peaks(o)
        ppeak = _worker_peaks(p)
        m = opts.real_matrix
        label = f"{n_pat} patients x {n_tp} timepoints {m}x{m}x{opts.real_slices} {compression}"
        speed = ratio(plain_t, ours_t)
        figures += [
            figure(
                f"Real size {label}, {workers} workers: speed-up vs the plain script (wall)",
                speed,
                goal=">= 2, identical values",
                met=speed >= 2 and checks[f"{compression}_round1"]["identical"],
                context=f"{ours_t.median_s:.0f} s vs {plain_t.median_s:.0f} s; load (1 min) "
                f"{o['load_avg_before'][0]:.1f}-{p['load_avg_after'][0]:.1f}; values identical: "
                f"{checks[f'{compression}_round1']['identical']} "
                f"({checks[f'{compression}_round1']['values']} values, max rel diff "
                f"{checks[f'{compression}_round1']['max_rel_diff']:.1e})",
            ),
            figure(
                f"Real size {label}: CPU seconds, plain script / ours",
                p["cpu_s"] / o["cpu_s"],
                context=f"{o['cpu_s']:.0f} vs {p['cpu_s']:.0f} CPU-s ({o['cpu_s'] / n_pat:.1f} vs "
                f"{p['cpu_s'] / n_pat:.1f} per patient)",
            ),
            figure(
                f"Real size {label}: loading per patient, ours / plain (SimpleITK + highdicom)",
                stage_means["load_s"] / max(plain_means["load_s"], 1e-9),
                context=f"{stage_means['load_s']:.1f} s vs {plain_means['load_s']:.1f} s per patient "
                f"({n_tp} exams, every geometry check vs none)",
            ),
            figure(
                f"Real size {label}: radiomics per patient, plain / ours",
                plain_means["radiomics_s"] / max(stage_means["radiomics_s"], 1e-9),
                context=f"{stage_means['radiomics_s']:.1f} s vs {plain_means['radiomics_s']:.1f} s a patient",
            ),
            figure(
                f"Real size {label}: peak RSS per worker, ours",
                max(wpeak or [0.0]),
                unit="MiB",
                goal=f"<= 1536 (issue 21: 4 x 512x512x250; here {n_tp} x {m}x{m}x{opts.real_slices})",
                met=max(wpeak or [0.0]) <= 1536,
                context=f"workers {', '.join(f'{x:.0f}' for x in wpeak)} MiB ({_peak_source(o)}); plain "
                f"script's processes {', '.join(f'{x:.0f}' for x in ppeak)} MiB",
            ),
        ]
        driver_cpu = sum(float(x.get("cpu_s", 0.0)) for x in o["processes"] if x["kind"] == "driver")
        if driver_cpu > 0:  # load-independent: the driver's own CPU is the serial part, the rest the workers'
            ext = extrapolate(
                (o["cpu_s"] - driver_cpu) / n_pat,
                load_share,
                0.0,
                max(wpeak or [0.0]),
                n_tp,
                exam_bytes / 2**30,
                serial_cpu_per_patient_s=driver_cpu / n_pat,
            )
        else:  # an older monitor without per-process CPU: the wall-based fixed part
            ext = extrapolate(
                o["cpu_s"] / n_pat, load_share, fixed, max(wpeak or [0.0]), n_tp, exam_bytes / 2**30
            )
        ext["driver_cpu_s"] = round(driver_cpu, 1)
        for cores in (2, 32):
            e = ext[f"{cores}_cores"]
            figures.append(
                figure(
                    f"Extrapolated 200 patients x 4 timepoints ({compression}) on {cores} idle cores",
                    e["wall_min"],
                    unit="min",
                    context=f"{e['patients_per_hour']:.0f} patients/h; {e['memory_gib']:.0f} GiB for {cores} "
                    f"workers; disk {e['disk_mib_per_s_needed']:.0f} MiB/s (assumptions in the JSON)",
                )
            )
        runs[compression] = {
            "archive": archive.name,
            "patients": n_pat,
            "timepoints": n_tp,
            "exam_mib": round(exam_bytes / 2**20, 1),
            "ours": ours_runs,
            "plain": [
                {k: v for k, v in r.items() if k != "result"}
                | {
                    "per_patient_s": {
                        x["patient_id"]: {"load_s": x["load_s"], "radiomics_s": x["radiomics_s"]}
                        for x in r["result"]["patients"]
                    }
                }
                for r in plain_runs
            ],
            "archive_bytes": tree_bytes(archive),
            "generation_cost": generation_cost(opts, compression),
            "ours_per_patient_mean_s": stage_means,
            "plain_per_patient_mean_s": plain_means,
            "ours_stages_s": o["stage_timings_s"],
            "worker_peak_rss_mib": {
                "ours": wpeak,
                "ours_source": _peak_source(o),
                "ours_monitor": _monitor_worker_peaks(o),
                "plain": ppeak,
            },
            "fixed_wall_s": round(fixed, 1),
            "extrapolation": ext,
        }
        # written after each compression, so that a long run stopped later still leaves this one's figures
        write_result(opts.results_dir, NAME, _payload(opts, started, runs, profiles, checks, figures))
    payload = _payload(opts, started, runs, profiles, checks, figures)
    write_result(opts.results_dir, NAME, payload)
    different = {k: v for k, v in checks.items() if not v["identical"]}
    # same answer first: the measurements are kept (results/real_size.json) but the benchmark fails
    assert not different, "ours differs from plain pyradiomics: " + "; ".join(
        f"{k}: {v['values_over_tolerance']} values, worst {v['max_rel_diff']:.2e} at {v['at']}"
        for k, v in different.items()
    )
    return payload
