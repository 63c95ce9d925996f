"""Smoke test of the benchmark package: each benchmark at its smallest size, 1 repeat, into a temp folder.

Proves that the benchmarks run, write results/<name>.json with the documented schema, and that their
"same answer" assertions hold (ours == SimpleITK voxel for voxel; hull == brute-force diameter; our radiomics
== plain pyradiomics within 1e-6; scan_archive finds the ground-truth exams). The timings themselves are not
asserted: they mean nothing at these sizes. The end-to-end benchmark is smoke-tested through its process
monitor and data-size helpers only: a real ``hpd-imaging run`` takes tens of seconds (tests/pipeline
covers it).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS
from benchmarks._common import BenchOptions, synth_archive
from benchmarks.end_to_end import patient_image_mib, run_monitored
from benchmarks.summary import write_summary

FIGURE_KEYS = {"label", "value", "unit", "goal", "met", "context"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> BenchOptions:
    root = tmp_path_factory.mktemp("bench")
    return dataclasses.replace(
        BenchOptions.quick_defaults(),
        repeats=1,
        ct_matrix=128,
        ct_slices=24,
        archive_patients=1,
        archive_slice_mm=10.0,
        lesion_sizes_mm=(8.0,),
        lesion_spacing_mm=1.0,
        data_dir=root / "data",
        results_dir=root / "results",
    )


def _check_schema(payload: dict, results_dir: Path, name: str) -> None:
    on_disk = json.loads((results_dir / f"{name}.json").read_text())
    assert on_disk["name"] == name
    for key in ("title", "started", "finished", "machine", "options", "figures", "checks"):
        assert key in on_disk, key
    assert on_disk["figures"], "no figures"
    for f in on_disk["figures"]:
        assert set(f) == FIGURE_KEYS
        assert f["value"] > 0
    assert len(on_disk["machine"]["load_avg_1_5_15"]) == 3


@pytest.mark.parametrize("name", ["ct_load", "archive_index", "measure_diameters", "radiomics_overhead"])
def test_benchmark_runs_and_same_answer_holds(tiny: BenchOptions, name: str) -> None:
    payload = BENCHMARKS[name](tiny)
    _check_schema(payload, tiny.results_dir, name)
    if name == "ct_load":
        for case in payload["cases"]:
            assert case["checks"]["voxels_equal_simpleitk"] and case["checks"]["geometry_equal_simpleitk"]
            assert case["checks"]["shape_kji"] == [24, 128, 128]
    if name == "measure_diameters":
        d = payload["cases"][0]["max_3d_diameter_mm"]
        assert d["hull"] == pytest.approx(d["brute_force"], rel=1e-12)
        assert 7.0 < d["hull"] < 9.0  # an 8 mm lesion, sampled at 1 mm
    if name == "radiomics_overhead":
        block = payload["settings_blocks"][0]
        assert all(les["max_rel_diff"] <= 1e-6 for les in block["lesions"])
    summary = write_summary(tiny.results_dir).read_text()
    assert f"| {name} |" in summary


def test_synth_archive_is_reused_only_for_the_same_arguments(tiny: BenchOptions) -> None:
    args = ["--patients", "1", "--followups", "1", "--matrix", "32", "--slice-thickness-mm", "10"]
    first = synth_archive("reuse", args, tiny.data_dir)
    stamp = (first / "ground_truth.json").stat().st_mtime_ns
    assert synth_archive("reuse", args, tiny.data_dir) == first
    assert (first / "ground_truth.json").stat().st_mtime_ns == stamp  # not regenerated
    synth_archive("reuse", [*args[:-1], "8"], tiny.data_dir)
    assert (first / "ground_truth.json").stat().st_mtime_ns != stamp  # other size: regenerated
    # largest patient's images: 3 exams x 30 slices x 32 x 32 x (2 bytes of CT + 1 byte per present lesion)
    truth = json.loads((first / "ground_truth.json").read_text())
    n_present = sum(m["present"] for les in truth["patients"][0]["lesions"] for m in les["measurements"])
    expected = (3 * 30 * 32 * 32 * 2 + n_present * 30 * 32 * 32) / 2**20
    assert patient_image_mib(first, 32) == pytest.approx(expected)


def test_process_monitor_sees_the_child_peak_memory() -> None:
    code = (
        "import multiprocessing as mp, numpy as np\n"
        "def work():\n    a = np.ones(200 * 2**20 // 8); a += 1\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('spawn').Process(target=work); p.start(); p.join()\n"
    )
    result = run_monitored([sys.executable, "-c", code])
    assert result["returncode"] == 0
    workers = [p for p in result["processes"] if p["kind"] == "worker"]
    assert workers and max(p["peak_rss_mib"] for p in workers) >= 200
    driver = [p for p in result["processes"] if p["kind"] == "driver"]
    assert driver and driver[0]["peak_rss_mib"] < 200
