"""The settings package: a leaf (imports no stage), one hash over every settings file a run reads, and the
per-definition options in their definition's block."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpd_imaging.errors import ConfigError
from hpd_imaging.settings import REPO_PIPELINES, ResponseConfig, load_config, load_response_config

STAGES = (
    "archive",
    "io",
    "tracking",
    "measure",
    "response",
    "outcome",
    "radiomics",
    "model",
    "report",
    "pipeline",
    "synth",
    "commands",
)


def test_settings_package_imports_no_stage_code() -> None:
    code = (
        "import sys, hpd_imaging.settings as s\n"
        "mods = [m for m in sys.modules if m.startswith('hpd_imaging.')"
        " and not m.startswith('hpd_imaging.settings')]\n"
        "print(' '.join(sorted(mods)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    stages = [m for m in out if m.split(".")[1] in STAGES]
    assert stages == [], stages
    assert set(out) <= {"hpd_imaging.errors"}, out


def _copy_pipelines(tmp_path: Path) -> Path:
    folder = tmp_path / "pipelines"
    shutil.copytree(REPO_PIPELINES, folder, ignore=shutil.ignore_patterns("ibsi*", "*.skops"))
    return folder / "default.yaml"


def test_config_hash_changes_when_a_threshold_in_hpd_definitions_changes(tmp_path: Path) -> None:
    config_path = _copy_pipelines(tmp_path)
    before = load_config(config_path)
    assert before.settings_files()["hpd_definitions"] == (tmp_path / "pipelines" / "hpd_definitions.yaml")
    h0 = before.config_hash()
    sha0 = before.settings_files_sha256()["hpd_definitions"]
    assert load_config(config_path).config_hash() == h0  # stable
    definitions = tmp_path / "pipelines" / "hpd_definitions.yaml"
    text = definitions.read_text(encoding="utf-8")
    edited = text.replace(
        'delta_tgr: {value: 50, comparator: ">"}', 'delta_tgr: {value: 51, comparator: ">"}', 1
    )
    assert edited != text
    definitions.write_text(edited, encoding="utf-8")
    after = load_config(config_path)
    assert after.model_dump() == before.model_dump()  # the pipeline YAML itself did not change
    assert after.config_hash() != h0
    assert after.settings_files_sha256()["hpd_definitions"] != sha0


def test_definition_options_live_in_their_block_and_flat_names_still_read() -> None:
    block = ResponseConfig(
        definitions={"matos2020": {"new_lesion_rule": "any_multiple", "require_ttf": True}}
    )
    flat = ResponseConfig(matos_new_lesion_rule="any_multiple", matos_require_ttf=True)
    assert block == flat
    assert flat.matos_new_lesion_rule == "any_multiple" and flat.matos_require_ttf is True
    assert ResponseConfig(kato_pace_basis="absolute").options("kato2017").pace_basis == "absolute"
    bundled = load_response_config()
    assert bundled.options("kim2019").composite == "reconstruction"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"definitions": {"kas2020": {"new_lesion_rule": "any_multiple"}}}, r"kas2020.*new_lesion_rule"),
        ({"definitions": {"matos2020": {"new_lesion_rule": "three"}}}, r"matos2020.*new_lesion_rule"),
        (
            {
                "matos_new_lesion_rule": "any_multiple",
                "definitions": {"matos2020": {"new_lesion_rule": "two_in_involved_or_new_organ"}},
            },
            r"contradicts definitions\.matos2020\.new_lesion_rule",
        ),
    ],
)
def test_definition_options_refuse_wrong_block_or_value(tmp_path: Path, data: dict, match: str) -> None:
    import yaml

    path = tmp_path / "hpd.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_response_config(path)
