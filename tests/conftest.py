"""Shared fixtures: where the real public data lives, and the bundled sample archive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DICOM = REPO_ROOT / "sample_dicom"


def shared_data_root() -> Path:
    """../shared/data relative to the project root, or $HPD_SHARED_DATA."""
    env = os.environ.get("HPD_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real public test data; tests using it skip with a clear reason when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real public test data not found at {root} (set HPD_SHARED_DATA to its location)")
    return root


@pytest.fixture(scope="session")
def real_data(shared_data: Path) -> Path:
    path = shared_data / "real"
    if not path.is_dir():
        pytest.skip(f"real DICOM test data not found at {path}")
    return path


@pytest.fixture(scope="session")
def sample_dicom() -> Path:
    if not (SAMPLE_DICOM / "ground_truth.json").exists():
        pytest.fail(
            f"sample_dicom/ is missing or incomplete at {SAMPLE_DICOM}; regenerate it (see its README)"
        )
    return SAMPLE_DICOM
