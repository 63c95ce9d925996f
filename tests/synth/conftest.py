"""Small synthetic archives generated once per test session (kept tiny so the module stays fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpd_imaging.synth import SynthSettings, generate_archive

SMALL = dict(
    n_patients=2,
    seed=11,
    matrix=96,
    n_followups=1,
    max_lesions=3,
    phenotypes=["hyperprogressor", "responder"],
)


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, SynthSettings]:
    out = tmp_path_factory.mktemp("synth") / "archive"
    settings = SynthSettings(**SMALL)
    truth = generate_archive(out, settings)
    assert json.loads((out / "ground_truth.json").read_text()) == truth
    return out, truth, settings


@pytest.fixture(scope="session")
def untracked_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "untracked"
    settings = SynthSettings(
        n_patients=1,
        seed=5,
        matrix=64,
        n_followups=1,
        min_lesions=3,
        max_lesions=4,
        tracking_ids=False,
        phenotypes=["progressor"],
    )
    return out, generate_archive(out, settings)
