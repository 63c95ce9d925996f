"""Per-lesion extraction on synthetic CTs: rings (physical mm, body clipping), errors, provenance, workers."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.errors import ConfigError
from hpd_imaging.radiomics import (
    PYRADIOMICS_VERSION,
    extract_lesion_features,
    load_params,
    params_from_dict,
)
from hpd_imaging.radiomics.regions import body_mask, region_name, ring_mask
from hpd_imaging.settings import REPO_PIPELINES

SPACING = (0.8, 0.8, 2.0)  # (i, j, k) mm
PARAMS = params_from_dict({"imageType": {"Original": {}},
                           "featureClass": {"shape": None, "firstorder": None, "glcm": ["Contrast"]},
                           "setting": {"binWidth": 25}})


def _phantom() -> tuple[CtImage, list[LesionMask], np.ndarray]:
    """Body cylinder (40 HU) in air with an air 'lung' inside, a 60 HU sphere of radius 8 mm in the lung,
    a second sphere and a one-voxel lesion."""
    shape = (30, 80, 80)
    geo = ImageGeometry(shape=shape, spacing_mm=SPACING, origin_mm=(0.0, 0.0, 0.0))
    k, j, i = np.indices(shape).astype(float)
    z, y, x = k * SPACING[2], j * SPACING[1], i * SPACING[0]
    rng = np.random.default_rng(0)
    hu = np.full(shape, -1000.0)
    body = (y - 32) ** 2 + (x - 32) ** 2 <= 28**2
    hu[body] = 40.0
    lung = (y - 32) ** 2 + (x - 26) ** 2 <= 16**2
    hu[lung] = -850.0
    hu += rng.normal(0, 15, shape)
    sphere = (z - 30) ** 2 + (y - 32) ** 2 + (x - 26) ** 2 <= 8**2
    hu[sphere] = 60.0 + rng.normal(0, 20, int(sphere.sum()))
    sphere2 = (z - 30) ** 2 + (y - 32) ** 2 + (x - 50) ** 2 <= 4**2
    one = np.zeros(shape, dtype=bool)
    one[15, 40, 10] = True
    ct = CtImage(hu=hu.astype(np.float32), geometry=geo, source="synthetic")
    masks = [LesionMask(mask=m, geometry=geo, label=lab, source=MaskSource.LABELMAP, lesion_id=lab)
             for m, lab in ((sphere, "L1"), (sphere2, "L2"), (one, "tiny"))]
    truth_body = body
    return ct, masks, truth_body


@pytest.fixture(scope="module")
def phantom():
    return _phantom()


@pytest.fixture(scope="module")
def result(phantom):
    ct, masks, _ = phantom
    return extract_lesion_features(ct, masks, PARAMS, ring_widths_mm=[5], patient_id="P1")


def test_body_mask_keeps_lung_drops_outside_air(phantom) -> None:
    ct, _, truth = phantom
    body = body_mask(ct.hu)
    assert np.array_equal(body, truth)  # the -850 HU lung inside is filled back in, outside air is not


def test_ring_is_physical_distance_and_clipped(phantom) -> None:
    ct, masks, truth = phantom
    lesion = masks[0].mask
    ring = ring_mask(lesion, SPACING, 5.0)
    k, j, i = np.indices(lesion.shape).astype(float)
    z, y, x = k * SPACING[2], j * SPACING[1], i * SPACING[0]
    centre_dist = np.sqrt((z - 30) ** 2 + (y - 32) ** 2 + (x - 26) ** 2)
    assert not (ring & lesion).any()
    assert centre_dist[ring].max() <= 8 + 5 + 1e-6  # within 5 mm of the 8 mm sphere
    assert centre_dist[ring].min() > 8 - 1e-6
    shell = (centre_dist > 8.0 + 1.5) & (centre_dist <= 13.0 - 1.5)  # clearly inside the 5 mm band
    assert ring[shell].all()
    # ground truth by brute force: distance from every voxel centre to the nearest lesion voxel centre, in mm
    from scipy.spatial import cKDTree

    pts = np.stack([z, y, x], axis=-1)
    nearest, _ = cKDTree(pts[lesion]).query(pts.reshape(-1, 3))
    truth_ring = (nearest.reshape(lesion.shape) <= 5.0) & ~lesion
    assert np.array_equal(ring, truth_ring)
    outside = np.zeros_like(truth)
    outside[:, :, 60:] = True  # pretend the body ends at i = 60
    clipped = ring_mask(masks[1].mask, SPACING, 5.0, body=~outside)
    assert clipped.any() and not (clipped & outside).any()
    assert region_name(5) == "ring5mm" and region_name(7.5) == "ring7.5mm"


def test_rows_columns_and_provenance(phantom, result) -> None:
    ct, masks, _ = phantom
    f = result.features
    assert list(f.columns[:3]) == ["patient_id", "lesion_id", "region"]
    assert set(zip(f["lesion_id"], f["region"], strict=True)) == {
        ("L1", "lesion"), ("L1", "ring5mm"), ("L2", "lesion"), ("L2", "ring5mm"), ("tiny", "ring5mm")}
    assert "original_glcm_Contrast" in f and "original_firstorder_Mean" in f
    assert not [c for c in f.columns if c.startswith("diagnostics_")]
    assert len(result.diagnostics) == len(f) and "diagnostics_Versions_PyRadiomics" in result.diagnostics
    assert (f["pyradiomics_version"] == PYRADIOMICS_VERSION).all()
    assert (f["params_sha256"] == PARAMS.sha256).all()
    assert f["image_sha256"].nunique() == 1 and f["mask_sha256"].nunique() == len(f)
    lesion_row = f[(f.lesion_id == "L1") & (f.region == "lesion")].iloc[0]
    mean_hu = float(ct.hu[masks[0].mask].mean())
    assert lesion_row["original_firstorder_Mean"] == pytest.approx(mean_hu, rel=1e-5)
    ring_row = f[(f.lesion_id == "L1") & (f.region == "ring5mm")].iloc[0]
    assert ring_row["original_firstorder_Mean"] < -500  # the ring of a lung lesion is lung parenchyma
    assert lesion_row["original_shape_VoxelVolume"] == pytest.approx(masks[0].voxel_count * np.prod(SPACING))
    digest = hashlib.sha256()
    assert len(lesion_row["mask_sha256"]) == len(digest.hexdigest())


def test_single_voxel_lesion_is_an_error_not_a_crash(result) -> None:
    errors = dict(result.errors)
    assert list(errors) == ["tiny"]
    assert "lesion: pyradiomics could not compute features" in errors["tiny"]
    assert "1 segmented voxel" in errors["tiny"]
    assert list(result.errors_frame().columns) == ["lesion_id", "message"]


def test_off_grid_and_empty_masks_are_errors(phantom) -> None:
    ct, masks, _ = phantom
    other = ImageGeometry(shape=ct.geometry.shape, spacing_mm=(1.0, 1.0, 2.0), origin_mm=(0.0, 0.0, 0.0))
    off = LesionMask(mask=masks[1].mask, geometry=other, label="off", source=MaskSource.SEG)
    empty = LesionMask(mask=np.zeros(ct.geometry.shape, bool), geometry=ct.geometry, label="e",
                       source=MaskSource.SEG)
    r = extract_lesion_features(ct, [off, empty], PARAMS, lesion_ids=["A", "B"])
    assert r.features.empty
    assert [lid for lid, _ in r.errors] == ["A", "B"]
    assert "not on the CT grid" in r.errors[0][1] and "spacing" in r.errors[0][1]
    assert "empty" in r.errors[1][1]
    with pytest.raises(ConfigError, match="ring_widths_mm: expected positive widths in mm, got -2"):
        extract_lesion_features(ct, masks, PARAMS, ring_widths_mm=[-2])


def test_two_workers_give_the_same_rows(phantom, result) -> None:
    ct, masks, _ = phantom
    par = extract_lesion_features(ct, masks, PARAMS, ring_widths_mm=[5], patient_id="P1", workers=2)
    assert par.errors == result.errors
    cols = [c for c in result.features.columns if c.startswith("original_")]
    np.testing.assert_allclose(par.features[cols].to_numpy(float), result.features[cols].to_numpy(float),
                               rtol=1e-12)


def test_ct_default_settings_on_a_small_roi(phantom) -> None:
    """pipelines/radiomics_ct.yaml end to end (1 mm resampling, LoG x5, wavelet x8, all 3D classes)."""
    ct, masks, _ = phantom
    r = extract_lesion_features(ct, [masks[1]], load_params(REPO_PIPELINES / "radiomics_ct.yaml"))
    assert r.errors == []
    feats = [c for c in r.features.columns if c.startswith(("original_", "log-", "wavelet-"))]
    # shape once; 93 intensity/texture features x (original + 5 LoG + 8 wavelet)
    assert len(feats) == 14 + 14 * 93
    assert r.features[feats].notna().all(axis=None)
    assert "log-sigma-3-0-mm-3D_glcm_Contrast" in r.features
