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

from benchmarks import BENCHMARKS, end_to_end
from benchmarks import _common as bench_common
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
        ct_compressions=("none",),  # the JPEG 2000 path differs only in the decoder (tests/io cover it)
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


@pytest.mark.slow  # two `hpd-imaging synth` subprocesses (tiny archives): ~15 s on 2 idle cores
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


def test_synth_archive_is_reused_only_for_the_same_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> dict:  # stands in for `hpd-imaging synth OUT ARGS`
        calls.append(cmd)
        out = Path(cmd[cmd.index("synth") + 1])
        out.mkdir(parents=True)
        (out / "ground_truth.json").write_text("{}")
        return {"returncode": 0, "wall_s": 2.0, "cpu_s": 3.0, "processes": [{"peak_rss_mib": 99.0}]}

    monkeypatch.setattr(end_to_end, "run_monitored", fake_run)
    args = ["--patients", "1", "--matrix", "32"]
    first = synth_archive("reuse", args, tmp_path)
    cost = bench_common.read_cost(first)  # what generating it cost, kept beside the archive
    assert cost is not None and (cost["step"], cost["wall_s"], cost["cpu_s"]) == ("synth", 2.0, 3.0)
    assert cost["peak_rss_mib"] == [99.0] and cost["bytes"] == 2  # "{}", not the stamps
    assert synth_archive("reuse", args, tmp_path) == first
    assert len(calls) == 1  # same arguments: reused
    synth_archive("reuse", [*args[:-1], "64"], tmp_path)
    assert len(calls) == 2 and calls[1][-3:-2] == ["64"]  # other size: regenerated
    assert calls[0][calls[0].index("synth") + 2 :][:4] == args


def test_patient_image_size_counts_ct_and_masks_of_every_timepoint(tiny: BenchOptions) -> None:
    # the ct_load case's archive (reused when that case ran first; made here when it was deselected, as in
    # the quick tier `-m "not slow"`, where this test used to fail on a missing folder)
    archive = bench_common.ct_archive(tiny, "none")
    truth = json.loads((archive / "ground_truth.json").read_text())
    voxels = tiny.ct_slices * tiny.ct_matrix**2
    n_present = sum(m["present"] for les in truth["patients"][0]["lesions"] for m in les["measurements"])
    # 3 exams of int16 CT + one boolean full-grid mask per lesion present at an exam
    assert patient_image_mib(archive, tiny.ct_matrix) == pytest.approx((3 * 2 + n_present) * voxels / 2**20)


def test_process_monitor_sees_the_child_peak_memory(tmp_path: Path) -> None:
    # the child stays alive a moment after its peak, like a Dask worker between tasks: the monitor reads the
    # kernel high-water mark while the process lives (growth in a process's last 50 ms would be missed)
    code = (
        "import multiprocessing as mp, time, numpy as np\n"
        "def work():\n    a = np.ones(200 * 2**20 // 8); a += 1; time.sleep(0.5)\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('spawn').Process(target=work); p.start(); p.join()\n"
        "    raise SystemExit(p.exitcode)\n"
    )
    script = tmp_path / "child_peak.py"  # spawn re-imports __main__: it must be a file
    script.write_text(code)
    result = run_monitored([sys.executable, str(script)])
    assert result["returncode"] == 0
    workers = [p for p in result["processes"] if p["kind"] == "worker"]
    assert workers and max(p["peak_rss_mib"] for p in workers) >= 200
    driver = [p for p in result["processes"] if p["kind"] == "driver"]
    assert driver and driver[0]["peak_rss_mib"] < 200


@pytest.mark.slow  # a tiny synth archive, a tiny big-region case and two `hpd-imaging run`s: ~1-2 minutes
def test_mask_load_benchmark_runs_and_same_answer_holds(tiny: BenchOptions) -> None:
    payload = BENCHMARKS["mask_load"](tiny)
    _check_schema(payload, tiny.results_dir, "mask_load")
    for checks in payload["checks"].values():
        assert checks["voxels_equal_highdicom"] and checks["ours_bytes"] < checks["highdicom_bytes"]
    runs = payload["big_region"]["runs"]
    assert [r["lift_region_rule"] for r in runs] == [False, True]
    assert all(r["returncode"] == 0 for r in runs)  # small enough to fit the default budget: no error rows


def test_process_monitor_splits_cpu_seconds_by_process(tmp_path: Path) -> None:
    # the driver burns ~0.4 s of CPU itself, the child ~0.8 s: the per-process CPU tells them apart, and the
    # tree's total (getrusage of reaped children) holds both
    code = (
        "import multiprocessing as mp, time\n"
        "def spin(s):\n    t = time.process_time()\n    while time.process_time() - t < s: pass\n"
        "def work():\n    spin(0.8); time.sleep(0.3)\n"
        "if __name__ == '__main__':\n"
        "    spin(0.4)\n"
        "    p = mp.get_context('spawn').Process(target=work); p.start(); p.join()\n"
        "    time.sleep(0.3)\n"
    )
    script = tmp_path / "cpu_split.py"
    script.write_text(code)
    result = run_monitored([sys.executable, str(script)])
    driver = next(p for p in result["processes"] if p["kind"] == "driver")
    worker = next(p for p in result["processes"] if p["kind"] == "worker")
    assert 0.4 <= driver["cpu_s"] < 0.8 + 0.5  # its spin plus interpreter start-up, never the child's work
    assert worker["cpu_s"] >= 0.8
    assert result["cpu_s"] >= driver["cpu_s"] + 0.8
