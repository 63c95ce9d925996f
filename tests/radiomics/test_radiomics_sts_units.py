"""Issue 21: a real lesion (IBSI sarcoma STS_025, DICOM CT + RTSTRUCT) with the shipped radiomics_ct.yaml
(1 mm resampling, Original, 5 LoG sigmas, 8 wavelet sub-bands): split into units on the warm process pool
(as scheduled by the cost model, and one sub-band per unit), every value equals plain pyradiomics' on the
same image and mask within 1e-12 relative, in pyradiomics' order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpd_imaging.radiomics import extract_lesion_features, load_params, parallel, plain_pyradiomics
from hpd_imaging.settings import REPO_PIPELINES


@pytest.fixture(scope="module")
def case(sts_data: Path):
    from hpd_imaging.io import load_ct, load_masks

    ct = load_ct(sts_data / "dicom" / "STS_025" / "CT" / "image")
    [mask] = load_masks(sts_data / "dicom" / "STS_025" / "CT" / "mask" / "RS.dcm", ct)
    params = load_params(REPO_PIPELINES / "radiomics_ct.yaml")
    ref = plain_pyradiomics(ct.to_sitk(), mask.to_sitk(), params)
    return ct, mask, params, ref


@pytest.mark.slow
@pytest.mark.parametrize(("slots", "wavelet_units"), [(2, 1), (16, 8)])
def test_units_on_the_pool_equal_plain_pyradiomics(case, slots: int, wavelet_units: int, monkeypatch) -> None:
    """2 places: the cost model's layout (shape, Original, 5 LoG, the 8 sub-bands together); 16 places (what a
    cluster with many threads gets): one sub-band per unit."""
    ct, mask, params, ref = case
    original = parallel.plan_units
    plans: list = []

    def plan(extractor, voxels, split_min, elsewhere, _slots):
        plans.append(original(extractor, voxels, split_min, elsewhere, slots))
        return plans[-1]

    monkeypatch.setattr(parallel, "plan_units", plan)
    result = extract_lesion_features(ct, [mask], params, workers=2, split_min_voxels=1)
    [units] = plans
    assert len(units) == 1 + 1 + 5 + wavelet_units
    assert result.errors == []
    names = [k for k in ref if not k.startswith("diagnostics_")]
    assert len(names) == 14 + 93 * 14  # shape + 93 per image on 14 images
    feature_cols = [c for c in result.features.columns if c.startswith(("original_", "log-", "wavelet-"))]
    assert feature_cols == names
    got = result.features.iloc[0][names].to_numpy(float)
    want = np.array([float(ref[k]) for k in names])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
