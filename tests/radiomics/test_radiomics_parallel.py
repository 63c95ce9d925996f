"""Issue 21: one region's extraction cut into units (shape, each image type) that run here, on a process pool
or on a Dask cluster, and the shared discretisation: every value and the column order equal plain
pyradiomics' whatever runs where."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from radiomics import imageoperations

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.radiomics import _binning, parallel
from hpd_imaging.radiomics.extract import _Extractor, extract_lesion_features, plain_pyradiomics
from hpd_imaging.radiomics.params import load_params, params_from_dict
from hpd_imaging.settings import REPO_PIPELINES

SPACING = (0.8, 0.8, 2.0)  # (i, j, k) mm; resampled to 1 mm as radiomics_ct.yaml does
#: radiomics_ct.yaml's structure (resampling, Original + LoG + Wavelet, every 3D class) with 2 sigmas
PARAMS = params_from_dict({
    "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}},
    "featureClass": {c: None for c in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")},
    "setting": {"binWidth": 25, "resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline",
                "padDistance": 5, "voxelArrayShift": 1000, "label": 1},
}, source="test")


@pytest.fixture(scope="module")
def ct_and_lesions() -> tuple[CtImage, list[LesionMask]]:
    """Noisy body with three textured lesions of ~2,000-10,000 voxels."""
    shape = (40, 110, 110)
    geo = ImageGeometry(shape=shape, spacing_mm=SPACING, origin_mm=(-40.1, 12.3, -60.0))
    k, j, i = np.indices(shape).astype(float)
    z, y, x = k * SPACING[2], j * SPACING[1], i * SPACING[0]
    rng = np.random.default_rng(21)
    hu = np.full(shape, 40.0) + rng.normal(0, 25, shape)
    masks = []
    for n, (cz, cy, cx, r) in enumerate([(40, 30, 30, 9.0), (35, 55, 60, 14.0), (45, 25, 65, 6.0)]):
        lesion = (z - cz) ** 2 + (y - cy) ** 2 + ((x - cx) / 1.2) ** 2 <= r**2
        hu[lesion] = 60.0 + 40 * np.sin(x[lesion] / 3) + rng.normal(0, 20, int(lesion.sum()))
        masks.append(LesionMask(mask=lesion, geometry=geo, label=f"L{n + 1}", source=MaskSource.LABELMAP,
                                lesion_id=f"L{n + 1}"))
    return CtImage(hu=hu.astype(np.float32), geometry=geo, source="synthetic"), masks


def _feature_columns(frame) -> list[str]:
    return [c for c in frame.columns if c.startswith(("original_", "log-", "wavelet-"))]


def _assert_equal_to_plain(result, ct: CtImage, masks: list[LesionMask], rel: float = 1e-9) -> None:
    """Every feature of each lesion row equals plain pyradiomics' on the whole CT, in pyradiomics' order."""
    assert result.errors == []
    lesions = result.features[result.features["region"] == "lesion"]
    assert list(lesions["lesion_id"]) == [m.lesion_id for m in masks]
    for (_, row), mask in zip(lesions.iterrows(), masks, strict=True):
        ref = plain_pyradiomics(ct.to_sitk(), mask.to_sitk(), PARAMS)
        names = [k for k in ref if not k.startswith("diagnostics_")]
        assert _feature_columns(result.features) == names
        got = np.array([float(row[k]) for k in names])
        want = np.array([float(ref[k]) for k in names])
        np.testing.assert_allclose(got, want, rtol=rel, atol=1e-12)


# --------------------------------------------------------------------------------------------------------
# the shared discretisation
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"binWidth": 25}, {"binWidth": 7.5}, {"binCount": 16}, {}])
def test_bin_image_equals_pyradiomics(settings: dict) -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(-300, 400, (12, 20, 20))  # negative values: the modulo of the lower bound matters
    mask = rng.random(matrix.shape) > 0.4
    want = imageoperations.binImage(matrix, mask, **settings)[0]
    got = _binning.bin_image(matrix, mask, settings)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    flat = np.full((4, 4, 4), 37.0)  # one grey level: pyradiomics' single-bin edges
    assert np.array_equal(_binning.bin_image(flat, flat > 0, settings),
                          imageoperations.binImage(flat, flat > 0, **settings)[0])


def test_one_discretisation_per_image(ct_and_lesions, monkeypatch) -> None:
    ct, masks = ct_and_lesions
    calls = []
    original = _binning.bin_image
    monkeypatch.setattr(_binning, "bin_image", lambda *a: calls.append(1) or original(*a))
    params = params_from_dict({"imageType": {"Original": {}, "LoG": {"sigma": [2.0]}}}, source="t")
    result = extract_lesion_features(ct, masks[:1], params)
    assert result.errors == []
    # 2 images x 6 classes (firstorder, glcm, glrlm, glszm, gldm, ngtdm) share 2 discretisations
    assert len(calls) == 2


# --------------------------------------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------------------------------------


def test_units_of_radiomics_ct_yaml() -> None:
    extractor = _Extractor(load_params(REPO_PIPELINES / "radiomics_ct.yaml"))
    whole = parallel.units_of(extractor, split=False)
    assert len(whole) == 1 and whole[0].shape and [t for t, _ in whole[0].image_types] == list(
        extractor.enabledImagetypes)
    split = parallel.units_of(extractor, split=True, slots=2)
    kinds = [(u.shape, tuple(t for t, _ in u.image_types), u.keep) for u in split]
    assert kinds[0] == (True, (), None)
    sigmas = [u.image_types[0][1]["sigma"] for u in split if u.image_types and u.image_types[0][0] == "LoG"]
    assert sigmas == [[1.0], [2.0], [3.0], [4.0], [5.0]]
    wavelet = [u.keep for u in split if u.image_types and u.image_types[0][0] == "Wavelet"]
    # 2 places: the 8 sub-bands (7 details + LLL) in one unit (8 x 0.99 + 0.6 = 8.52) beside the rest (shape
    # 0.4 + Original 0.99 + 5 LoG x 1.29 = 7.84): makespan 8.52; two groups (4.56 each) give 8.56 and
    # compute the transform twice
    assert wavelet == [tuple(range(8))]
    assert len(split) == 1 + 1 + 5 + 1
    # 16 places: one sub-band per unit (1.59 each: the longest unit, nothing to gain from fewer)
    assert [u.keep for u in parallel.units_of(extractor, True, slots=16)
            if u.image_types and u.image_types[0][0] == "Wavelet"] == [(n,) for n in range(8)]
    # the longest-first order starts with the wavelet unit, then the LoG sigmas, and ends with the shape unit
    order = parallel.largest_first(split, parallel._class_cost(extractor))
    assert split[order[0]].keep == tuple(range(8)) and order[-1] == 0
    assert [split[n].image_types[0][0] for n in order[1:6]] == ["LoG"] * 5


def test_lpt_schedule_on_grahams_example() -> None:
    """Jobs 3, 3, 2, 2, 2 on 2 places: longest first gives 3+2+2 | 3+2 = 7 (the best is 6: 3+3 | 2+2+2),
    Graham's 4/3 - 1/(3m) bound reached; in submission order 3 | 3 | then 2, 2, 2 as places free."""
    plan, span = parallel.lpt_schedule([2, 3, 2, 3, 2], 2)
    assert span == 7
    assert plan == [[1, 0, 4], [3, 2]]
    assert parallel.lpt_schedule([2, 3, 2, 3, 2], 1)[1] == 12
    assert parallel.lpt_schedule([], 2) == ([[], []], 0.0)


def test_wavelet_groups_by_predicted_schedule() -> None:
    # alone on 2 places: 8 sub-bands (cost 1 each, transform 0.5 per group): 1 group 8.5, 2 groups 4.5,
    # 3 groups (3.5, 3.5, 2.5) 6.0, 4 groups (2.5 each) 5.0 -> 2
    assert parallel.wavelet_groups(8, [], 1.0, 0.5, 2) == 2
    # beside a unit of 8.5: one group gives 8.5 | 8.5, two give 8.5 | 9.0 -> 1
    assert parallel.wavelet_groups(8, [8.5], 1.0, 0.5, 2) == 1
    # one place: never split (every group repeats the transform)
    assert parallel.wavelet_groups(8, [1.0], 1.0, 0.5, 1) == 1
    # 8 places: one sub-band each
    assert parallel.wavelet_groups(8, [], 1.0, 0.5, 8) == 8


def test_unit_cost_model() -> None:
    log = parallel.Unit(False, (("LoG", {"sigma": [2.0]}),))
    assert parallel.unit_cost(log) == pytest.approx(0.3 + 1.0)
    wavelet = parallel.Unit(False, (("Wavelet", {}),), keep=(0, 1, 2))
    assert parallel.unit_cost(wavelet, classes=0.5) == pytest.approx(0.6 + 3 * 0.5)
    assert parallel.unit_cost(parallel.Unit(False, (("Wavelet", {}),))) == pytest.approx(0.6 + 8)
    assert parallel.unit_cost(parallel.Unit(True, ())) == pytest.approx(0.4)
    both = parallel.Unit(True, (("Original", {}), ("LoG", {"sigma": [1.0, 2.0]})))
    assert parallel.unit_cost(both) == pytest.approx(0.4 + 1.0 + 2 * (0.3 + 1.0))
    # every class of radiomics_ct.yaml: 0.99 of an image; shape only: nothing per image
    assert parallel._class_cost(_Extractor(load_params(REPO_PIPELINES / "radiomics_ct.yaml"))) == (
        pytest.approx(0.99))
    shape_only = params_from_dict({"featureClass": {"shape": None}}, source="t")
    assert parallel._class_cost(_Extractor(shape_only)) == 0


def test_split_threshold_both_ways() -> None:
    extractor = _Extractor(PARAMS)
    # shape, Original, 2 LoG sigmas, 2 wavelet groups (4.56 each beside 3.97: makespan 6.84; one group: 8.52)
    assert len(parallel.plan_units(extractor, 5000, 5000, True, 2)) == 1 + 1 + 2 + 2
    assert len(parallel.plan_units(extractor, 4999, 5000, True, 2)) == 1
    assert len(parallel.plan_units(extractor, 10**6, 5000, False, 2)) == 1  # in this process: never split
    assert len(parallel.plan_units(extractor, 10**6, None, True, 2)) == 1


def test_units_run_here_equal_plain_pyradiomics(ct_and_lesions) -> None:
    ct, masks = ct_and_lesions
    result = extract_lesion_features(ct, masks[:2], PARAMS)
    _assert_equal_to_plain(result, ct, masks[:2])


@pytest.mark.slow
def test_split_units_on_a_pool_equal_serial_and_plain(ct_and_lesions) -> None:
    ct, masks = ct_and_lesions
    serial = extract_lesion_features(ct, masks, PARAMS, ring_widths_mm=[3])
    pooled = extract_lesion_features(ct, masks, PARAMS, ring_widths_mm=[3], workers=2, split_min_voxels=3000)
    assert pooled.features.equals(serial.features)
    assert pooled.diagnostics.equals(serial.diagnostics)
    _assert_equal_to_plain(pooled, ct, masks)


@pytest.mark.slow
def test_unusable_region_is_an_error_row_on_a_pool_too(ct_and_lesions) -> None:
    ct, masks = ct_and_lesions
    one_voxel = np.zeros(ct.geometry.shape, dtype=bool)
    one_voxel[20, 50, 50] = True
    bad = LesionMask(mask=one_voxel, geometry=ct.geometry, label="dot", source=MaskSource.LABELMAP,
                     lesion_id="dot")
    serial = extract_lesion_features(ct, [masks[2], bad], PARAMS)
    pooled = extract_lesion_features(ct, [masks[2], bad], PARAMS, workers=2, split_min_voxels=1)
    assert [lid for lid, _ in serial.errors] == ["dot"] and serial.errors == pooled.errors
    assert "pyradiomics could not compute features" in pooled.errors[0][1]
    assert pooled.features.equals(serial.features)


def test_daemonic_process_runs_here_instead_of_a_pool(ct_and_lesions, monkeypatch) -> None:
    """A daemonic process (e.g. a Dask worker without the cluster path) may not have children: workers=2
    then runs in-process, with the same values, instead of failing."""
    import multiprocessing

    ct, masks = ct_and_lesions
    params = params_from_dict({"imageType": {"Original": {}}}, source="t")
    serial = extract_lesion_features(ct, masks[2:], params, ring_widths_mm=[3])

    def no_pool(*args, **kwargs):
        raise AssertionError("a daemonic process started a pool")

    parallel.shutdown_pools()  # a pool kept from an earlier test would not be started again
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True)
    here = extract_lesion_features(ct, masks[2:], params, ring_widths_mm=[3], workers=2, split_min_voxels=1)
    assert here.errors == [] and here.features.equals(serial.features)
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", False)
    with pytest.raises(AssertionError, match="started a pool"):  # the same call outside a daemon uses one
        extract_lesion_features(ct, masks[2:], params, ring_widths_mm=[3], workers=2, split_min_voxels=1)


def test_merge_keeps_unit_order_and_reports_the_first_failure() -> None:
    head = OrderedDict(diagnostics_a=1)
    task = (0, "lesion", None, ())
    parts = [OrderedDict(b=2), OrderedDict(c=3)]
    assert list(parallel._merge(task, head, parts)[2]) == ["diagnostics_a", "b", "c"]
    assert parallel._merge(task, head, [OrderedDict(b=2), "ValueError: no", "RuntimeError: late"])[2] == (
        "ValueError: no")
    assert parallel._merge(task, "ValueError: mask", parts)[2] == "ValueError: mask"


# --------------------------------------------------------------------------------------------------------
# Dask: a patient's lesions spread over the cluster's workers
# --------------------------------------------------------------------------------------------------------


def _patient_task(ct: CtImage, masks: list[LesionMask], dask: bool):
    return extract_lesion_features(ct, masks, PARAMS, dask=dask, split_min_voxels=5000)


@pytest.mark.slow
def test_lesions_of_one_patient_run_on_every_dask_worker(ct_and_lesions) -> None:
    distributed = pytest.importorskip("distributed")
    ct, masks = ct_and_lesions
    local = extract_lesion_features(ct, masks, PARAMS)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            spread = client.submit(_patient_task, ct, masks, True, pure=False).result()
        kept = client.submit(_patient_task, ct, masks, False, pure=False).result()
    units = [t for t in stream.data if str(t["key"]).startswith("radiomics-unit-")]
    # 3 lesions: the largest (> 5,000 voxels) split by image type, the others one unit each
    assert len(units) >= 3 + 1
    assert len({t["worker"] for t in units}) == 2
    assert spread.features.equals(local.features) and spread.diagnostics.equals(local.diagnostics)
    assert kept.features.equals(local.features)
    _assert_equal_to_plain(local, ct, masks)


def test_two_interleaved_calls_in_threads_keep_their_own_ct(ct_and_lesions) -> None:
    """Inside a Dask worker a patient task secedes while its units run, and the worker starts the next
    patient's task in another thread of the same process. Each call must keep its own CT and extractor: with
    the former module-global state, the second call overwrote the first one's image mid-call and its cleanup
    emptied it (the 12-patient real-size run: KeyError 'image' / 'extractor' for every lesion). Here the first
    call stops after its first region until the second call has started (a barrier in the progress callback),
    then both finish; each equals its own serial result."""
    import threading

    ct, masks = ct_and_lesions
    other = CtImage(hu=(ct.hu * 0.5 - 30.0).astype(np.float32), geometry=ct.geometry, source="synthetic")
    params = params_from_dict({**PARAMS.as_dict(), "imageType": {"Original": {}}}, source="test")
    cts = (("a", ct), ("b", other))
    serial = {name: extract_lesion_features(c, masks[:2], params).features for name, c in cts}
    barrier = threading.Barrier(2, timeout=60)
    results: dict[str, object] = {}

    def run(name: str, image: CtImage) -> None:
        def wait_once(done: int, total: int) -> None:
            if done == 1:
                barrier.wait()

        results[name] = extract_lesion_features(image, masks[:2], params, progress=wait_once).features

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in cts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for name in ("a", "b"):
        got = results[name]
        cols = _feature_columns(serial[name])
        assert cols and _feature_columns(got) == cols  # type: ignore[arg-type]
        np.testing.assert_array_equal(got[cols].to_numpy(float), serial[name][cols].to_numpy(float))  # type: ignore[index]
    assert not np.allclose(serial["a"][cols].to_numpy(float), serial["b"][cols].to_numpy(float))


def test_extractors_built_at_once_in_threads() -> None:
    """pyradiomics validates parameters with pykwalify, whose YAML parser is not thread-safe: extractors built
    at the same time in threads of one process (two patient tasks in one Dask worker) failed with a
    ParserError on pyradiomics' own schema. Building them is serialised; every build succeeds."""
    import threading

    from hpd_imaging.radiomics._extractor import HullExtractor

    start = threading.Barrier(8, timeout=60)
    errors: list[BaseException] = []
    built: list[object] = []

    def build() -> None:
        start.wait()
        try:
            for _ in range(3):
                built.append(HullExtractor(PARAMS.as_dict()))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(built) == 24
