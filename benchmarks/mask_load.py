"""Benchmark: reading a DICOM SEG onto the CT grid (issue 21: masks as bounding-box crops).

``hpd_imaging.io.load_masks`` (every check: Frame of Reference, lattice, lesion rules; each segment read as
its bounding-box crop from only the frames of its extent) against what a user would otherwise write with
highdicom on the same files, as the plain script of benchmarks/plain_script.py does: ``segread`` and
``get_pixels_by_source_instance`` for every segment on the CT's slices (whole-grid arrays, one per
segment, matched to the slices by SOP Instance UID, no geometry check).

Same answer: every segment of ours, put back on the whole grid, equals highdicom's array voxel for voxel.
The CT is loaded once, outside the timing (both readers need it or its UIDs). Memory: the bytes each reader
keeps per exam (our crops vs the whole-grid arrays) are reported next to the times.

Second part, the memory budget's large case (issue 21): one 512x512x400 CT (0.8 x 0.8 x 1 mm) whose SEG holds
a 7-litre ellipsoid. ``hpd-imaging run`` with the default budget must either process it within the budget or
skip what does not fit with an error row; the peak RSS of the run and the error rows are recorded, once with
the default settings and once with the 1-litre radiomics region rule lifted, so that the budget decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    BenchOptions,
    figure,
    log,
    ratio,
    result_head,
    synth_archive,
    time_interleaved,
    timestamp,
    write_result,
)
from benchmarks.real_data import real_synth_args

NAME = "mask_load"


def mask_archive(opts: BenchOptions) -> Path:
    """One patient, 2 exams of ``real_matrix`` x ``real_slices`` (synth's 240 mm scan) with SEG masks."""
    return synth_archive(
        f"mask_{opts.real_matrix}x{opts.real_slices}", real_synth_args(opts, 1), opts.data_dir
    )


def load_ours(seg_path: Path, ct: Any) -> list[Any]:
    from hpd_imaging.io import load_masks

    return load_masks(seg_path, ct)


def load_highdicom(seg_path: Path, sop_uids: list[str]) -> dict[str, np.ndarray]:
    """The plain script's reader: every segment as a whole-grid uint8 array on the CT's slices."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    numbers = list(seg.segment_numbers)
    arr = seg.get_pixels_by_source_instance(
        sop_uids, segment_numbers=numbers, combine_segments=False, assert_missing_frames_are_empty=True
    )
    return {
        str(seg.get_segment_description(n).segment_label): np.ascontiguousarray(arr[..., i], dtype=np.uint8)
        for i, n in enumerate(numbers)
    }


def _check_same(ours: list[Any], theirs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every segment equal voxel for voxel on the whole grid; raises AssertionError otherwise."""
    by_label = {m.label: m for m in ours}
    assert set(by_label) == set(theirs), f"segments: ours {sorted(by_label)}, highdicom {sorted(theirs)}"
    for label, array in theirs.items():
        assert np.array_equal(by_label[label].to_full(), array.astype(bool)), f"segment {label} differs"
    return {
        "segments": len(theirs),
        "voxels": {label: int(np.count_nonzero(a)) for label, a in sorted(theirs.items())},
        "voxels_equal_highdicom": True,
        "ours_bytes": int(sum(m.crop.nbytes for m in ours)),
        "highdicom_bytes": int(sum(a.nbytes for a in theirs.values())),
    }


def bench_exam(ct_dir: Path, seg_path: Path, repeats: int) -> dict[str, Any]:
    """Time both readers on one exam (interleaved), check they agree; the figures of this exam."""
    from hpd_imaging.io import load_ct

    ct = load_ct(ct_dir)
    sop_uids = [str(u) for u in ct.provenance["sop_instance_uids"]]
    candidates = {
        "hpd_imaging_load_masks": lambda: load_ours(seg_path, ct),
        "highdicom_full_grid": lambda: load_highdicom(seg_path, sop_uids),
    }
    timings, last = time_interleaved(candidates, repeats)
    checks = _check_same(last["hpd_imaging_load_masks"], last["highdicom_full_grid"])
    ours, theirs = timings["hpd_imaging_load_masks"], timings["highdicom_full_grid"]
    shape = "x".join(str(n) for n in ct.geometry.shape[::-1])
    return {
        "ct_dir": str(ct_dir),
        "seg": str(seg_path),
        "timings": {k: v.as_json() for k, v in timings.items()},
        "checks": checks,
        "figures": [
            figure(
                f"SEG load {shape}, {checks['segments']} segments: ours (crops) / highdicom (whole grid)",
                ratio(ours, theirs),
                goal="<= 1.0",
                met=ratio(ours, theirs) <= 1.0,
                context=f"{ours.median_s * 1000:.0f} ms vs {theirs.median_s * 1000:.0f} ms; kept "
                f"{checks['ours_bytes'] / 2**20:.2f} MiB vs {checks['highdicom_bytes'] / 2**20:.1f} MiB",
            )
        ],
    }


def big_region_archive(data_dir: Path, litres: float = 7.0, slices: int = 400, matrix: int = 512) -> Path:
    """One patient, one exam: a ``matrix`` x ``matrix`` x ``slices`` CT (0.8 mm pixels, 1 mm slices; a water
    cylinder in air) with a SEG of one ellipsoid of ``litres`` (semi-axes 1.2 : 1.2 : 1)."""
    import datetime as dt

    from hpd_imaging.synth.dicom_writer import ExamIds, SegmentSpec, make_uid, write_ct_series, write_seg
    from hpd_imaging.synth.render import RESCALE_INTERCEPT, ExamGrid

    out = data_dir / f"big_region_{litres:g}l_{matrix}x{slices}"
    if (out / "done").exists():
        return out
    px, dz = 0.8, 1.0
    half = matrix * px / 2
    grid = ExamGrid(
        shape=(slices, matrix, matrix),
        spacing_mm=(px, px, dz),
        origin_mm=(-half + px / 2, -half + px / 2, 0.0),
    )
    c = (litres * 1e6 * 3 / (4 * np.pi * 1.2 * 1.2)) ** (1 / 3)  # semi-axes a = b = 1.2 c (mm)
    a = 1.2 * c
    y, x = np.mgrid[:matrix, :matrix] * px - half + px / 2
    body = x**2 + y**2 <= (0.95 * half) ** 2
    z = np.arange(slices) * dz - slices * dz / 2
    stored = np.zeros((slices, matrix, matrix), dtype=np.uint16)
    mask = np.zeros((slices, matrix, matrix), dtype=bool)
    for k in range(slices):
        inside = (x / a) ** 2 + (y / a) ** 2 + (z[k] / c) ** 2 <= 1.0
        mask[k] = inside
        stored[k] = np.where(inside, 60, np.where(body, 20, -1000)) - RESCALE_INTERCEPT
    date = dt.date(2024, 1, 10)
    ids = ExamIds(
        patient_id="BIG001",
        patient_name="SYNTHETIC^BIG001",
        birth_date="19600101",
        sex="F",
        age=64,
        scan_date=date,
        study_uid=make_uid("big", "study"),
        series_uid=make_uid("big", "series"),
        frame_of_reference_uid=make_uid("big", "for"),
        accession="A1",
        uid_salt="big",
    )
    exam = out / "BIG001" / "20240110"
    datasets = write_ct_series(exam / "CT", stored, grid, ids)
    del stored
    segment = SegmentSpec(
        number=1,
        label="L01",
        organ="liver",
        mask=mask,
        tracking_id="L01",
        tracking_uid=make_uid("big", "L01"),
    )
    write_seg(exam / "SEG" / "seg.dcm", datasets, [segment], ids)
    (out / "truth.json").write_text(
        json.dumps({"voxels": int(mask.sum()), "litres": mask.sum() * px * px * dz / 1e6})
    )
    (out / "done").write_text("")
    return out


#: the issue's memory target: one patient, 4 timepoints (pre-baseline, baseline, 2 follow-ups), 512x512x250
PEAK_ARGS = [
    "--patients", "1", "--followups", "2", "--matrix", "512", "--slice-thickness-mm", "0.96",
    "--compression", "none", "--seed", "21", "--workers", "1",
]  # fmt: skip


def peak_archive(data_dir: Path) -> Path:
    """The 4 x 512x512x250 patient (synth: ~8 minutes and ~6.8 GB once; reused afterwards)."""
    return synth_archive("mask_peak_1p_4x512x250", PEAK_ARGS, data_dir)


def run_big_region(archive: Path, lift_region_rule: bool) -> dict[str, Any]:
    """``hpd-imaging run`` (1 worker, default settings, radiomics_ct.yaml, no rings) on ``archive``: peak RSS
    per process, wall time, exit code and the error rows."""
    import shutil
    import tempfile

    import yaml

    from benchmarks._common import hpd_imaging_command
    from benchmarks.end_to_end import run_monitored
    from benchmarks.real_size import ours_config

    tmp = Path(tempfile.mkdtemp(prefix="hpd_bench_big_"))
    try:
        config = ours_config(tmp)
        if lift_region_rule:
            cfg = yaml.safe_load(config.read_text())
            cfg.setdefault("loader", {})["max_radiomics_region_mm3"] = 1e9
            config.write_text(yaml.safe_dump(cfg))
        cmd = [
            "nice",
            *hpd_imaging_command(),
            "run",
            str(archive),
            "--out",
            str(tmp / "out"),
            "--workers",
            "1",
            "--quiet",
            "--config",
            str(config),
        ]
        r = run_monitored(cmd)
        errors = (tmp / "out" / "errors.csv").read_text() if (tmp / "out" / "errors.csv").exists() else ""
        lesions = (tmp / "out" / "lesions.csv").read_text() if (tmp / "out" / "lesions.csv").exists() else ""
        return {
            "lift_region_rule": lift_region_rule,
            "returncode": r["returncode"],
            "wall_s": r["wall_s"],
            "peak_rss_mib": max(p["peak_rss_mib"] for p in r["processes"]),
            "processes": r["processes"],
            "errors_csv": errors,
            "lesions_csv": lesions,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(opts: BenchOptions) -> dict[str, Any]:
    started = timestamp()
    archive = mask_archive(opts)
    truth = json.loads((archive / "ground_truth.json").read_text())
    cases = []
    for tp in truth["patients"][0]["timepoints"]:
        if not tp.get("mask_path"):
            continue
        log(f"{NAME}: {tp['scan_date']}, {opts.repeats} repeats")
        cases.append(bench_exam(archive / tp["ct_dir"], archive / tp["mask_path"], opts.repeats))
    figures = [f for c in cases for f in c["figures"]]
    peak: dict[str, Any] = {}
    if not opts.quick:  # the 4 x 512x512x250 patient (a smoke run skips it: minutes of synth)
        peak = run_big_region(peak_archive(opts.data_dir), False)  # the same monitored run, default settings
    if peak:
        figures.append(
            figure(
                "1 patient x 4 timepoints of 512x512x250 (SEG, radiomics_ct.yaml, 1 worker): peak RSS",
                peak["peak_rss_mib"],
                unit="MiB",
                goal="<= 1536",
                met=peak["peak_rss_mib"] <= 1536,
                context=f"exit {peak['returncode']}, {peak['wall_s']:.0f} s; the whole run in one process "
                "(driver = worker), so this is the worker's peak plus the report",
            )
        )
    big = (
        big_region_archive(opts.data_dir, litres=0.02, slices=48, matrix=128)  # smoke run: same code, small
        if opts.quick
        else big_region_archive(opts.data_dir)
    )
    truth_big = json.loads((big / "truth.json").read_text())
    big_runs = []
    for lift in (False, True):
        log(f"{NAME}: 7-litre case, region rule {'lifted' if lift else 'default'}")
        r = run_big_region(big, lift)
        big_runs.append(r)
        rows = [line for line in r["errors_csv"].splitlines()[1:] if line.strip()]
        figures.append(
            figure(
                f"512x512x400 CT with a {truth_big['litres']:.1f}-litre region"
                f"{' (1-litre radiomics rule lifted)' if lift else ''}: peak RSS of the run",
                r["peak_rss_mib"],
                unit="MiB",
                goal="<= 2048 (budget 1536 + interpreter); what does not fit is an error row",
                met=r["returncode"] in (0, 1) and r["peak_rss_mib"] <= 1536 + 512,
                context=f"exit {r['returncode']}, {len(rows)} error row(s): "
                + "; ".join(row[:160] for row in rows[:2]),
            )
        )
    payload = {
        **result_head(NAME, "DICOM SEG reading: ours (bounding-box crops) vs highdicom whole-grid", started),
        "big_region": {"truth": truth_big, "runs": big_runs},
        "peak_4x512x250": {k: v for k, v in peak.items() if k != "lesions_csv"},
        "options": {"repeats": opts.repeats, "matrix": opts.real_matrix, "slices": opts.real_slices},
        "cases": cases,
        "checks": {c["seg"]: c["checks"] for c in cases},
        "figures": figures,
        "notes": [
            "CT loaded once outside the timing; warm page cache for both readers.",
            "Timed interleaved (ours, highdicom, ours, ...); figures are ratios of medians.",
            "highdicom as the plain script calls it: get_pixels_by_source_instance, no geometry check.",
        ],
    }
    write_result(opts.results_dir, NAME, payload)
    return payload
