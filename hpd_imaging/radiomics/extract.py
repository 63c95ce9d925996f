"""pyradiomics features of lesions and peritumoral rings, from in-memory CT and masks.

With :mod:`.params` (parameter files), the only module of hpd-imaging that imports pyradiomics. It

* extracts features per lesion and per peritumoral ring on :class:`~hpd_imaging.domain.CtImage` /
  :class:`~hpd_imaging.domain.LesionMask` objects converted to SimpleITK in memory (no temporary files);
* replaces pyradiomics' O(n^2) diameter search by a convex-hull computation with identical values
  (:mod:`hpd_imaging.radiomics._hull_shape`), which is most of the default-settings time on large lesions;
* turns a lesion that pyradiomics refuses (e.g. a single voxel) into an ``errors`` entry, never a crash;
* records provenance with every row: pyradiomics version, sha256 of the canonical parameters, of the image and
  of the mask; pyradiomics' own ``diagnostics_*`` values go to their own table.

Feature columns are named as pyradiomics names them (``original_glcm_Contrast``); each row also carries
``lesion_id`` and ``region`` (``lesion``, ``ring5mm``, ...), and ``patient_id`` / ``scan_date`` when given.

Parameter files are read and validated by :mod:`.params` (which also detaches pyradiomics' logging handler).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import radiomics  # pyradiomics
import SimpleITK as sitk  # noqa: N813 (the universal alias)
from radiomics import featureextractor, imageoperations

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask
from hpd_imaging.errors import ConfigError, GeometryError
from hpd_imaging.radiomics._extractor import HullExtractor
from hpd_imaging.radiomics.aggregate import aggregate_patient
from hpd_imaging.radiomics.ibsi import mirp_version, run_mirp
from hpd_imaging.radiomics.parallel import Prepared, prepare, run_regions
from hpd_imaging.radiomics.params import (
    RadiomicsParams,
    _quiet_pykwalify,
    load_params,
    params_from_dict,
)
from hpd_imaging.radiomics.regions import body_mask, region_name, ring_crop
from hpd_imaging.radiomics.tags import with_ibsi_tags

__all__ = [
    "PYRADIOMICS_VERSION",
    "RadiomicsParams",
    "RadiomicsResult",
    "aggregate_patient",
    "extract_lesion_features",
    "load_params",
    "params_from_dict",
]

logger = logging.getLogger(__name__)

PYRADIOMICS_VERSION: str = str(radiomics.__version__)


# --------------------------------------------------------------------------------------------------
# pyradiomics with the fast shape path (hull shape and shared binning: ._extractor) and the crop's grid
# --------------------------------------------------------------------------------------------------


class _Extractor(HullExtractor):
    """:class:`~hpd_imaging.radiomics._extractor.HullExtractor` whose ``loadImage`` resamples a crop on the
    whole CT's grid (:func:`_resample_on_full_grid`)."""

    def __init__(self, params: RadiomicsParams, fast_shape: bool = True) -> None:
        super().__init__(params.as_dict(), fast_shape=fast_shape)

    # Set by _RegionSource.prepare_region when it hands pyradiomics a crop: the whole CT (grid reference) and
    # the crop's first voxel (i, j, k) in it. None: pyradiomics receives the whole CT.
    full_image: sitk.Image | None = None
    crop_offset: np.ndarray | None = None

    def loadImage(self, image, mask, generalInfo=None, **kwargs):  # noqa: N802, N803, ANN001, ANN201 (pyradiomics API)
        """pyradiomics' loadImage, except that on a crop the resampling grid is the one pyradiomics computes
        for the whole CT (see :func:`_resample_on_full_grid`). Same steps, in the same order, as
        ``RadiomicsFeatureExtractor.loadImage`` of pyradiomics 3.0.1."""
        if self.full_image is None or self.crop_offset is None:
            return super().loadImage(image, mask, generalInfo, **kwargs)
        mask = imageoperations.getMask(mask, **kwargs)
        if generalInfo is not None:
            generalInfo.addImageElements(image)
            generalInfo.addMaskElements(None, mask, kwargs.get("label", 1))
        if kwargs.get("normalize", False):  # never reached: _crop_margin_voxels refuses to crop then
            raise AssertionError("normalize uses whole-image statistics; a crop must not be used")
        if kwargs.get("interpolator") is not None and kwargs.get("resampledPixelSpacing") is not None:
            image, mask = _resample_on_full_grid(image, mask, self.full_image, self.crop_offset, **kwargs)
            if generalInfo is not None:
                generalInfo.addImageElements(image, "interpolated")
                generalInfo.addMaskElements(image, mask, kwargs.get("label", 1), "interpolated")
        elif kwargs.get("preCrop", False):
            bb, corrected = imageoperations.checkMask(image, mask, **kwargs)
            if corrected is not None:
                mask = corrected
            image, mask = imageoperations.cropToTumorMask(image, mask, bb, **kwargs)
        return image, mask


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


@dataclass
class RadiomicsResult:
    """Output of :func:`extract_lesion_features`.

    ``features``: one row per lesion and region; ``diagnostics``: pyradiomics' ``diagnostics_*`` values (as
    text) for the same rows; ``errors``: ``(lesion_id, message)`` for every lesion/region that could not be
    computed.
    """

    features: pd.DataFrame
    diagnostics: pd.DataFrame
    errors: list[tuple[str, str]] = field(default_factory=list)

    def errors_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.errors, columns=["lesion_id", "message"])


def _sha256_array(array: np.ndarray, geometry: ImageGeometry) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([str(array.dtype), list(array.shape), geometry.spacing_mm, geometry.origin_mm,
                         geometry.direction]).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _sha256_crop(crop: np.ndarray, box: tuple[slice, ...], geometry: ImageGeometry) -> str:
    """:func:`_sha256_array` of the whole-grid mask that is ``crop`` at ``box``, hashed slice by slice
    without building the whole grid (the same bytes in the same order, so the same digest)."""
    h = hashlib.sha256()
    h.update(json.dumps([str(np.dtype(bool)), list(geometry.shape), geometry.spacing_mm, geometry.origin_mm,
                         geometry.direction]).encode())
    n_k, n_j, n_i = geometry.shape
    empty = bytes(n_j * n_i)
    plane = np.zeros((n_j, n_i), dtype=bool)
    for k in range(n_k):
        if box[0].start <= k < box[0].stop:
            plane[box[1], box[2]] = crop[k - box[0].start]
            h.update(plane.tobytes())
            plane[box[1], box[2]] = False
        else:
            h.update(empty)
    return h.hexdigest()


def _mask_to_sitk(mask: np.ndarray, geometry: ImageGeometry) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    geometry.apply_to_sitk(image)
    return image


def _scalar(value: Any) -> float:
    return float(np.asarray(value).item())


# --------------------------------------------------------------------------------------------------
# Cropping before pyradiomics (the rule, and the resampling grid of the whole CT)
# --------------------------------------------------------------------------------------------------

#: Voxels of the original grid kept beyond what the B-spline interpolation reads. sitkBSpline first computes
#: B-spline coefficients with a recursive (IIR) prefilter along each whole image line; the crop edge enters a
#: coefficient d voxels away with weight |z|^d, z = sqrt(3) - 2 (|z| = 0.268): 0.268^32 = 5e-19 of the HU
#: range, far below the double rounding of a HU value (ulp(1000) = 1e-13), so the interpolated values are the
#: same numbers. The tests check bit-identical features.
BSPLINE_DECAY_VOXELS = 32
#: Image types whose values at a voxel do not depend on the image outside the mask's bounding box when
#: pyradiomics does not resample (no filter, no whole-image statistic).
_CROP_SAFE_IMAGE_TYPES_WITHOUT_RESAMPLING = frozenset({"Original"})


def _crop_margin_voxels(params: RadiomicsParams, spacing_mm: Sequence[float]) -> tuple[int, int, int] | None:
    """Margin (i, j, k voxels) around a region's bounding box that gives pyradiomics identical features on the
    crop as on the whole CT, or None when no crop is provably identical (then the whole CT is passed).

    The rule (pyradiomics 3.0.1, segment-based extraction):

    * ``normalize: true`` -> None: normalizeImage uses the mean and SD of the whole image.
    * resampling (``interpolator`` and ``resampledPixelSpacing``) -> crop. pyradiomics resamples only the
      mask's bounding box + ``padDistance`` resampled voxels, on a grid anchored at the image origin; all
      after (checkMask, shape, LoG / wavelet / ... filters, their whole-image statistics) sees only that
      resampled box. The extractor therefore computes the grid from the whole CT
      (:func:`_resample_on_full_grid`, same arithmetic as pyradiomics) and resamples the mask from the
      whole-CT grid (:func:`_mask_on_full_grid`: nearest-neighbour ties at half-voxel points must round as on
      the whole CT), so the resampled mask is the same voxels and the resampled image the same values (to the
      last bits of the interpolation's index), provided the crop holds the grid, the interpolator's support
      (2 voxels) and :data:`BSPLINE_DECAY_VOXELS`. Margin per axis:
      ``ceil(padDistance * max(resampled, original spacing) / original spacing) + 2 + BSPLINE_DECAY_VOXELS``.
    * no resampling -> crop only when every image type is Original (margin ``padDistance``): filters (LoG,
      Wavelet, Gradient, LBP: support over the whole image, wavelet wraps around it) and Square / SquareRoot /
      Logarithm / Exponential (scaled by the whole image's maximum) run on the whole image, so a crop would
      change them.

    Clipping at the CT's own edges is the same with and without the crop (the crop is clipped there too).
    """
    setting = params.as_dict().get("setting") or {}
    if setting.get("normalize", False):
        return None
    pad = int(setting.get("padDistance", 5))
    resampled = setting.get("resampledPixelSpacing")
    if setting.get("interpolator", "sitkBSpline") is not None and resampled is not None:
        out = []
        for original, new in zip(spacing_mm, resampled, strict=True):
            new_mm = float(new) if float(new) != 0 else float(original)
            out.append(int(np.ceil(pad * max(new_mm, original) / original)) + 2 + BSPLINE_DECAY_VOXELS)
        return out[0], out[1], out[2]
    if set(params.image_types) <= _CROP_SAFE_IMAGE_TYPES_WITHOUT_RESAMPLING:
        return pad, pad, pad
    return None


def _resample_on_full_grid(image: sitk.Image, mask: sitk.Image, full: sitk.Image, offset: np.ndarray,
                           **kwargs: Any) -> tuple[sitk.Image, sitk.Image]:
    """pyradiomics' ``imageoperations.resampleImage`` (3.0.1) applied to a crop, with the grid it computes for
    the whole CT ``full`` (the crop starts at voxel ``offset`` (i, j, k) of it).

    Hand-written because pyradiomics derives the grid from its input image: on a crop, the grid origin moves
    by the crop offset times spacing ratio, which is not a whole number of resampled voxels (0.7 mm -> 1 mm),
    so every interpolated value would change. The lines below are pyradiomics', with the bounding box shifted
    back to whole-CT indices and the size / index-to-point transform of the whole CT.
    """
    resampled_spacing = kwargs["resampledPixelSpacing"]
    interpolator = kwargs.get("interpolator", sitk.sitkBSpline)
    pad_distance = kwargs.get("padDistance", 5)
    mask_spacing = np.array(mask.GetSpacing())
    image_spacing = np.array(image.GetSpacing())
    nd = mask.GetDimension()
    if nd != len(resampled_spacing):
        raise ValueError(f"resampledPixelSpacing: expected {nd} values, got {resampled_spacing!r}")
    resampled_spacing = np.array(resampled_spacing)
    resampled_spacing = np.where(resampled_spacing == 0, mask_spacing, resampled_spacing)
    bb = np.array(imageoperations._checkROI(image, mask, **kwargs))  # noqa: SLF001 (pyradiomics' own check)
    bb[:nd] += offset
    mask_size = np.array(full.GetSize())
    resampled_spacing = np.where(bb[nd:] != 1, resampled_spacing, mask_spacing)
    if np.allclose(image_spacing, resampled_spacing):
        # pyradiomics only crops to bbox + padDistance here; the crop's margin >= padDistance, same region
        return imageoperations.resampleImage(image, mask, **kwargs)
    spacing_ratio = mask_spacing / resampled_spacing
    new_lower = np.floor((bb[:nd] - 0.5) * spacing_ratio - pad_distance)
    new_upper = np.ceil((bb[:nd] + bb[nd:] - 0.5) * spacing_ratio + pad_distance)
    max_upper = np.ceil(mask_size * spacing_ratio) - 1
    new_lower = np.where(new_lower < 0, 0, new_lower)
    new_upper = np.where(new_upper > max_upper, max_upper, new_upper)
    new_size = np.array(new_upper - new_lower + 1, dtype="int").tolist()
    original_lower = new_lower / spacing_ratio
    new_origin_index = np.array(0.5 * (resampled_spacing - mask_spacing) / mask_spacing)
    new_origin = full.TransformContinuousIndexToPhysicalPoint(new_origin_index + original_lower)
    if isinstance(interpolator, str):
        interpolator = getattr(sitk, interpolator)
    rif = sitk.ResampleImageFilter()
    rif.SetOutputSpacing(resampled_spacing)
    rif.SetOutputDirection(np.array(mask.GetDirection()))
    rif.SetSize(new_size)
    rif.SetOutputOrigin(new_origin)
    rif.SetOutputPixelType(image.GetPixelID())
    rif.SetInterpolator(interpolator)
    resampled_image = rif.Execute(image)
    rif.SetOutputPixelType(mask.GetPixelID())
    rif.SetInterpolator(sitk.sitkNearestNeighbor)
    return resampled_image, rif.Execute(_mask_on_full_grid(mask, full, offset))


def _mask_on_full_grid(mask: sitk.Image, full: sitk.Image, offset: np.ndarray) -> sitk.Image:
    """The crop's mask placed back on the whole CT's grid (origin, spacing, direction and size of ``full``).

    Why: nearest-neighbour resampling rounds each grid point's continuous index, and resampled points can fall
    exactly half-way between two original voxels (0.703125 mm -> 1 mm: every 64th original voxel). ITK
    computes that index from the input's origin; the crop's origin (whole-CT origin + offset * spacing, in
    floating point) differs in the last bits, so a tie can round the other way and a whole plane of the
    resampled mask moves by one voxel (SYN004 L02 of the real-size benchmark: 70 of 29,186 voxels, features
    off by up to 90 %). Resampling the mask from the whole-CT grid computes every index exactly as
    pyradiomics does. The image keeps the crop: its (B-spline) interpolation is continuous in the index, so
    last-bit differences of the index stay last-bit differences of the value.
    """
    array = sitk.GetArrayFromImage(mask)
    full_array = np.zeros(full.GetSize()[::-1], dtype=array.dtype)
    k, j, i = (int(v) for v in offset[::-1])
    full_array[k:k + array.shape[0], j:j + array.shape[1], i:i + array.shape[2]] = array
    out = sitk.GetImageFromArray(full_array)
    out.CopyInformation(full)
    return out


_Task = tuple[int, str, np.ndarray, tuple[slice, ...]]


class _RegionSource:
    """One call's CT as a SimpleITK image, its crop margin and its extractor: what preparing a region needs.

    An object per call, not module state: inside a Dask worker a patient task secedes while its units run,
    so the worker starts another patient's task in another thread of the same process, and a module-global
    state would be overwritten (or cleared) under the first one (seen in the 12-patient real-size run:
    KeyError 'image' / 'extractor' for every lesion)."""

    def __init__(self, ct: CtImage, params: RadiomicsParams, fast_shape: bool, crop: bool = True) -> None:
        self.geometry = geometry = ct.geometry
        self.margin = _crop_margin_voxels(params, geometry.spacing_mm) if crop else None
        # a lazy CT (issue 21) decodes only the crops' slices: the whole-grid image is then a 1-byte reference
        # for the grid (size, origin, spacing, direction: all the crop path reads of it), not a copy of voxels
        self.lazy_ct = ct if ct.is_lazy and self.margin is not None else None
        self.image = (sitk.Image(list(geometry.shape[::-1]), sitk.sitkUInt8) if self.lazy_ct is not None
                      else sitk.GetImageFromArray(ct.hu))
        geometry.apply_to_sitk(self.image)
        self.extractor = _Extractor(params, fast_shape=fast_shape)

    def region_images(self, crop: np.ndarray, box: tuple[slice, ...],
                      ) -> tuple[sitk.Image, sitk.Image, np.ndarray | None]:
        """The image and mask handed to pyradiomics: the region's box + margin (and its offset, i j k), or
        the whole CT (offset None) when the settings do not allow a crop."""
        geometry, image, margin = self.geometry, self.image, self.margin
        if margin is None:
            full = np.zeros(geometry.shape, dtype=bool)
            full[box] = crop
            return image, _mask_to_sitk(full, geometry), None
        margin_kji = np.array(margin[::-1])
        lo = np.maximum(np.array([s.start for s in box]) - margin_kji, 0)
        hi = np.minimum(np.array([s.stop for s in box]) + margin_kji, geometry.shape)
        if self.lazy_ct is None:
            cropped_image = sitk.RegionOfInterest(image, (hi - lo)[::-1].tolist(), lo[::-1].tolist())
        else:  # what RegionOfInterest gives: the crop's voxels, origin = the grid point of its first voxel
            (k0, j0, i0), (k1, j1, i1) = lo.tolist(), hi.tolist()
            voxels = self.lazy_ct.voxels((slice(k0, k1), slice(j0, j1), slice(i0, i1)))
            cropped_image = sitk.GetImageFromArray(np.ascontiguousarray(voxels))
            cropped_image.SetSpacing(image.GetSpacing())
            cropped_image.SetDirection(image.GetDirection())
            cropped_image.SetOrigin(image.TransformIndexToPhysicalPoint(lo[::-1].tolist()))
        mask_array = np.zeros(tuple(hi - lo), dtype=np.uint8)
        inner = tuple(slice(int(s.start - a), int(s.stop - a)) for s, a in zip(box, lo, strict=True))
        mask_array[inner] = crop
        mask = sitk.GetImageFromArray(mask_array)
        mask.CopyInformation(cropped_image)
        return cropped_image, mask, lo[::-1].astype(int)

    def prepare_region(self, task: _Task) -> Prepared:
        """pyradiomics' load / resampling / mask check of one (lesion, region), on its crop of the CT."""
        _index, _region, crop, box = task
        image, mask, offset = self.region_images(crop, box)
        # the extractor is this call's own, so setting its crop context here races with nobody
        self.extractor.full_image = self.image if offset is not None else None
        self.extractor.crop_offset = offset
        return prepare(self.extractor, image, mask, label=1)


def extract_lesion_features(
    ct: CtImage,
    masks: Sequence[LesionMask],
    params: RadiomicsParams,
    *,
    ring_widths_mm: Sequence[float] = (),
    lesion_ids: Sequence[str] | None = None,
    patient_id: str | None = None,
    scan_date: dt.date | None = None,
    body_threshold_hu: float = -500.0,
    workers: int = 1,
    start_method: str = "forkserver",
    fast_shape: bool = True,
    crop: bool = True,
    ibsi_tags: bool = False,
    progress: Callable[[int, int], None] | None = None,
    split_min_voxels: int | None = 50_000,
    dask: bool = True,
) -> RadiomicsResult:
    """pyradiomics features of each lesion (region ``lesion``) and of its peritumoral rings (``ring<N>mm``).

    A ring of width N mm is every voxel whose centre lies within N mm (Euclidean, in physical space:
    anisotropic spacing is respected) of a lesion voxel centre, minus the lesion itself, clipped to the body
    mask (:func:`hpd_imaging.radiomics.regions.body_mask`: largest connected component of ``HU >
    body_threshold_hu`` with its holes filled slice by slice, so that lung parenchyma around a lung lesion is
    kept while air outside the patient is not). A lesion or ring that pyradiomics cannot use (one voxel, empty
    ring, mask off the CT grid) becomes an entry of ``errors``; the other lesions go on.

    Where the work runs (:mod:`hpd_imaging.radiomics.parallel`; values and column order never depend on it):
    pyradiomics' loading, resampling and mask check run here, per region; the rest (shape, then every image
    type) runs here, or, when called inside a Dask worker and ``dask`` is true, as tasks on that cluster
    (regions of one exam spread over the workers), or, with ``workers > 1`` outside a daemonic process, on a
    process pool (``concurrent.futures``; ``start_method`` "forkserver" by default: children forked from a
    clean server process that imported pyradiomics once, not from this process, whose threads could
    deadlock a fork). A region of at least ``split_min_voxels`` mask voxels (None: never) is
    further split by image type (shape, Original, each LoG sigma, groups of wavelet sub-bands) when it runs
    on a pool or cluster; smaller regions are one task each, and with one task in all it runs here.
    ``fast_shape=False`` uses pyradiomics' own O(n^2) diameter search (same
    values, slower).

    ``crop=True`` hands pyradiomics the region's bounding box plus a margin instead of the whole CT whenever
    that provably gives the same features (rule and margins: :func:`_crop_margin_voxels`; on a 512x512x96 CT
    most of pyradiomics' time is otherwise whole-image work: checksums for its diagnostics, label statistics
    over the whole mask, the B-spline prefilter of the whole CT). Feature values do not change (under
    resampling: the same resampled mask, image values equal to floating-point round-off, bit-identical on the
    real-size benchmark; tested to 1e-9 relative with the benchmark's 0.703125 x 0.703125 x 1.2 mm ties in
    ``tests/radiomics/test_radiomics_crop_resample_ties.py``); the provenance
    ``image_sha256`` / ``mask_sha256`` are still those of the whole CT (of a lazily loaded DICOM series: its
    stored input, ``CtImage.input_sha256``, so that no slice is decoded for it) and the whole-CT region mask.
    A lazy CT decodes only the slices of the crops. What does
    change is pyradiomics' description of its input in the diagnostics table:
    ``diagnostics_Image-original_{Hash,Size,Minimum,Maximum,Mean}``, ``diagnostics_Mask-original_{Hash,Size,
    BoundingBox,CenterOfMassIndex}`` (and ``diagnostics_Image-original_Origin`` where the crop does not start
    at voxel 0) describe the crop; ``diagnostics_Mask-original_CenterOfMass`` (mm) can differ in the last
    digit (computed from another origin). The ``diagnostics_*-interpolated_*`` entries and
    ``diagnostics_Mask-original_{VoxelNum,VolumeNum}`` are unchanged. ``crop=False`` passes the
    whole CT (pyradiomics' own diagnostics of it).

    ``params.engine`` chooses the calculator: ``pyradiomics`` (the above), ``mirp`` (IBSI-conformant features
    of the file's ``ibsi:`` section, computed by MIRP on the whole CT: :func:`hpd_imaging.radiomics.ibsi.
    run_mirp`; columns named as MIRP names them, provenance column ``mirp_version``) or ``both`` (the columns
    of both in one row). ``ibsi_tags=True`` names the feature columns by IBSI feature tag
    (:func:`hpd_imaging.radiomics.tags.with_ibsi_tags`: ``stat_mean``, ``cm_joint_avg_3D_avg``).
    """
    if lesion_ids is not None and len(lesion_ids) != len(masks):
        raise ValueError(f"expected one lesion id per mask ({len(masks)}), got {len(lesion_ids)}")
    if workers < 1:
        raise ValueError(f"expected workers >= 1, got {workers}")
    widths = [float(w) for w in ring_widths_mm]
    for w in widths:
        if not np.isfinite(w) or w <= 0:
            raise ConfigError(f"ring_widths_mm: expected positive widths in mm, got {w}")
    ids = [str(lesion_ids[i]) if lesion_ids is not None else str(m.lesion_id or m.label or i + 1)
           for i, m in enumerate(masks)]

    errors: list[tuple[str, str]] = []
    tasks: list[tuple[int, str, np.ndarray, tuple[slice, ...]]] = []
    body = body_mask(ct.hu, body_threshold_hu) if widths else None
    for i, m in enumerate(masks):
        if not m.geometry.is_close(ct.geometry):
            errors.append((ids[i], f"lesion: mask {m.source_path or m.label} is not on the CT grid: "
                                   f"{ct.geometry.describe_difference(m.geometry)}"))
            continue
        if m.is_empty:
            errors.append((ids[i], f"lesion: mask {m.source_path or m.label} is empty"))
            continue
        # regions as bounding-box crops (the mask's own crop; rings from it): lesion-sized (issue 21)
        regions = [("lesion", m.crop, m.offset)]
        for w in widths:
            assert body is not None
            regions.append((region_name(w), *ring_crop(m.crop, m.offset, ct.geometry.shape,
                                                       ct.geometry.spacing_mm, w, body)))
        for region, region_crop, start in regions:
            if not region_crop.size:
                errors.append((ids[i], f"{region}: empty region (lesion fills the body mask around it)"))
                continue
            box = tuple(slice(o, o + n) for o, n in zip(start, region_crop.shape, strict=True))
            tasks.append((i, region, region_crop, box))

    outputs: dict[tuple[int, str], dict[str, Any]] = {}
    failed: dict[tuple[int, str], str] = {}
    done = 0

    def collect(result: tuple[int, str, dict[str, Any] | str]) -> None:
        nonlocal done
        i, region, out = result
        if isinstance(out, str):
            failed[(i, region)] = f"pyradiomics could not compute features: {out}"
        else:
            outputs[(i, region)] = out
        done += 1
        if progress is not None:
            progress(done, len(tasks))

    engine = params.engine
    if engine != "mirp":
        source = _RegionSource(ct, params, fast_shape, crop)
        for result in run_regions(
            tasks, source.prepare_region, source.extractor, params.as_dict(), fast_shape=fast_shape,
            workers=workers, split_min_voxels=split_min_voxels, use_dask=dask, start_method=start_method,
        ):
            collect(result)
    if engine != "pyradiomics":
        _add_mirp(ct, tasks, params, outputs, failed, progress)

    # a lazy CT's digest of its stored input (no decoding: CtImage.input_sha256), else of its voxels
    image_hash = ct.input_sha256() or _sha256_array(ct.hu, ct.geometry)
    feature_rows: list[dict[str, Any]] = []
    diag_rows: list[dict[str, Any]] = []
    for i, region, _crop, _box in tasks:
        key = (i, region)
        if key in failed:
            errors.append((ids[i], f"{region}: {failed[key]}"))
            continue
        out = outputs[key]
        head: dict[str, Any] = {}
        if patient_id is not None:
            head["patient_id"] = patient_id
        if scan_date is not None:
            head["scan_date"] = scan_date
        head.update(lesion_id=ids[i], region=region)
        feats = {k: _scalar(v) for k, v in out.items() if not k.startswith("diagnostics_")}
        prov: dict[str, Any] = {"pyradiomics_version": PYRADIOMICS_VERSION, "params_sha256": params.sha256,
                "image_sha256": image_hash, "mask_sha256": _sha256_crop(_crop, _box, ct.geometry)}
        if engine != "pyradiomics":
            prov["mirp_version"] = mirp_version()
        feature_rows.append({**head, **feats, **prov})
        diag_rows.append({**head, **{k: str(v) for k, v in out.items() if k.startswith("diagnostics_")}})
    for lesion_id, message in errors:
        logger.warning("radiomics: lesion %s: %s", lesion_id, message)
    features = pd.DataFrame(feature_rows)
    if ibsi_tags:
        features = with_ibsi_tags(features)
    return RadiomicsResult(features=features, diagnostics=pd.DataFrame(diag_rows), errors=errors)


def _add_mirp(ct: CtImage, tasks: Sequence[_Task], params: RadiomicsParams,
              outputs: dict[tuple[int, str], dict[str, Any]], failed: dict[tuple[int, str], str],
              progress: Callable[[int, int], None] | None) -> None:
    """MIRP features of every region (engine mirp / both), merged into ``outputs`` (or ``failed``)."""
    settings = params.ibsi
    if settings is None:  # params_from_dict guarantees the section for these engines
        raise ConfigError(f"{params.source}: engine {params.engine}: expected an ibsi: section, got none")
    regions: dict[tuple[int, str], np.ndarray] = {}
    for i, region, crop_mask, box in tasks:
        if (i, region) in failed:
            continue
        full = np.zeros(ct.geometry.shape, dtype=bool)
        full[box] = crop_mask
        regions[(i, region)] = full
    for n, (key, out) in enumerate(run_mirp(ct, regions, settings).items(), start=1):
        if isinstance(out, str):
            outputs.pop(key, None)
            failed[key] = out
        else:
            outputs.setdefault(key, {}).update(out)
        if progress is not None and params.engine == "mirp":
            progress(n, len(regions))


def extract_from_sitk(image: sitk.Image, mask: sitk.Image, params: RadiomicsParams, *,
                      fast_shape: bool = True, label: int = 1) -> dict[str, Any]:
    """Run our extractor directly on SimpleITK images (for fidelity tests and benchmarks against plain
    pyradiomics on the same inputs). Returns pyradiomics' ordered output."""
    return dict(_Extractor(params, fast_shape=fast_shape).execute(image, mask, label=label))


def plain_pyradiomics(image: sitk.Image, mask: sitk.Image, params: RadiomicsParams,
                      label: int = 1) -> dict[str, Any]:
    """pyradiomics' own extractor, untouched: the reference our results are compared with."""
    with _quiet_pykwalify():
        extractor = featureextractor.RadiomicsFeatureExtractor(params.as_dict())
    return dict(extractor.execute(image, mask, label=label))


def check_geometry(ct: CtImage, mask: LesionMask) -> None:
    """Raise :class:`GeometryError` when a mask is not on the CT grid."""
    if not mask.geometry.is_close(ct.geometry):
        raise GeometryError(f"{mask.source_path or mask.label}: expected the CT grid, got "
                            f"{ct.geometry.describe_difference(mask.geometry)}")
