"""The radiomics engine setting (pyradiomics | mirp | both), the ``ibsi:`` section and IBSI feature tags."""

from __future__ import annotations

import numpy as np
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.errors import ConfigError
from hpd_imaging.radiomics import extract_lesion_features, load_params, params_from_dict
from hpd_imaging.radiomics.ibsi import ibsi_tag
from hpd_imaging.radiomics.tags import ibsi_column_names
from hpd_imaging.settings import REPO_PIPELINES

IBSI_3D = {"new_spacing_mm": None, "discretisation": "fixed_bin_size", "bin_width_hu": 1.0,
           "resegmentation_range_hu": [0.0, None]}


@pytest.mark.parametrize(("mirp", "tag"), [
    ("cm_joint_avg_d1_3d_avg_fbs_w25.0", "cm_joint_avg_3D_avg"),
    ("cm_joint_avg_d1_3d_v_mrg_fbn_n32", "cm_joint_avg_3D_comb"),
    ("rlm_sre_2d_avg_fbs_w25.0", "rlm_sre_2D_avg"),
    ("rlm_sre_2d_s_mrg_fbs_w25.0", "rlm_sre_2D_comb"),
    ("rlm_sre_2.5d_d_mrg_fbn_n32", "rlm_sre_2_5D_avg"),
    ("rlm_sre_2.5d_v_mrg_fbn_n32", "rlm_sre_2_5D_comb"),
    ("szm_sze_2.5d_fbn_n32", "szm_sze_2_5D"),
    ("ngl_lde_d1_a0.0_3d_fbs_w25.0", "ngl_lde_3D"),
    ("ngt_coarseness_2d_fbs_w25.0", "ngt_coarseness_2D"),
    ("ih_mean_fbs_w25.0", "ih_mean"),
    ("ivh_v10", "ivh_v10"),
    ("morph_volume", "morph_volume"),
    ("stat_p10", "stat_p10"),
])
def test_ibsi_tag_of_mirp_names(mirp: str, tag: str) -> None:
    assert ibsi_tag(mirp) == tag


def test_ibsi_column_names_rename_exact_definitions_only() -> None:
    renames = ibsi_column_names(["lesion_id", "region", "original_firstorder_Mean",
                                 "original_firstorder_Kurtosis", "original_shape_MinorAxisLength",
                                 "original_glcm_MCC", "wavelet-LLH_glcm_Id",
                                 "params_sha256"])
    # Kurtosis (not excess kurtosis) and the N-divisor axis length differ from IBSI: never renamed
    assert renames == {"original_firstorder_Mean": "stat_mean"}


def test_mirp_column_takes_the_tag_when_both_engines_give_it() -> None:
    renames = ibsi_column_names(["original_firstorder_Mean", "stat_mean", "original_glcm_JointAverage",
                                 "cm_joint_avg_d1_3d_avg_fbs_w25.0"])
    assert renames == {"cm_joint_avg_d1_3d_avg_fbs_w25.0": "cm_joint_avg_3D_avg"}


def test_default_parameter_files_keep_engine_and_hash() -> None:
    params = load_params(REPO_PIPELINES / "radiomics_ct.yaml")
    assert params.engine == "pyradiomics" and params.ibsi is None
    assert "engine" not in params.as_dict() and "ibsi" not in params.as_dict()
    # the hash of a file without engine keys is the hash of its pyradiomics parameters, as before
    again = params_from_dict(params.as_dict(), source="copy")
    assert again.sha256 == params.sha256


def test_ibsi_configurations_load() -> None:
    pytest.importorskip("mirp", reason="MIRP not installed (dev group, or: uv sync --extra ibsi)")
    for config, by_slice in zip("abcde", (True, True, False, False, False), strict=True):
        params = load_params(REPO_PIPELINES / "ibsi" / f"ct_config_{config}.yaml")
        assert params.engine == "mirp" and params.as_dict() == {}
        assert params.ibsi is not None and params.ibsi.configuration == config.upper()
        assert params.ibsi.by_slice is by_slice
    e = load_params(REPO_PIPELINES / "ibsi" / "ct_config_e.yaml").ibsi
    assert e is not None and e.interpolation == "cubic"
    assert e.resegmentation_range_hu == [-1000.0, 400.0] and e.resegmentation_sigma == 3.0


@pytest.mark.parametrize(("data", "message"), [
    ({"engine": "lifex"}, r"engine: expected one of \['pyradiomics', 'mirp', 'both'\], got 'lifex'"),
    ({"engine": "mirp"}, r"engine mirp computes IBSI features with MIRP; expected an ibsi: section"),
    ({"engine": "mirp", "ibsi": IBSI_3D, "setting": {"binWidth": 25}},
     r"engine mirp uses only the ibsi: section; expected no pyradiomics sections, got \['setting'\]"),
    ({"ibsi": {"discretisation": "fixed_bin_size", "resegmentation_range_hu": [0, None]}},
     r"bad.yaml: ibsi: Value error, discretisation fixed_bin_size needs bin_width_hu"),
    ({"ibsi": {**IBSI_3D, "interpolation": "sinc"}},
     r"ibsi\.interpolation: Input should be 'nearest', 'linear'"),
    ({"ibsi": {**IBSI_3D, "texture_aggregation": ["2d_average"]}}, r"3D configurations \(by_slice false\)"),
    ({"ibsi": {**IBSI_3D, "resegmentation_range_hu": [-1000]}}, r"expected \[lower, upper\], got \[-1000"),
    ({"ibsi": {**IBSI_3D, "resegmentation_range_hu": None}},
     r"fixed_bin_size discretisation needs the lower bound it starts from"),
    ({"ibsi": {**IBSI_3D, "bin_widht_hu": 25}}, r"ibsi\.bin_widht_hu: Extra inputs are not permitted"),
])
def test_bad_engine_settings_name_the_rule(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        params_from_dict(data, source="bad.yaml")


def test_missing_mirp_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpd_imaging.radiomics import ibsi

    monkeypatch.setattr(ibsi, "mirp_available", lambda: False)
    expected = r"ct_config_c.yaml: engine mirp needs the optional dependency MIRP; expected it installed"
    with pytest.raises(ConfigError, match=expected):
        load_params(REPO_PIPELINES / "ibsi" / "ct_config_c.yaml")


def test_engine_override_checks_the_file() -> None:
    params = load_params(REPO_PIPELINES / "radiomics_ct.yaml")
    with pytest.raises(ConfigError, match="engine mirp computes IBSI features with MIRP; expected an ibsi:"):
        params.with_engine("mirp")
    assert params.with_engine("pyradiomics").sha256 != params.sha256  # the engine is part of the hash


def _ball_case() -> tuple[CtImage, LesionMask]:
    rng = np.random.default_rng(7)
    shape = (12, 20, 20)  # k, j, i
    hu = rng.integers(0, 6, size=shape).astype(np.int16)  # grey levels 0..5 (bin width 1: one bin per level)
    k, j, i = np.indices(shape)
    mask = (k - 6) ** 2 + (j - 10) ** 2 + (i - 10) ** 2 <= 16
    geometry = ImageGeometry(shape=shape, spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0),
                             direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    ct = CtImage(hu=hu, geometry=geometry, source="synthetic")
    return ct, LesionMask(mask=mask, geometry=geometry, label="1", source=MaskSource.LABELMAP)


def test_engine_both_keeps_pyradiomics_values_and_adds_ibsi_features() -> None:
    pytest.importorskip("mirp", reason="MIRP not installed (dev group, or: uv sync --extra ibsi)")
    ct, lesion = _ball_case()
    pyrad = {"imageType": {"Original": {}}, "featureClass": {"firstorder": [], "glcm": []},
             "setting": {"binWidth": 1}}
    alone = extract_lesion_features(ct, [lesion], params_from_dict(pyrad)).features.iloc[0]
    both_params = params_from_dict({**pyrad, "engine": "both", "ibsi": IBSI_3D})
    both = extract_lesion_features(ct, [lesion], both_params, ibsi_tags=True)
    assert both.errors == []
    row = both.features.iloc[0]
    for name, value in alone.items():
        if str(name).startswith("original_"):
            # pyradiomics columns untouched; where MIRP gives the same tag, MIRP's column carries it
            assert row[name] == value, name
    roi = ct.hu[lesion.mask].astype(float)
    assert row["original_firstorder_Mean"] == pytest.approx(roi.mean())
    assert row["stat_mean"] == pytest.approx(roi.mean())
    assert row["stat_kurt"] == pytest.approx(((roi - roi.mean()) ** 4).mean() / roi.var() ** 2 - 3.0)
    assert row["morph_vol_approx"] == pytest.approx(float(lesion.mask.sum()))
    for family in ("ivh_v10", "dzm_sde_3D", "loc_peak_glob", "cm_joint_avg_3D_comb"):
        assert np.isfinite(row[family]), family
    assert row["mirp_version"] and row["pyradiomics_version"]


def test_compliance_document_agrees_with_the_match_table() -> None:
    """The CT phantom summary row of docs/ibsi_compliance.md equals the counts of ibsi_ct_match.csv."""
    import re

    from ibsi_ct_support import ALL, read_match_table

    table = read_match_table()
    doc = (REPO_PIPELINES.parent / "docs" / "ibsi_compliance.md").read_text()
    row = re.search(r"^\| all \|(.+)\|$", doc, flags=re.MULTILINE)
    assert row is not None
    cells = re.findall(r"(\d+) / (\d+) \(([\d.]+) %\)", row.group(1))
    assert len(cells) == len(ALL)
    for config, (n_match, n_all, pct) in zip(ALL, cells, strict=True):
        statuses = list(table[config].values())
        assert (int(n_match), int(n_all)) == (statuses.count("match"), len(statuses)), config
        assert float(pct) == round(100 * int(n_match) / int(n_all), 1)
        assert int(n_match) / int(n_all) >= 0.95


def test_moran_geary_by_fft_equals_the_pair_sum() -> None:
    """Independent truth: the IBSI definitions summed over every voxel pair (anisotropic voxels)."""
    from hpd_imaging.radiomics.ibsi import moran_geary

    rng = np.random.default_rng(3)
    values = rng.normal(size=(5, 7, 6)) + np.arange(6)[None, None, :]  # a gradient: positive autocorrelation
    mask = rng.random((5, 7, 6)) < 0.6
    spacing = (3.0, 0.8, 0.8)
    pos = np.argwhere(mask) * np.array(spacing)
    x = values[mask]
    dev = x - x.mean()
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1))
    off = ~np.eye(len(x), dtype=bool)
    w = np.where(off, 1.0 / np.where(off, dist, 1.0), 0.0)
    n = len(x)
    moran = n / w.sum() * (w * np.outer(dev, dev)).sum() / (dev**2).sum()
    geary = (n - 1) / (2 * w.sum()) * (w * (dev[:, None] - dev[None, :]) ** 2).sum() / (dev**2).sum()
    ours = moran_geary(values, mask, spacing)
    assert ours == pytest.approx((moran, geary), rel=1e-9)
    assert moran > 0.05  # the gradient is seen: not a trivial zero
    assert moran_geary(values, np.zeros_like(mask), spacing) == (None, None)
    assert moran_geary(np.ones_like(values), mask, spacing) == (None, None)  # constant ROI: undefined


def test_run_settings_engine_and_ibsi_tags() -> None:
    from pydantic import ValidationError

    from hpd_imaging.settings.radiomics import RadiomicsSettings

    assert RadiomicsSettings().engine is None and RadiomicsSettings().ibsi_tags is False  # defaults unchanged
    chosen = RadiomicsSettings(engine="both", ibsi_tags=True)
    assert (chosen.engine, chosen.ibsi_tags) == ("both", True)
    with pytest.raises(ValidationError, match="engine"):
        RadiomicsSettings(engine="lifex")
