"""Cropping + resampling: nearest-neighbour ties of the mask must be decided as on the whole CT.

Regression of the real-size benchmark (SYN004 L02, 0.703125 x 0.703125 x 1.2 mm -> 1 mm): resampled grid
points fall exactly half-way between two original voxels (every 64th voxel in-plane), and the crop's origin
differs from the whole CT's in the last bits, so the cropped mask rounded a whole plane the other way (70
voxels; features off by up to 90 %). The geometry below is the benchmark's (origin, spacing with the float
noise of the slice positions, the lesion's bounding box and crop offset) on a smaller CT; the lesion is an
ellipsoid so that its outline crosses the tie plane (original j = 223.5).
"""

from __future__ import annotations

import numpy as np
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.radiomics.extract import extract_lesion_features, params_from_dict

SPACING = (0.703125, 0.703125, 1.200000000000001)  # (i, j, k) mm: the loader's value when found (now 1.2)
ORIGIN = (-179.6484, -179.6484, 0.6)
SHAPE = (105, 240, 190)  # (k, j, i)
PARAMS = params_from_dict(
    {"featureClass": {"shape": None, "firstorder": None, "glcm": None},
     "setting": {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline", "binWidth": 25}},
    source="resampling test settings")


@pytest.fixture(scope="module")
def ct_and_lesion() -> tuple[CtImage, LesionMask]:
    geo = ImageGeometry(shape=SHAPE, spacing_mm=SPACING, origin_mm=ORIGIN)
    rng = np.random.default_rng(21)
    hu = (40.0 + rng.normal(0, 30, SHAPE)).astype(np.float32)
    k, j, i = np.indices(SHAPE)
    lesion = ((k - 80) / 18.6) ** 2 + ((j - 210.7) / 23.2) ** 2 + ((i - 155.6) / 28.2) ** 2 <= 1
    hu[lesion] += 60.0 + 8.0 * (j[lesion] % 7)  # texture with a strong gradient across the tie plane
    ct = CtImage(hu=hu, geometry=geo, source="synthetic")
    return ct, LesionMask(mask=lesion, geometry=geo, label="L02", source=MaskSource.LABELMAP, lesion_id="L02")


def test_crop_equals_whole_ct_under_resampling_with_ties(ct_and_lesion) -> None:
    ct, lesion = ct_and_lesion
    cropped = extract_lesion_features(ct, [lesion], PARAMS)
    whole = extract_lesion_features(ct, [lesion], PARAMS, crop=False)
    assert cropped.errors == [] and whole.errors == []
    # pyradiomics really received a crop (offset 86, 146, 23 as in the benchmark), and the whole CT without
    assert cropped.diagnostics["diagnostics_Image-original_Size"].iloc[0] != str(SHAPE[::-1])
    assert whole.diagnostics["diagnostics_Image-original_Size"].iloc[0] == str(SHAPE[::-1])
    feats = [c for c in whole.features.columns if c.startswith("original_")]
    assert len(feats) == 14 + 18 + 24
    a = cropped.features[feats].iloc[0].to_numpy(float)
    b = whole.features[feats].iloc[0].to_numpy(float)
    off = [f for f, x, y in zip(feats, a, b, strict=True) if not np.isclose(x, y, rtol=1e-9, atol=0)]
    assert off == []
    # the resampled mask itself: the same voxels (before the fix 30,231 instead of 30,165)
    assert cropped.features["original_shape_VoxelVolume"].iloc[0] == whole.features[
        "original_shape_VoxelVolume"].iloc[0] == 30165
