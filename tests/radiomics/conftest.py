"""Fixtures of the radiomics tests: paths to pyradiomics' regression data and the IBSI phantom."""

from __future__ import annotations

from pathlib import Path

import pytest


def _require(path: Path, marker: str, what: str) -> Path:
    """``path`` when ``path/marker`` is a folder; otherwise skip the test, naming what and where."""
    if not (path / marker).is_dir():
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def pyradiomics_data(shared_data: Path) -> Path:
    return _require(shared_data / "pyradiomics", "baseline", "pyradiomics regression data")


@pytest.fixture(scope="session")
def ibsi_data(shared_data: Path) -> Path:
    return _require(shared_data / "ibsi", "ibsi_1_digital_phantom", "IBSI digital phantom")


@pytest.fixture(scope="session")
def sts_data(real_data: Path) -> Path:
    return _require(real_data / "ibsi_sts", "nifti/STS_025", "IBSI sarcoma data (STS_025)")
