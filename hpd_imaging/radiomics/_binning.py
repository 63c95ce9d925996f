"""One discretisation per (filtered) image instead of one per feature class, with pyradiomics' values.

pyradiomics 3.0.1 discretises the image again in every feature class (firstorder, glcm, glrlm, glszm, gldm,
ngtdm: ``RadiomicsFeaturesBase._applyBinning``), each time with ``getBinEdges``, which takes the ROI's minimum
and maximum with Python's builtin ``min`` / ``max`` (an element-by-element loop over a numpy array: ~30 ms
each on a 365,000-voxel ROI), then ``numpy.digitize`` and ``numpy.unique``. On the IBSI sarcoma STS_001 with
pipelines/radiomics_ct.yaml (14 images x 6 classes) that was 7.5 of 27 s. Here the first class of an image
discretises and the next five reuse the result, after checking that they were handed the same voxels and mask
(``numpy.array_equal``, a memory compare), so a reuse can never change a value.

Hand-written (pyradiomics has no hook for it): :func:`bin_image` repeats pyradiomics' ``binImage`` /
``getBinEdges`` arithmetic line for line for a fixed bin width, with numpy's ``min`` / ``max`` (the same
element: the ROI values are finite, checked, and both return the array's own scalar type); a bin count, or
non-finite values, go to pyradiomics' own function. The tests compare every feature with plain pyradiomics.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from radiomics import firstorder, glcm, gldm, glrlm, glszm, imageoperations, ngtdm

#: The image being discretised on this thread and its result; set by :func:`binning_scope`.
_SCOPE = threading.local()


def bin_image(matrix: np.ndarray, mask: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """pyradiomics' ``imageoperations.binImage(matrix, mask, **settings)[0]`` (3.0.1), same values."""
    bin_count = settings.get("binCount")
    values = matrix[mask]
    if bin_count is not None or values.size == 0 or not np.isfinite(values).all():
        return imageoperations.binImage(matrix, mask, **settings)[0]
    bin_width = settings.get("binWidth", 25)
    minimum = values.min()
    maximum = values.max()
    low_bound = minimum - (minimum % bin_width)
    high_bound = maximum + 2 * bin_width
    edges: Any = np.arange(low_bound, high_bound, bin_width)
    if len(edges) == 1:  # flat region: one bin, as pyradiomics
        edges = [edges[0] - 0.5, edges[0] + 0.5]
    out = np.zeros(matrix.shape, dtype="int")
    out[mask] = np.digitize(values, edges)
    return out


class _Cached:
    """Mixin for a pyradiomics feature class: ``_applyBinning`` reuses the image's discretisation."""

    maskArray: np.ndarray  # noqa: N815 (pyradiomics' name)
    settings: dict[str, Any]
    coefficients: dict[str, Any]

    def _applyBinning(self, matrix: np.ndarray) -> np.ndarray:  # noqa: N802 (pyradiomics' name)
        cache: list[Any] | None = getattr(_SCOPE, "cache", None)
        keys = ("binWidth", "binCount")
        setting_key = tuple(self.settings.get(k) for k in keys)
        if cache is not None:
            for source, mask, key, binned, levels in cache:
                same = np.array_equal(source, matrix) and np.array_equal(mask, self.maskArray)
                if key == setting_key and same:
                    self.coefficients["grayLevels"] = levels.copy()
                    self.coefficients["Ng"] = int(np.max(levels))
                    return binned.copy()  # a class may change its array in place
        binned = bin_image(matrix, self.maskArray, self.settings)
        levels = np.unique(binned[self.maskArray])
        self.coefficients["grayLevels"] = levels
        self.coefficients["Ng"] = int(np.max(levels))
        if cache is not None:
            cache.append((matrix.copy(), self.maskArray.copy(), setting_key, binned.copy(), levels.copy()))
        return binned


def _cached(cls: type) -> type:
    return type(cls.__name__, (_Cached, cls), {"__module__": cls.__module__, "__doc__": cls.__doc__})


#: pyradiomics' feature classes (named as ``radiomics.getFeatureClasses()`` names them), sharing one binning
CACHED_FEATURE_CLASSES: dict[str, type] = {
    "firstorder": _cached(firstorder.RadiomicsFirstOrder),
    "glcm": _cached(glcm.RadiomicsGLCM),
    "glrlm": _cached(glrlm.RadiomicsGLRLM),
    "glszm": _cached(glszm.RadiomicsGLSZM),
    "gldm": _cached(gldm.RadiomicsGLDM),
    "ngtdm": _cached(ngtdm.RadiomicsNGTDM),
}


class CachedBinningMixin:
    """Mixin for pyradiomics' ``RadiomicsFeatureExtractor``: ``computeFeatures`` of 3.0.1 with the feature
    classes of :data:`CACHED_FEATURE_CLASSES` and one discretisation per image."""

    enabledFeatures: dict[str, Any]  # noqa: N815 (pyradiomics' name)

    def computeFeatures(  # noqa: N802 (pyradiomics' name)
        self, image: Any, mask: Any, imageTypeName: str, **kwargs: Any  # noqa: N803
    ) -> OrderedDict:
        from radiomics import getFeatureClasses

        classes = getFeatureClasses()
        vector: OrderedDict[str, Any] = OrderedDict()
        saved = getattr(_SCOPE, "cache", None)
        _SCOPE.cache = []
        try:
            for class_name, feature_names in self.enabledFeatures.items():
                if class_name.startswith("shape") or class_name not in classes:
                    continue
                cls = CACHED_FEATURE_CLASSES.get(class_name, classes[class_name])
                feature_class = cls(image, mask, **kwargs)
                if feature_names is not None:
                    for feature in feature_names:
                        feature_class.enableFeatureByName(feature)
                for name, value in feature_class.execute().items():
                    vector[f"{imageTypeName}_{class_name}_{name}"] = value
        finally:
            _SCOPE.cache = saved
        return vector
