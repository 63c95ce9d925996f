"""Issue 21: the radiomics process pool is started once per process and kept warm: a second call reuses it
(no process start, same values), :func:`~hpd_imaging.radiomics.parallel.shutdown_pools` stops it, and a
pool whose child died is dropped so that the next call starts a new one."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.radiomics import parallel
from hpd_imaging.radiomics.extract import extract_lesion_features, plain_pyradiomics
from hpd_imaging.radiomics.params import params_from_dict

SPACING = (0.8, 0.8, 2.0)
PARAMS = params_from_dict({
    "imageType": {"Original": {}, "LoG": {"sigma": [2.0]}, "Wavelet": {}},
    "featureClass": {c: None for c in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
    "setting": {"binWidth": 25, "resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline",
                "padDistance": 5, "voxelArrayShift": 1000, "label": 1},
}, source="test")


@pytest.fixture(scope="module")
def ct_and_lesion() -> tuple[CtImage, LesionMask]:
    shape = (24, 60, 60)
    geo = ImageGeometry(shape=shape, spacing_mm=SPACING, origin_mm=(-10.3, 4.1, -20.0))
    k, j, i = np.indices(shape).astype(float)
    z, y, x = k * SPACING[2], j * SPACING[1], i * SPACING[0]
    rng = np.random.default_rng(7)
    hu = np.full(shape, 30.0) + rng.normal(0, 25, shape)
    lesion = (z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2 <= 10.0**2
    hu[lesion] = 70 + 40 * np.sin(y[lesion] / 2) + rng.normal(0, 15, int(lesion.sum()))
    mask = LesionMask(mask=lesion, geometry=geo, label="L1", source=MaskSource.LABELMAP, lesion_id="L1")
    return CtImage(hu=hu.astype(np.float32), geometry=geo, source="synthetic"), mask


class _Counting(ProcessPoolExecutor):
    started = 0

    def __init__(self, *args, **kwargs) -> None:
        type(self).started += 1
        super().__init__(*args, **kwargs)


def _features(result) -> tuple[list[str], np.ndarray]:
    assert result.errors == []
    cols = [c for c in result.features.columns if c.startswith(("original_", "log-", "wavelet-"))]
    return cols, result.features[cols].to_numpy(float)


@pytest.mark.slow
def test_pool_kept_warm_between_calls_and_stopped_on_request(ct_and_lesion, monkeypatch) -> None:
    ct, mask = ct_and_lesion
    parallel.shutdown_pools()
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _Counting)
    _Counting.started = 0
    serial_cols, serial = _features(extract_lesion_features(ct, [mask], PARAMS))
    for _ in range(2):
        cols, got = _features(extract_lesion_features(ct, [mask], PARAMS, workers=2, split_min_voxels=1))
        assert cols == serial_cols
        np.testing.assert_array_equal(got, serial)
    assert _Counting.started == 1  # the second call ran on the first call's processes
    ref = plain_pyradiomics(ct.to_sitk(), mask.to_sitk(), PARAMS)
    np.testing.assert_allclose(got[0], [float(ref[c]) for c in cols], rtol=1e-9, atol=1e-12)
    parallel.shutdown_pools()
    assert parallel._POOLS == {}
    extract_lesion_features(ct, [mask], PARAMS, workers=2, split_min_voxels=1)
    assert _Counting.started == 2  # stopped: the next call started a new pool
    parallel.shutdown_pools()


@pytest.mark.slow
def test_broken_pool_is_dropped_and_the_next_call_starts_a_new_one(ct_and_lesion, monkeypatch) -> None:
    ct, mask = ct_and_lesion
    parallel.shutdown_pools()
    extract_lesion_features(ct, [mask], PARAMS, workers=2, split_min_voxels=1)
    [pool] = parallel._POOLS.values()
    for pid in list(pool._processes):  # a child killed (e.g. by the kernel for memory)
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        extract_lesion_features(ct, [mask], PARAMS, workers=2, split_min_voxels=1)
    assert pool not in parallel._POOLS.values()
    _, again = _features(extract_lesion_features(ct, [mask], PARAMS, workers=2, split_min_voxels=1))
    _, serial = _features(extract_lesion_features(ct, [mask], PARAMS))
    np.testing.assert_array_equal(again, serial)
    parallel.shutdown_pools()
