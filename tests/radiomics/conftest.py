"""Fixtures of the radiomics tests: paths to pyradiomics' regression data and the IBSI phantom."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pyradiomics_data(shared_data: Path) -> Path:
    path = shared_data / "pyradiomics"
    if not (path / "baseline").is_dir():
        pytest.skip(f"pyradiomics regression data not found at {path}")
    return path


@pytest.fixture(scope="session")
def ibsi_data(shared_data: Path) -> Path:
    path = shared_data / "ibsi"
    if not (path / "ibsi_1_digital_phantom").is_dir():
        pytest.skip(f"IBSI digital phantom not found at {path}")
    return path


@pytest.fixture(scope="session")
def sts_data(real_data: Path) -> Path:
    path = real_data / "ibsi_sts"
    if not (path / "nifti" / "STS_025").is_dir():
        pytest.skip(f"IBSI sarcoma data (STS_025) not found at {path}")
    return path
