"""Where one exam's pyradiomics work runs: each region's extraction cut into independent units, run in this
process, on a process pool, or on the Dask cluster that the patient's task runs in, and merged in
pyradiomics' own order, so that the values and the column order do not depend on where they ran.

pyradiomics' ``RadiomicsFeatureExtractor.execute`` (3.0.1, segment-based) is, in order: load and resample
the image and mask, check the mask, the diagnostics, the shape features, then for every image type (Original,
each LoG sigma, each wavelet sub-band, ...) a filter and the feature classes on it. Everything after the
first steps depends only on the resampled image and mask, and each image type only on its own filter, so:

* :func:`prepare` runs the first steps (:class:`Prepared`: resampled image and masks, bounding box,
  diagnostics), once per region, where the CT is;
* a :class:`Unit` is the shape features, or a group of image types (one LoG sigma, some wavelet sub-bands):
  a region below ``split_min_voxels`` is one unit (everything, as before), a larger one is the shape unit plus
  one unit per image (the wavelet sub-bands in the number of groups whose predicted schedule ends first:
  each group computes the transform again);
* :func:`execute_unit` computes one unit from the prepared region; the region's output is the diagnostics
  followed by the units' outputs in unit order, i.e. ``execute``'s dictionary, key for key;
* units are submitted longest first (:func:`unit_cost`: a cost model per filter, feature class and shape,
  measured on STS_001; :func:`lpt_schedule`), so that the last ones to finish are small.

Profile (STS_001, radiomics_ct.yaml, 365,794 voxels at 1 mm, one process): preparation 0.4 s (B-spline
resampling 0.25, diagnostics' hashes and label statistics 0.15); per image the six feature classes 0.43 s,
of which 0.31 s in pyradiomics' C matrix code (glrlm 0.11, glszm 0.07, ngtdm 0.05, gldm 0.05, glcm 0.03) and
0.04 s in firstorder's ``pow`` (moments 3 and 4), neither changeable with identical values; filters: LoG
0.10-0.19 s per sigma, the wavelet transform 0.2-0.3 s; shape 0.16 s; pickling the prepared region (7.5 MB)
2 ms each way. On 2 processes the bound is the preparation plus half of the units' ~6.5 CPU-s.

Where units run (:func:`run_regions`): on the Dask cluster when called inside a Dask worker (the pipeline's
patient task) and ``dask`` is allowed (``worker_client``: the patient task secedes while the units, shipped
as small resampled crops, run on any worker, at a higher priority than patients not yet started); else on a
process pool of ``workers`` processes (forked from a fork server; started on the first call and kept warm
for the next ones: :func:`shutdown_pools`) when there is more than one unit and this process may have
children (not a daemon); else here, one after the other.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import SimpleITK as sitk  # noqa: N813 (the universal alias)
from radiomics import featureextractor, generalinfo, imageoperations

logger = logging.getLogger(__name__)

#: One region: (index of its lesion, region name, cropped region mask, its box on the CT grid)
Task = tuple[int, str, Any, tuple[slice, ...]]
#: A region's result: (lesion index, region name, pyradiomics' ordered output or the error message)
Result = tuple[int, str, "OrderedDict[str, Any] | str"]


@dataclass(frozen=True)
class Unit:
    """Part of one region's extraction: the shape features (``shape``) and/or image types.

    ``image_types``: ``(imageType, custom settings)`` pairs as in the extractor's ``enabledImagetypes``
    (LoG split by sigma); ``keep``: indices of the images that the single image type of the unit yields to
    compute (wavelet sub-bands), None for all."""

    shape: bool
    image_types: tuple[tuple[str, dict[str, Any]], ...]
    keep: tuple[int, ...] | None = None


@dataclass
class Prepared:
    """A region after pyradiomics' load, resampling and mask check: what every unit starts from."""

    image: sitk.Image
    mask: sitk.Image  # for the feature classes (resegmented when resegmentRange is set)
    shape_mask: sitk.Image
    bounding_box: Any
    settings: dict[str, Any]
    head: OrderedDict[str, Any]  # diagnostics_* (additionalInfo)


def prepare(extractor: Any, image: sitk.Image, mask: sitk.Image, label: int = 1) -> Prepared:
    """Steps 1-5 of ``RadiomicsFeatureExtractor.execute`` (pyradiomics 3.0.1, segment-based), same calls in
    the same order."""
    settings = extractor.settings.copy()
    settings["label"] = label
    if featureextractor.geometryTolerance != settings.get("geometryTolerance"):
        extractor._setTolerance()  # noqa: SLF001 (what execute does)
    info = None
    if settings.get("additionalInfo", False):
        info = generalinfo.GeneralInfo()
        info.addGeneralSettings(settings)
        info.addEnabledImageTypes(extractor.enabledImagetypes)
    image, mask = extractor.loadImage(image, mask, info, **settings)
    box, corrected = imageoperations.checkMask(image, mask, **settings)
    if corrected is not None:
        if info is not None:
            info.addMaskElements(image, corrected, label, "corrected")
        mask = corrected
    resegmented = None
    if settings.get("resegmentRange") is not None:
        resegmented = imageoperations.resegmentMask(image, mask, **settings)
        box, corrected = imageoperations.checkMask(image, resegmented, **settings)
        if info is not None:
            info.addMaskElements(image, resegmented, label, "resegmented")
    head: OrderedDict[str, Any] = OrderedDict(info.getGeneralInfo() if info is not None else {})
    reseg_shape = settings.get("resegmentShape", False)
    shape_mask = resegmented if (reseg_shape and resegmented is not None) else mask
    feature_mask = resegmented if resegmented is not None else mask
    return Prepared(image, feature_mask, shape_mask, box, settings, head)


def _n_images(image_type: str, args: dict[str, Any], dimension: int) -> int | None:
    """How many images pyradiomics' ``get<imageType>Image`` yields, where known without running it."""
    if image_type == "Wavelet":
        dims = dimension - 1 if args.get("force2D", False) else dimension
        return (2**dims - 1) * int(args.get("level", 1)) + 1
    return None


def units_of(extractor: Any, split: bool, slots: int = 2) -> list[Unit]:
    """The units of one region in pyradiomics' order: all in one, or (``split``) shape + one per image (LoG
    per sigma; wavelet sub-bands in contiguous groups, as many as :func:`wavelet_groups` finds best for
    ``slots`` places to run)."""
    image_types = list(extractor.enabledImagetypes.items())
    has_shape = any(name.startswith("shape") for name in extractor.enabledFeatures)
    if not split:
        return [Unit(shape=has_shape, image_types=tuple((k, dict(v)) for k, v in image_types))]
    units = [Unit(shape=True, image_types=())] if has_shape else []
    grouped: list[tuple[int, str, dict[str, Any], int]] = []  # (position, type, custom, images)
    for image_type, custom in image_types:
        args = {**extractor.settings, **custom}
        if image_type == "LoG":
            units += [Unit(False, ((image_type, {**custom, "sigma": [s]}),)) for s in args.get("sigma", [])]
            continue
        n = _n_images(image_type, args, 3)
        if n is None or n == 1:
            units.append(Unit(False, ((image_type, dict(custom)),)))
            continue
        grouped.append((len(units), image_type, dict(custom), n))
        units.append(Unit(False, ((image_type, dict(custom)),)))  # placeholder, replaced below
    classes = _class_cost(extractor)
    for position, image_type, custom, n in reversed(grouped):
        rest = [unit_cost(u, classes) for k, u in enumerate(units) if k != position]
        groups = wavelet_groups(n, rest, classes, FILTER_COST.get(image_type, DEFAULT_FILTER_COST), slots)
        bounds = [round(g * n / groups) for g in range(groups + 1)]
        units[position:position + 1] = [Unit(False, ((image_type, custom),), tuple(range(a, b)))
                                         for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return units


# ---------------------------------------------------------------------------------------------------------
# Cost model and longest-processing-time-first schedule
# ---------------------------------------------------------------------------------------------------------

#: CPU cost of pyradiomics' feature classes on one image, per class, relative to the six together (= 1.0);
#: measured on the IBSI sarcoma STS_001 with pipelines/radiomics_ct.yaml (365,794 voxels at 1 mm, 14
#: images): firstorder 0.10 s, glcm 0.035, glrlm 0.10, glszm 0.08, gldm 0.05, ngtdm 0.05 per image.
CLASS_COST = {"firstorder": 0.24, "glcm": 0.08, "glrlm": 0.24, "glszm": 0.19, "gldm": 0.12, "ngtdm": 0.12}
DEFAULT_CLASS_COST = 0.15
#: CPU cost of computing one filter (per unit that computes it) in the same measure: a LoG sigma 0.10-0.19
#: s, the 3D coif1 wavelet transform (all eight sub-bands at once) 0.21-0.37 s, on STS_001.
FILTER_COST = {"Original": 0.0, "LoG": 0.3, "Wavelet": 0.6}
DEFAULT_FILTER_COST = 0.2
#: the 3D shape unit (convex-hull diameters, mesh): 0.16 s on STS_001
SHAPE_COST = 0.4


def _class_cost(extractor: Any) -> float:
    """Cost of the enabled feature classes on one image (1.0: the six 3D texture + first-order classes)."""
    return sum(CLASS_COST.get(name, DEFAULT_CLASS_COST) for name in extractor.enabledFeatures
               if not name.startswith("shape"))


def unit_cost(unit: Unit, classes: float = 1.0) -> float:
    """Predicted CPU cost of a unit of one region (see :data:`CLASS_COST`): its filters, its images'
    feature classes (``classes`` per image) and the shape features. Costs of units of one region are
    comparable; across regions, multiply by the region's voxels."""
    cost = SHAPE_COST if unit.shape else 0.0
    for image_type, custom in unit.image_types:
        if unit.keep is not None:
            images = len(unit.keep)
        elif image_type == "LoG":
            images = len(custom.get("sigma", [])) or 1
        else:
            images = _n_images(image_type, custom, 3) or 1
        filters = images if image_type == "LoG" else 1
        cost += filters * FILTER_COST.get(image_type, DEFAULT_FILTER_COST) + images * classes
    return cost


def lpt_schedule(costs: Sequence[float], slots: int) -> tuple[list[list[int]], float]:
    """Longest processing time first: each job (largest first, ties in index order) to the place that
    frees first. Returns the jobs of each place in start order and the makespan (Graham: at most 4/3 of the
    best schedule's)."""
    loads = [0.0] * max(1, slots)
    plan: list[list[int]] = [[] for _ in loads]
    for job in sorted(range(len(costs)), key=lambda n: -costs[n]):
        place = min(range(len(loads)), key=lambda p: loads[p])
        loads[place] += costs[job]
        plan[place].append(job)
    return plan, max(loads)


def wavelet_groups(n_images: int, other_costs: Sequence[float], classes: float, transform: float,
                   slots: int) -> int:
    """How many groups to cut ``n_images`` sub-bands into, next to units of ``other_costs``: the number
    whose longest-first schedule on ``slots`` places ends first; each group computes the whole transform
    (``transform``) again, so on a tie the fewer groups (less work)."""
    best, best_span = 1, float("inf")
    for groups in range(1, min(n_images, 2 * max(1, slots)) + 1):
        bounds = [round(g * n_images / groups) for g in range(groups + 1)]
        mine = [transform + (b - a) * classes for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
        span = lpt_schedule([*other_costs, *mine], slots)[1]
        if span < best_span - 1e-9:
            best, best_span = groups, span
    return best


def largest_first(units: Sequence[Unit], classes: float = 1.0) -> list[int]:
    """Indices of ``units`` in submission order: largest predicted cost first (ties in unit order), so
    that the last ones to finish are small (the longest-first rule)."""
    return sorted(range(len(units)), key=lambda n: -unit_cost(units[n], classes))


def plan_units(extractor: Any, region_voxels: int, split_min_voxels: int | None, elsewhere: bool,
               slots: int) -> list[Unit]:
    """A region's units: split by image type when it runs ``elsewhere`` (pool, cluster) and has at least
    ``split_min_voxels`` voxels; else one unit, as pyradiomics runs it."""
    split = elsewhere and split_min_voxels is not None and region_voxels >= split_min_voxels
    return units_of(extractor, split, slots)


def execute_unit(extractor: Any, prepared: Prepared, unit: Unit) -> OrderedDict[str, Any]:
    """Step 4 (shape) and/or step 6 (image types) of ``execute`` for one unit of a prepared region."""
    settings = prepared.settings
    out: OrderedDict[str, Any] = OrderedDict()
    if unit.shape:
        out.update(extractor.computeShape(prepared.image, prepared.shape_mask, prepared.bounding_box,
                                          **settings))
    for image_type, custom in unit.image_types:
        args = settings.copy()
        args.update(custom)
        images = getattr(imageoperations, f"get{image_type}Image")(prepared.image, prepared.mask, **args)
        for n, (image, name, kwargs) in enumerate(images):
            if unit.keep is not None and n not in unit.keep:
                continue
            image, mask = imageoperations.cropToTumorMask(image, prepared.mask, prepared.bounding_box,
                                                          padDistance=0)
            out.update(extractor.computeFeatures(image, mask, name, **kwargs))
    return out


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------------------
# Units elsewhere: one extractor per process (pool) or per thread (Dask worker)
# ---------------------------------------------------------------------------------------------------------

_LOCAL = threading.local()


def _extractor_for(params: dict[str, Any], fast_shape: bool) -> Any:
    from hpd_imaging.radiomics._extractor import HullExtractor

    key = (json.dumps(params, sort_keys=True, default=str), fast_shape)
    cached = getattr(_LOCAL, "extractor", None)
    if cached is None or cached[0] != key:
        _LOCAL.extractor = (key, HullExtractor(params, fast_shape=fast_shape))
    return _LOCAL.extractor[1]


def remote_unit(params: dict[str, Any], fast_shape: bool, prepared: Prepared,
                unit: Unit) -> OrderedDict[str, Any] | str:
    """:func:`execute_unit` in a pool process or on a Dask worker, with an extractor built from the
    parameter mapping (:class:`~._extractor.HullExtractor`: loading is done, so the crop-grid ``loadImage``
    of the caller's extractor is not needed); an error becomes its message."""
    try:
        return execute_unit(_extractor_for(params, fast_shape), prepared, unit)
    except Exception as exc:  # noqa: BLE001 - pyradiomics raises ValueError/RuntimeError for unusable ROIs
        return _message(exc)


def _warm_up(params: dict[str, Any], fast_shape: bool) -> None:
    """Run in each new pool process while the caller prepares the first region: the extractor (pyradiomics'
    parameter validation, ~0.1 s) is then built when the first unit arrives."""
    _extractor_for(params, fast_shape)


def on_dask_worker() -> bool:
    """True inside a task of a Dask worker. Without importing ``distributed`` when nothing has: a process
    that never imported it is no Dask worker, and the import costs 0.3-0.9 s on the first call."""
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# The process pool: started once per process and kept warm
# ---------------------------------------------------------------------------------------------------------

_POOLS: dict[tuple[int, str], ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int, start_method: str, params: dict[str, Any], fast_shape: bool) -> ProcessPoolExecutor:
    """This process's pool of ``workers`` processes, started on first use and then kept (until
    :func:`shutdown_pools` or the end of the process): a call on a warm pool pays no process start (fork
    server start with pyradiomics' imports: 1.4 CPU-s once; each child: fork, extractor) and the children
    keep their extractors. Idle, each child holds 115-130 MiB RSS (pyradiomics, SimpleITK, scipy; STS_001's
    wavelet unit peaks at 300 MiB). Thread-safe: the calls of two threads share it (``submit`` is
    thread-safe; a child runs one unit at a time)."""
    key = (workers, start_method)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(start_method))
            _POOLS[key] = pool
            for _ in range(workers):  # start the children now, while this process prepares the first region
                pool.submit(_warm_up, params, fast_shape)
        return pool


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (a child died, e.g. killed for memory), so that the next call starts a new one."""
    with _POOLS_LOCK:
        for key, cached in list(_POOLS.items()):
            if cached is pool:
                del _POOLS[key]
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown_pools() -> None:
    """Stop this process's pools (their children exit); the next pool call starts a new one."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def run_regions(
    tasks: Sequence[Task],
    prepare_region: Callable[[Task], Prepared],
    extractor: Any,
    params: dict[str, Any],
    *,
    fast_shape: bool,
    workers: int,
    split_min_voxels: int | None,
    use_dask: bool,
    start_method: str = "forkserver",
) -> Iterator[Result]:
    """Every region's pyradiomics output (or error message), in task order.

    ``prepare_region`` runs here (it needs the CT) with ``extractor``; units run here, on a pool of
    ``workers`` processes (each builds its extractor from ``params``, the pyradiomics parameter mapping of
    ``extractor``) or on the Dask cluster (see the module docstring). A region whose mask has at least
    ``split_min_voxels`` voxels (None: never) is split by image type there."""
    where = "here"
    slots = max(1, workers)
    if use_dask and on_dask_worker():
        where = "dask"
    elif workers > 1 and not multiprocessing.current_process().daemon:
        where = "pool"
    if where == "dask":
        slots = _dask_slots()

    plans = [plan_units(extractor, int(t[2].sum()), split_min_voxels, where != "here", slots) for t in tasks]
    if where == "here" or sum(len(p) for p in plans) <= 1:
        for task, units in zip(tasks, plans, strict=True):
            yield _run_here(task, units, prepare_region, extractor)
        return
    if where == "dask":
        yield from _run_on_dask(tasks, plans, prepare_region, params, fast_shape, _class_cost(extractor))
        return
    pool = _pool(workers, start_method, params, fast_shape)
    classes = _class_cost(extractor)
    submitted: list[tuple[Task, OrderedDict[str, Any] | str, list[Future]]] = []
    try:
        for task, units in zip(tasks, plans, strict=True):
            try:
                prepared = prepare_region(task)
            except Exception as exc:  # noqa: BLE001
                submitted.append((task, _message(exc), []))
                continue
            futures: list[Future] = [None] * len(units)  # type: ignore[list-item]
            for n in largest_first(units, classes):
                futures[n] = pool.submit(remote_unit, params, fast_shape, prepared, units[n])
            submitted.append((task, prepared.head, futures))
        for task, head, futures in submitted:
            yield _merge(task, head, [f.result() for f in futures])
    except BrokenProcessPool:
        _drop_pool(pool)
        raise


#: what a pool process needs, imported once by the fork server so that its children start in milliseconds
_PRELOAD = ["hpd_imaging.radiomics._extractor", "hpd_imaging.radiomics.parallel"]


def _pool_context(start_method: str) -> Any:
    """The multiprocessing context of the pool. "forkserver" (the default): children are forked from a
    server process started once per process lifetime with nothing but :data:`_PRELOAD` imported, so they
    neither repeat the imports (1.5 CPU-seconds each with spawn: pyradiomics, SimpleITK, scipy) nor inherit
    the caller's threads (forking a process that runs threads, e.g. ITK's pool, can deadlock)."""
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(_PRELOAD)
    return context


def _run_here(task: Task, units: list[Unit], prepare_region: Callable[[Task], Prepared],
              extractor: Any) -> Result:
    try:
        prepared = prepare_region(task)
        out = OrderedDict(prepared.head)
        for unit in units:
            out.update(execute_unit(extractor, prepared, unit))
    except Exception as exc:  # noqa: BLE001 - pyradiomics raises ValueError/AssertionError for unusable ROIs
        return task[0], task[1], _message(exc)
    return task[0], task[1], out


def _merge(task: Task, head: OrderedDict[str, Any] | str, parts: list[OrderedDict[str, Any] | str]) -> Result:
    if isinstance(head, str):
        return task[0], task[1], head
    out = OrderedDict(head)
    for part in parts:
        if isinstance(part, str):
            return task[0], task[1], part
        out.update(part)
    return task[0], task[1], out


def _dask_slots() -> int:
    """Threads of the cluster this worker belongs to (for grouping wavelet sub-bands), at most 8."""
    from distributed import get_client

    try:
        return max(1, min(8, sum(get_client().nthreads().values())))
    except Exception:  # noqa: BLE001 - a grouping hint only
        return 2


def _run_on_dask(tasks: Sequence[Task], plans: list[list[Unit]], prepare_region: Callable[[Task], Prepared],
                 params: dict[str, Any], fast_shape: bool, classes: float) -> Iterator[Result]:
    from distributed import worker_client

    submitted: list[tuple[Task, OrderedDict[str, Any] | str, list[Any]]] = []
    # the patient's task secedes from the worker's thread pool while its units run anywhere on the cluster;
    # priority 1 puts them ahead of patients not yet started (default 0), so a worker finishes a patient
    # before it takes up another one's images
    with worker_client() as client:
        for task, units in zip(tasks, plans, strict=True):
            try:
                prepared = prepare_region(task)
            except Exception as exc:  # noqa: BLE001
                submitted.append((task, _message(exc), []))
                continue
            [shared] = client.scatter([prepared], hash=False)
            futures: list[Any] = [None] * len(units)
            order = largest_first(units, classes)
            for rank, n in enumerate(order):
                key = f"radiomics-unit-{task[0]}-{task[1]}-{n}-{shared.key}"
                # the largest first here too (a worker runs its queued tasks by priority): 1 .. len(units)
                futures[n] = client.submit(remote_unit, params, fast_shape, shared, units[n], pure=False,
                                           priority=len(order) - rank, key=key)
            submitted.append((task, prepared.head, futures))
        for task, head, futures in submitted:
            parts = client.gather(futures) if futures else []
            yield _merge(task, head, parts)
