"""benchmarks/real_size.py: its same-answer check, its config for ours, its extrapolation arithmetic, and
(slow) the whole benchmark at a tiny size (ours vs the plain script, values identical, run.json stages
recorded, a cloned patient read as a patient of its own)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks._common import BenchOptions
from benchmarks.real_size import compare_features, extrapolate, ours_config


def _plain(value: float) -> dict:
    return {"patients": [{"patient_id": "P1", "features": {"L1": {"original_firstorder_Mean": value}}}]}


def _ours(value: float, region: str = "lesion") -> pd.DataFrame:
    return pd.DataFrame(
        [{"patient_id": "P1", "lesion_id": "L1", "region": region, "original_firstorder_Mean": value}]
    )


def test_compare_features_accepts_equal_and_refuses_different_values() -> None:
    got = compare_features(_ours(100.0 * (1 + 5e-7)), _plain(100.0))
    assert got["lesions"] == 1 and got["values"] == 1
    assert got["max_rel_diff"] == pytest.approx(5e-7, rel=1e-6)
    with pytest.raises(AssertionError, match=r"differs from plain pyradiomics: 2\.00e-06 relative at P1 L1"):
        compare_features(_ours(100.0 * (1 + 2e-6)), _plain(100.0))


def test_compare_features_refuses_missing_rows_and_features() -> None:
    with pytest.raises(AssertionError, match="0 lesion rows of ours vs 1 baseline lesions"):
        compare_features(_ours(1.0, region="ring5mm"), _plain(1.0))
    plain = _plain(1.0)
    plain["patients"][0]["features"]["L1"]["original_glcm_Idm"] = 0.5
    with pytest.raises(AssertionError, match="feature original_glcm_Idm missing from ours"):
        compare_features(_ours(1.0), plain)
    none_value = _ours(1.0)
    none_value["original_firstorder_Mean"] = None
    with pytest.raises(AssertionError, match="ours None"):
        compare_features(none_value.astype(object), _plain(1.0))


def test_extrapolation_worked_example() -> None:
    # 30 CPU-s per patient at 3 timepoints, 40 % of it loading: 4 timepoints = 30 * (0.4 * 4/3 + 0.6) = 34 s;
    # 2 cores: 60 + 200 * 34 / 2 = 3460 s = 57.7 min; 32 cores: 60 + 212.5 = 272.5 s = 4.5 min
    e = extrapolate(30.0, 0.4, 60.0, 900.0, 3, 0.1)
    assert e["cpu_per_patient_4tp_s"] == pytest.approx(34.0)
    assert e["2_cores"]["wall_min"] == pytest.approx(57.7)
    assert e["32_cores"]["wall_min"] == pytest.approx(4.5)
    # memory: 900 MiB x 4/3 = 1200 MiB per worker; 32 workers = 37.5 GiB
    assert e["32_cores"]["memory_gib"] == pytest.approx(37.5)
    # disk: 200 x 4 x 0.1 GiB = 80 GiB over 212.5 s of compute
    assert e["32_cores"]["disk_mib_per_s_needed"] == pytest.approx(80 * 1024 / 212.5, abs=0.1)
    assert any("idle cores" in a for a in e["assumptions"])
    # a serial driver part of 2 CPU-s per patient adds 400 s at any number of cores: 2 cores 0 + 400 + 3400
    # = 3800 s = 63.3 min; 32 cores 400 + 212.5 = 612.5 s = 10.2 min; disk over the workers' 212.5 s only
    s = extrapolate(30.0, 0.4, 0.0, 900.0, 3, 0.1, serial_cpu_per_patient_s=2.0)
    assert s["2_cores"]["wall_min"] == pytest.approx(63.3)
    assert s["32_cores"]["wall_min"] == pytest.approx(10.2)
    assert s["32_cores"]["disk_mib_per_s_needed"] == pytest.approx(80 * 1024 / 212.5, abs=0.1)


def test_worker_peaks_prefer_run_json_and_fall_back_to_the_monitor() -> None:
    from benchmarks.real_size import _peak_source, _worker_peaks

    procs = [("driver", 900.0), ("worker", 700.0), ("worker", 800.0)]
    monitored = {"processes": [{"kind": k, "peak_rss_mib": v} for k, v in procs]}
    assert _worker_peaks(monitored) == [800.0, 700.0]
    assert _peak_source(monitored).startswith("process-tree monitor")
    workers = [{"pid": 1, "peak_rss_mib": 650.5}, {"pid": 2, "peak_rss_mib": 1200.0}]
    with_json = {**monitored, "run_json_resources": {"workers": workers}}
    assert _worker_peaks(with_json) == [1200.0, 650.5]
    assert _peak_source(with_json) == "run.json resources.workers"
    # a run.json without the resources block (an older hpd-imaging) falls back to the monitor
    assert _worker_peaks({**monitored, "run_json_resources": None}) == [800.0, 700.0]
    # --workers 1: hpd-imaging and the plain script run in-process, so the driver holds the patients
    assert _worker_peaks({"processes": [{"kind": "driver", "peak_rss_mib": 900.0}]}) == [900.0]


def test_ours_config_is_the_default_without_ring_and_loads(tmp_path: Path) -> None:
    from hpd_imaging.settings import load_config

    cfg = load_config(ours_config(tmp_path))
    assert tuple(cfg.radiomics.ring_widths_mm) == ()
    assert Path(cfg.radiomics.params_file).is_absolute()
    assert Path(cfg.radiomics.params_file).name == "radiomics_ct.yaml"
    assert cfg.radiomics.enabled


@pytest.mark.slow  # synth of a tiny archive + transcoding + 2 runs per side: ~2 min on 2 shared cores
def test_real_size_benchmark_tiny(tmp_path: Path) -> None:
    from benchmarks.real_size import run

    opts = dataclasses.replace(
        BenchOptions.quick_defaults(),
        real_patients=3,
        real_distinct=2,
        real_matrix=64,
        real_slices=24,
        real_workers=1,
        data_dir=tmp_path / "data",
        results_dir=tmp_path / "results",
    )
    payload = run(opts)
    on_disk = json.loads((tmp_path / "results" / "real_size.json").read_text())
    assert on_disk["name"] == "real_size"
    for compression in ("none", "jpeg2000"):
        check = payload["checks"][f"{compression}_round1"]
        assert check["lesions"] >= 2 and check["max_rel_diff"] <= 1e-6
        run_ = payload["runs"][compression]
        assert run_["patients"] == 3 and run_["timepoints"] == 3
        # the copy of the first patient is a patient of its own, with the original's values (checked above)
        assert set(run_["ours"][0]["per_patient_s"]) == {"SYN001", "SYN002", "SYN001C1"}
        assert {"index_s", "report_s"} <= set(run_["ours"][0]["stage_timings_s"])
        assert run_["ours"][0]["cpu_s"] > 0
        prof = payload["profile_one_patient"][compression]
        assert len(prof["exams"]) == 3 and prof["radiomics_s"] > 0
        assert prof["exams"][0]["ct_bytes"] >= 64 * 64 * 24 * 2  # the int16 HU volume at least
        # what making the archive cost, recorded when it was made (reused later with --data-dir)
        cost = run_["generation_cost"]
        assert cost["synth"]["step"] == "synth" and cost["synth"]["wall_s"] > 0 and cost["synth"]["cpu_s"] > 0
        assert cost["synth"]["peak_rss_mib"] and cost["clone"]["bytes"] > 0
        assert ("transcode" in cost) == (compression == "jpeg2000")
        assert run_["archive_bytes"] == cost["clone"]["bytes"]  # the archive run is the one the clone made
        if compression == "none":  # 3 patients (the originals' links followed) > the 2 synthesised
            assert run_["archive_bytes"] > cost["synth"]["bytes"]
        peaks = run_["worker_peak_rss_mib"]
        assert peaks["ours"] and peaks["plain"] and all(x > 50 for x in peaks["ours"] + peaks["plain"])
        assert len(run_["ours"][0]["load_avg_before"]) == 3
    from benchmarks.summary import summary_markdown

    text = summary_markdown([on_disk])
    assert "| 3 x 3 none | ours |" in text and "| 3 x 3 jpeg2000 | plain |" in text
    # the transcoded archive holds the same voxels as the synthesised one
    import numpy as np
    import pydicom

    src = sorted((tmp_path / "data").glob("real_*_none"))[0]
    dst = sorted((tmp_path / "data").glob("real_*_jpeg2000"))[0]
    one = sorted(src.rglob("CT/*"))[0]
    a = pydicom.dcmread(one)
    b = pydicom.dcmread(dst / one.relative_to(src))
    assert b.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    assert np.array_equal(a.pixel_array, b.pixel_array)
