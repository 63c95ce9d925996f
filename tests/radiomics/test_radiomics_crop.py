"""Cropping before pyradiomics: the features are the same numbers as on the whole CT.

extract_lesion_features hands pyradiomics the region's bounding box + a margin (hpd_imaging.radiomics.
_crop_margin_voxels); ``crop=False`` hands it the whole CT, i.e. pyradiomics as called directly. Every feature
must be exactly equal (not merely close) for the default settings, for a peritumoral ring, and for the
resampled + LoG + wavelet settings of pipelines/radiomics_ct.yaml, on a synthetic CT large enough that the
crop is strictly inside the image on every axis.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.radiomics._extractor import _DropNotice
from hpd_imaging.radiomics.extract import (
    _crop_margin_voxels,
    extract_lesion_features,
    load_params,
    params_from_dict,
)
from hpd_imaging.settings import REPO_PIPELINES

SPACING = (0.7, 0.7, 2.5)  # (i, j, k) mm: the benchmark's CT; 0.7 -> 1 mm is not a whole-voxel ratio
DEFAULTS = params_from_dict({}, source="pyradiomics defaults")


@pytest.fixture(scope="module")
def ct_and_lesion() -> tuple[CtImage, LesionMask]:
    """Noisy body (40 HU) with a textured 9 mm lesion, off-centre so that no crop edge meets an image edge."""
    shape = (90, 150, 150)
    geo = ImageGeometry(shape=shape, spacing_mm=SPACING, origin_mm=(-52.3, 17.9, -101.25))
    k, j, i = np.indices(shape).astype(float)
    z, y, x = k * SPACING[2], j * SPACING[1], i * SPACING[0]
    rng = np.random.default_rng(7)
    hu = np.full(shape, 40.0) + rng.normal(0, 25, shape)
    lesion = (z - 110.3) ** 2 + (y - 48.2) ** 2 + ((x - 57.1) / 1.2) ** 2 <= 9.0**2
    hu[lesion] = 70.0 + 30 * np.sin(x[lesion] / 2) + rng.normal(0, 20, int(lesion.sum()))
    ct = CtImage(hu=hu.astype(np.float32), geometry=geo, source="synthetic")
    return ct, LesionMask(mask=lesion, geometry=geo, label="L1", source=MaskSource.LABELMAP, lesion_id="L1")


def _both(ct, lesion, params, **kw):
    cropped = extract_lesion_features(ct, [lesion], params, **kw)
    whole = extract_lesion_features(ct, [lesion], params, crop=False, **kw)
    assert cropped.errors == [] and whole.errors == []
    return cropped, whole


def _assert_identical(cropped, whole) -> int:
    feats = [c for c in whole.features.columns if not c.endswith("sha256") and c not in
             ("lesion_id", "region", "pyradiomics_version")]
    assert list(cropped.features.columns) == list(whole.features.columns)
    a = cropped.features[feats].to_numpy(float)
    b = whole.features[feats].to_numpy(float)
    differing = [f for f, x, y in zip(feats, a.T, b.T, strict=True)
                 if not np.array_equal(x, y, equal_nan=True)]
    assert differing == []
    # provenance: still the whole CT's hash and the whole-CT region mask's hash
    for col in ("image_sha256", "mask_sha256", "params_sha256"):
        assert cropped.features[col].tolist() == whole.features[col].tolist()
    return len(feats)


def _cropped_size(result, row: int = 0) -> tuple[int, ...]:
    return tuple(int(v) for v in result.diagnostics["diagnostics_Image-original_Size"].iloc[row].strip("()")
                 .split(","))


def test_default_settings_lesion_and_ring_identical(ct_and_lesion) -> None:
    ct, lesion = ct_and_lesion
    cropped, whole = _both(ct, lesion, DEFAULTS, ring_widths_mm=[5])
    assert cropped.features["region"].tolist() == ["lesion", "ring5mm"]
    assert _assert_identical(cropped, whole) == 107  # shape 14 + firstorder 18 + texture 75
    # pyradiomics really got a crop (the lesion box + padDistance 5), and the whole CT without crop
    assert _cropped_size(whole) == (150, 150, 90)
    assert all(c < w for c, w in zip(_cropped_size(cropped), (150, 150, 90), strict=True))
    assert _cropped_size(cropped, 1)[0] > _cropped_size(cropped, 0)[0]  # the ring's box is wider
    # what changes in the diagnostics: the description of pyradiomics' input, not of the mask's voxels
    for col in ("diagnostics_Mask-original_VoxelNum", "diagnostics_Mask-original_VolumeNum"):
        assert cropped.diagnostics[col].tolist() == whole.diagnostics[col].tolist()
    col = "diagnostics_Mask-original_CenterOfMass"
    com = [[float(v) for v in d.diagnostics[col].iloc[r].strip("()").split(",")]
           for d in (cropped, whole) for r in (0, 1)]
    np.testing.assert_allclose(com[:2], com[2:], rtol=0, atol=1e-9)  # mm; last digit may differ
    assert (cropped.diagnostics["diagnostics_Image-original_Hash"]
            != whole.diagnostics["diagnostics_Image-original_Hash"]).all()


def test_resampled_log_wavelet_settings_identical(ct_and_lesion) -> None:
    """radiomics_ct.yaml's image types and settings (1 mm B-spline resampling, padDistance 5, LoG 1-5 mm,
    8 wavelet sub-bands), with fewer feature classes to stay fast."""
    ct, lesion = ct_and_lesion
    ct_yaml = load_params(REPO_PIPELINES / "radiomics_ct.yaml").as_dict()
    params = params_from_dict({**ct_yaml, "featureClass": {"shape": None, "firstorder": None, "glcm": None}})
    cropped, whole = _both(ct, lesion, params)
    assert _assert_identical(cropped, whole) == 14 + 14 * (18 + 24)
    assert all(c < w for c, w in zip(_cropped_size(cropped), (150, 150, 90), strict=True))
    # the resampled image pyradiomics worked on is the same one (its diagnostics, hash included)
    interp = [c for c in whole.diagnostics.columns if "-interpolated_" in c]
    assert len(interp) >= 8
    assert cropped.diagnostics[interp].to_dict() == whole.diagnostics[interp].to_dict()


def test_crop_rule() -> None:
    """Settings where a crop would change values get the whole CT."""
    assert _crop_margin_voxels(DEFAULTS, SPACING) == (5, 5, 5)
    log_without_resampling = params_from_dict({"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}}})
    assert _crop_margin_voxels(log_without_resampling, SPACING) is None
    square = params_from_dict({"imageType": {"Square": {}}})  # scaled by the whole image's maximum
    assert _crop_margin_voxels(square, SPACING) is None
    normalized = params_from_dict({"setting": {"normalize": True, "resampledPixelSpacing": [1, 1, 1],
                                               "interpolator": "sitkBSpline"}})
    assert _crop_margin_voxels(normalized, SPACING) is None
    ct_yaml = load_params(REPO_PIPELINES / "radiomics_ct.yaml")
    # ceil(5 resampled voxels of 1 mm in 0.7 mm voxels) + 2 (B-spline support) + 32 (prefilter decay)
    assert _crop_margin_voxels(ct_yaml, SPACING) == (8 + 34, 8 + 34, 5 + 34)


def test_glcm_symmetry_notice_is_dropped_in_workers(ct_and_lesion) -> None:
    ct, lesion = ct_and_lesion
    extract_lesion_features(ct, [lesion], DEFAULTS)
    glcm_logger = logging.getLogger("radiomics.glcm")
    assert any(isinstance(f, _DropNotice) for f in glcm_logger.filters)
    notice = glcm_logger.makeRecord("radiomics.glcm", logging.WARNING, __file__, 0,
                                    "The formula for GLCM - Joint Average assumes that the GLCM is "
                                    "symmetrical, but this is not the case.", (), None)
    assert not glcm_logger.filter(notice)
    other = glcm_logger.makeRecord("radiomics.glcm", logging.WARNING, __file__, 0, "weighting norm", (), None)
    assert glcm_logger.filter(other)
