"""Benchmark: reading a DICOM SEG onto the CT grid (issue 21: masks as bounding-box crops).

``hpd_imaging.io.load_masks`` (every check: Frame of Reference, lattice, lesion rules; each segment read as
its bounding-box crop from only the frames of its extent) against what a user would otherwise write with
highdicom on the same files, as the plain script of benchmarks/plain_script.py does: ``segread`` and
``get_pixels_by_source_instance`` for every segment on the CT's slices (whole-grid arrays, one per
segment, matched to the slices by SOP Instance UID, no geometry check).

Same answer: every segment of ours, put back on the whole grid, equals highdicom's array voxel for voxel.
The CT is loaded once, outside the timing (both readers need it or its UIDs). Memory: the bytes each reader
keeps per exam (our crops vs the whole-grid arrays) are reported next to the times.
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

NAME = "mask_load"


def mask_archive(opts: BenchOptions) -> Path:
    """One patient, 2 exams of ``real_matrix`` x ``real_slices`` (synth's 240 mm scan) with SEG masks."""
    return synth_archive(
        f"mask_{opts.real_matrix}x{opts.real_slices}",
        [
            "--patients",
            "1",
            "--followups",
            "1",
            "--matrix",
            str(opts.real_matrix),
            "--slice-thickness-mm",
            f"{240.0 / opts.real_slices:g}",
            "--compression",
            "none",
            "--seed",
            "21",
        ],
        opts.data_dir,
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
    payload = {
        **result_head(NAME, "DICOM SEG reading: ours (bounding-box crops) vs highdicom whole-grid", started),
        "options": {"repeats": opts.repeats, "matrix": opts.real_matrix, "slices": opts.real_slices},
        "cases": cases,
        "checks": {c["seg"]: c["checks"] for c in cases},
        "figures": [f for c in cases for f in c["figures"]],
        "notes": [
            "CT loaded once outside the timing; warm page cache for both readers.",
            "Timed interleaved (ours, highdicom, ours, ...); figures are ratios of medians.",
            "highdicom as the plain script calls it: get_pixels_by_source_instance, no geometry check.",
        ],
    }
    write_result(opts.results_dir, NAME, payload)
    return payload
