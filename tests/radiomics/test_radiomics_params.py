"""Parameter files are validated before any work, with clear ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpd_imaging.errors import ConfigError
from hpd_imaging.radiomics import load_params, params_from_dict
from hpd_imaging.settings import REPO_PIPELINES, load_config


def test_shipped_parameter_files_are_valid() -> None:
    ct = load_params(REPO_PIPELINES / "radiomics_ct.yaml")
    d = ct.as_dict()
    assert d["setting"]["binWidth"] == 25
    assert d["setting"]["resampledPixelSpacing"] == [1, 1, 1]
    assert set(d["imageType"]) == {"Original", "LoG", "Wavelet"}
    assert set(d["featureClass"]) == {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
    ibsi = load_params(REPO_PIPELINES / "radiomics_ibsi.yaml")
    assert ibsi.as_dict()["setting"]["binWidth"] == 1
    assert len(ct.sha256) == 64 and ct.sha256 != ibsi.sha256


def test_hash_is_canonical_and_sensitive() -> None:
    a = params_from_dict({"setting": {"binWidth": 25, "label": 1}, "imageType": {"Original": {}}})
    b = params_from_dict({"imageType": {"Original": {}}, "setting": {"label": 1, "binWidth": 25}})
    c = params_from_dict({"imageType": {"Original": {}}, "setting": {"label": 1, "binWidth": 20}})
    assert a.sha256 == b.sha256 != c.sha256


def test_pipeline_config_points_at_ct_params() -> None:
    cfg = load_config()
    assert cfg.radiomics.params_file.name == "radiomics_ct.yaml"
    assert cfg.radiomics.ring_widths_mm == (5.0,)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"setting": {"binWidth": "wide"}}, r"schema violated.*binWidth"),
        ({"setting": {"binWidth": -1}}, r"schema violated.*binWidth"),
        ({"imageType": {"Fancy": {}}}, r"Image Type Fancy is not recognized"),
        ({"featureClass": {"glcm": ["Contrastt"]}}, r"glcm contains unrecognized features: \{'Contrastt'\}"),
        ({"featureClass": {"texture": None}}, r"Feature Class texture is not recognized"),
        ({"setting": {"label": 2}}, r"setting.label: .*expected 1 or absent, got 2"),
        ({"settings": {"binWidth": 25}}, r"unknown top-level key\(s\) \['settings'\]"),
        ({"setting": {"binWidth": 25, "binCount": 32}}, r"expected binWidth or binCount, got both"),
        ({"setting": {"resampledPixelSpacing": [1, 1]}}, r"resampledPixelSpacing: expected 3 spacings"),
        ({"voxelSetting": {"kernelRadius": 2}}, r"voxelSetting: voxel-based .* not supported"),
        ({"featureClass": {"shape2D": None}}, r"shape2D needs setting.force2D"),
    ],
)
def test_bad_parameters_raise_config_error(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        params_from_dict(params, source="test.yaml")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML"):
        load_params(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("setting:\n  binWidth: abc\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: pyradiomics parameter schema violated"):
        load_params(wrong)
