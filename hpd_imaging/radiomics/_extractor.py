"""pyradiomics' extractor with two value-preserving speed-ups, importable without the rest of hpd-imaging
(pool processes and Dask workers that run :mod:`.parallel` units import only this, pyradiomics and scipy).

* :class:`_HullShape`: pyradiomics' 3D shape class with the convex-hull diameter search of
  :mod:`._hull_shape` instead of pyradiomics' O(n^2) one (same values);
* :class:`~._binning.CachedBinningMixin`: one discretisation per image instead of one per feature class.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pykwalify.core
import radiomics  # pyradiomics
import SimpleITK as sitk  # noqa: N813 (the universal alias)
from radiomics import featureextractor, imageoperations, shape

from hpd_imaging.radiomics._binning import CachedBinningMixin
from hpd_imaging.radiomics._hull_shape import shape_coefficients

_radiomics_logger = logging.getLogger("radiomics")
for _handler in list(_radiomics_logger.handlers):
    _radiomics_logger.removeHandler(_handler)
# pyradiomics logs per-voxel-class debug records; a WARNING floor avoids building them (the CLI may lower it)
_radiomics_logger.setLevel(logging.WARNING)


class _DropNotice(logging.Filter):
    """Drops pyradiomics' per-lesion "GLCM is symmetrical" notice (one per image type and lesion)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "GLCM is symmetrical" not in record.getMessage()


# in every process that imports this module: pool processes and Dask workers too
logging.getLogger("radiomics.glcm").addFilter(_DropNotice())


@contextlib.contextmanager
def quiet_pykwalify() -> Iterator[None]:
    """pykwalify logs every schema error at ERROR before raising; we report the exception ourselves instead.
    (A NullHandler is also what pyradiomics needs to find there when the root logger has no handler.)

    One thread at a time: building an extractor validates the parameters with pykwalify, whose YAML parser
    (ruamel) is not thread-safe (two extractors built at once in one process failed with "ParserError while
    parsing a flow sequence" in paramSchema.yaml), and this block swaps process-wide logger and warning state.
    Two builds at once happen in a Dask worker that runs a seceded patient task next to the next patient's."""
    with _BUILD_LOCK:
        yield from _quiet_pykwalify_unlocked()


_BUILD_LOCK = threading.RLock()  # re-entrant: a validation may build inside another


def _quiet_pykwalify_unlocked() -> Iterator[None]:
    log = pykwalify.core.log
    null = logging.NullHandler()
    saved = (log.propagate, log.disabled)
    log.addHandler(null)
    log.propagate, log.disabled = False, True
    try:
        with warnings.catch_warnings():  # pykwalify loads its schema extension with deprecated load_module()
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        log.removeHandler(null)
        log.propagate, log.disabled = saved


class _HullShape(shape.RadiomicsShape):
    """pyradiomics' 3D shape class, with the mesh coefficients from :func:`shape_coefficients` (same
    values)."""

    def _initSegmentBasedCalculation(self) -> None:  # noqa: N802 (pyradiomics' name)
        # Same preparation as pyradiomics' RadiomicsShape: pad by one voxel, then mesh + PCA on that mask.
        self.pixelSpacing = np.array(self.inputImage.GetSpacing()[::-1])
        self.inputMask = sitk.ConstantPad(self.inputMask, [1, 1, 1], [1, 1, 1], 0)
        self.maskArray = sitk.GetArrayFromImage(self.inputMask) == self.label
        self.labelledVoxelCoordinates = np.where(self.maskArray != 0)
        self.SurfaceArea, self.Volume, self.diameters = shape_coefficients(
            self.maskArray, self.pixelSpacing, radiomics.cShape.calculate_coefficients)
        n_voxels = len(self.labelledVoxelCoordinates[0])
        coords = np.array(self.labelledVoxelCoordinates, dtype=int).T * self.pixelSpacing[None, :]
        coords -= coords.mean(axis=0)
        coords /= np.sqrt(n_voxels)
        eigen = np.linalg.eigvals(coords.T.copy() @ coords)
        eigen[(eigen < 0) & (eigen > -1e-10)] = 0  # machine-precision negatives, as pyradiomics does
        eigen.sort()
        self.eigenValues = eigen


class HullExtractor(CachedBinningMixin, featureextractor.RadiomicsFeatureExtractor):
    """RadiomicsFeatureExtractor (pyradiomics parameters as a mapping) whose 3D shape class is
    :class:`_HullShape` (when ``fast_shape``) and whose feature classes discretise each image once."""

    def __init__(self, params: dict[str, Any], fast_shape: bool = True) -> None:
        with quiet_pykwalify():
            super().__init__(params)
        self.fast_shape = fast_shape
        if "shape2D" in self.enabledFeatures and not self.settings.get("force2D", False):
            # pyradiomics enables every class when featureClass is empty, then skips shape2D with a warning on
            # every case; dropping it here gives the same features without the noise
            del self.enabledFeatures["shape2D"]

    def computeShape(self, image, mask, boundingBox, **kwargs):  # noqa: N802, ANN001, ANN201 (pyradiomics API)
        if not self.fast_shape or "shape" not in self.enabledFeatures or mask.GetDimension() != 3:
            return super().computeShape(image, mask, boundingBox, **kwargs)
        vector: OrderedDict[str, Any] = OrderedDict()
        cropped_image, cropped_mask = imageoperations.cropToTumorMask(image, mask, boundingBox)
        shape_class = _HullShape(cropped_image, cropped_mask, **kwargs)
        for name in self.enabledFeatures["shape"] or []:
            shape_class.enableFeatureByName(name)
        for name, value in shape_class.execute().items():
            vector[f"original_shape_{name}"] = value
        if "shape2D" in self.enabledFeatures:
            saved = self.enabledFeatures
            self.enabledFeatures = {"shape2D": saved["shape2D"]}
            try:
                vector.update(super().computeShape(image, mask, boundingBox, **kwargs))
            finally:
                self.enabledFeatures = saved
        return vector
