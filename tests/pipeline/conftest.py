"""Fixtures of the pipeline tests: one tiny synthetic archive and one reference run, shared by the module
tests (each pipeline run costs seconds; the suite must stay fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import FAST_CONFIG, make_archive

from hpd_imaging.pipeline import RunSummary, run_study


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline") / "archive"
    make_archive(root)
    return root


@pytest.fixture(scope="session")
def reference_run(tiny_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> RunSummary:
    """The uninterrupted in-process run (with DICOM SEG/SR) every other run is compared with."""
    out = tmp_path_factory.mktemp("pipeline") / "reference"
    return run_study(tiny_archive, out, FAST_CONFIG, dicom_out=True)
