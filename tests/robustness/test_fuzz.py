"""Fixed-seed fuzz runs: every mutated input ends in a valid result or a clear HpdImagingError.

The harness (tools.fuzz) runs each case in a child process under a memory budget (RLIMIT_AS) and a
per-case time limit; a case fails when a reader raises anything but an HpdImagingError naming the file, when
the archive scan raises at all, when MemoryError appears (a guard is missing), or on a hang or crash.
The long run is ``uv run python -m tools.fuzz --cases 100000`` (docs/robustness.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tools.fuzz.harness import FuzzReport, run_fuzz

log = logging.getLogger(__name__)

N_SYNTHETIC_CASES = 1000
N_REAL_CASES = 200
SEED = 0


def _explain(report: FuzzReport) -> str:
    return "\n".join(json.dumps(f, default=str)[:800] for f in report.failures[:10])


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory: pytest.TempPathFactory, fuzz_summaries: list[str]) -> FuzzReport:
    report = run_fuzz(N_SYNTHETIC_CASES, SEED, work_dir=tmp_path_factory.mktemp("fuzz"), memory_mb=1024)
    fuzz_summaries.append(report.summary())
    log.warning("%s", report.summary())
    return report


def test_fuzz_synthetic_seeds_every_case_ends_in_a_clear_error_or_a_valid_result(
    synthetic_report: FuzzReport,
) -> None:
    report = synthetic_report
    assert len(report.records) == N_SYNTHETIC_CASES
    assert [r["case"] for r in report.records] == list(range(N_SYNTHETIC_CASES))
    assert not report.failures, f"{len(report.failures)} failing cases:\n{_explain(report)}"
    assert report.worker_restarts == 0


def test_fuzz_reaches_every_reader_and_both_outcomes(synthetic_report: FuzzReport) -> None:
    """The mutations are neither all harmless nor all fatal, for every target."""
    by_target = synthetic_report.by_target()
    assert set(by_target) == {"ct", "seg", "rtstruct", "labelmap"}
    for target, counts in by_target.items():
        assert sum(counts.values()) == N_SYNTHETIC_CASES // 4, (target, counts)
        assert counts["refused"] >= 0.2 * sum(counts.values()), (target, counts)
        assert counts["ok"] >= 1, (target, counts)
    mutations = " ".join(r["mutation"] for r in synthetic_report.records)
    for family in ("bytes: truncate", "bytes: flip bits", "delete_attribute", "wrong_vr", "absurd_value",
                   "declare_gigabytes", "wrong_modality", "million_points", "bad_contour_data",
                   "other_frame_of_reference", "empty_pixels", "series:", "NIfTI dim",
                   "transfer_syntax_not_a_syntax", "identity_field", "date_field", "clinical:"):  # fmt: skip
        assert family in mutations, family


def test_fuzz_memory_bombs_are_refused_by_the_guard(synthetic_report: FuzzReport) -> None:
    """Headers declaring gigabytes end in InputLimitError or a file-size DicomReadError, never MemoryError."""
    bombs = [
        r
        for r in synthetic_report.records
        if "declares gigabytes" in r["mutation"] and r["target"] in ("ct", "seg")  # images, not RTSTRUCT
    ]
    assert len(bombs) >= 10
    for r in bombs:
        loader = r["results"]["loader"]
        assert loader["status"] == "refused", r
        assert "declares" in loader["detail"] or "Rows" in loader["detail"], r


def test_fuzz_real_seeds(real_data: Path, tmp_path: Path, fuzz_summaries: list[str]) -> None:
    report = run_fuzz(N_REAL_CASES, SEED + 1, real_data=real_data, work_dir=tmp_path, memory_mb=1024)
    fuzz_summaries.append(report.summary())
    log.warning("%s", report.summary())
    assert len(report.records) == N_REAL_CASES
    assert report.n_seeds > 20  # synthetic + real seeds
    assert any(r["seed"].startswith("real/") for r in report.records)
    assert not report.failures, f"{len(report.failures)} failing cases:\n{_explain(report)}"


def test_the_harness_reports_hangs_crashes_memory_and_bugs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The verdicts can fail: cases made to misbehave (HPD_FUZZ_SELFTEST) are each reported, and the run goes
    on after a worker is killed (stall: deaf to SIGALRM, like a loop in C) or dies (crash)."""
    monkeypatch.setenv("HPD_FUZZ_SELFTEST", "hang:0,stall:1,crash:2,memory:3,bug:4")
    report = run_fuzz(5, SEED, work_dir=tmp_path, time_limit_s=1.0, kill_grace_s=2.0)
    statuses = [r["status"] for r in report.records]
    assert statuses == ["hang", "hang", "crash", "memory", "bug"]
    assert report.worker_restarts == 2
    assert [r["case"] if "case" in r else r["start"] for r in report.records] == list(range(5))
    assert len(report.failures) == 5
    assert "MemoryError" in report.records[3]["results"]["loader"]["detail"]


def test_seed_corpus_is_byte_identical_between_builds(tmp_path) -> None:
    """Same fuzz seed -> same cases needs the same seed files: no clock or random UID may leak into them."""
    from tools.fuzz.corpus import build_corpus

    build_corpus(tmp_path / "a")
    build_corpus(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and any(f.name.startswith("seg_") for f in files)
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_fuzz_clinical_tables_are_read_and_date_checked(synthetic_report: FuzzReport) -> None:
    """Fuzzed clinical.csv files end in a clinical.csv error or in date issues, never in an exception."""
    clinical = [r["results"]["clinical"] for r in synthetic_report.records if "clinical" in r["results"]]
    assert len(clinical) >= 20
    assert {c["status"] for c in clinical} == {"ok", "refused"}
    assert any("future_date" in c["detail"] for c in clinical)
    assert any("ici_start_after_last_scan" in c["detail"] for c in clinical)
