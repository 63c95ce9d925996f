"""How many processes render the patient pages: at most one per 8 pages (each process imports matplotlib), so
a cohort smaller than 8 x workers still gets a pool (it used to render every page in the driver)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from test_report_scale import _cohort

from hpd_imaging.report import ReportInputs, write_report
from hpd_imaging.report import html as html_module


@pytest.mark.parametrize(("n_patients", "workers", "expected"), [(24, 32, [3]), (16, 2, [2]), (15, 32, [])])
def test_pool_size_follows_the_pages(
    n_patients: int, workers: int, expected: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []

    class InlinePool:  # records the size, runs each chunk here (the real pool's equality test is in _scale)
        def __init__(self, n: int, **kwargs: Any) -> None:
            sizes.append(n)

        def __enter__(self) -> InlinePool:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def submit(self, fn: Any, *args: Any) -> Future:
            future: Future = Future()
            future.set_result(fn(*args))
            return future

    monkeypatch.setattr(html_module, "ProcessPoolExecutor", InlinePool)
    inputs = ReportInputs(**_cohort(n_patients))
    write_report(tmp_path, inputs, workers=workers)
    assert sizes == expected
    assert len(list((tmp_path / "report_patients").glob("*.html"))) == n_patients
