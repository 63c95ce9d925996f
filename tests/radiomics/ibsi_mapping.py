"""pyradiomics feature name -> IBSI 1 feature tag (digital phantom, 3D, averaged over directions where IBSI
asks).

Sources: pyradiomics docs (each feature's docstring names its IBSI equivalent) and the IBSI 1 reference
manual. GLCM / GLRLM: pyradiomics computes each feature per direction and averages (weightingNorm None) = IBSI
"3D_avg". GLDM with gldm_a = 0 = IBSI NGLDM (``ngl_``). Firstorder intensity statistics on the original grey
levels = ``stat_``; Entropy and Uniformity on the discretised grey levels = ``ih_``.
"""

from hpd_imaging.radiomics.tags import PYRADIOMICS_TO_IBSI as IBSI_MAP  # the one table, in the package

__all__ = ["IBSI_MAP", "KNOWN_DEVIATIONS", "NOT_IN_IBSI"]

_PCA_N = ("PCA covariance divided by N (pyradiomics) instead of N - 1 (IBSI reference); "
          "value x sqrt(N / (N - 1)) matches")

#: documented deviations: feature -> (reason, function mapping our value onto the IBSI definition)
KNOWN_DEVIATIONS: dict[str, str] = {
    "original_firstorder_Kurtosis": "pyradiomics reports kurtosis, IBSI excess kurtosis (kurtosis - 3)",
    "original_shape_MinorAxisLength": _PCA_N,
    "original_shape_LeastAxisLength": _PCA_N,
}

#: features pyradiomics computes that have no IBSI 1 counterpart
NOT_IN_IBSI = (
    "original_shape_Maximum2DDiameterSlice",
    "original_shape_Maximum2DDiameterColumn",
    "original_shape_Maximum2DDiameterRow",
    "original_firstorder_TotalEnergy",
    "original_glcm_MCC",
)
