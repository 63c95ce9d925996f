"""Feature names by IBSI 1 feature tag (``--ibsi-tags``): pyradiomics names and MIRP names -> IBSI tags.

pyradiomics -> IBSI: from pyradiomics' docs (each feature's docstring names its IBSI equivalent) and the
IBSI 1 reference manual, checked feature by feature on the IBSI digital phantom
(tests/radiomics/test_radiomics_ibsi.py, docs/ibsi_compliance.md). GLCM / GLRLM: pyradiomics computes each
feature per direction and averages
(weightingNorm None) = IBSI ``3D_avg``. GLDM with gldm_a = 0 = IBSI NGLDM (``ngl_``). Firstorder intensity
statistics on the original grey levels = ``stat_``; Entropy and Uniformity on the discretised grey levels =
``ih_``. Only the ``original`` image type maps (a filtered image has no IBSI 1 tag).

The tag names the *definition*. A renamed pyradiomics column keeps pyradiomics' value, so under
pyradiomics' preprocessing it is not the IBSI value of a CT configuration (bin edges, grid alignment:
docs/ibsi_compliance.md). Features whose pyradiomics definition differs from IBSI's are never renamed
(``NOT_RENAMED``): Kurtosis (pyradiomics: kurtosis, IBSI: excess kurtosis) and the minor / least axis lengths
(covariance divisor N instead of N - 1).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from hpd_imaging.radiomics.ibsi import IBSI_FAMILIES, ibsi_tag

PYRADIOMICS_TO_IBSI: dict[str, str] = {
    # morphology
    "original_shape_MeshVolume": "morph_volume",
    "original_shape_VoxelVolume": "morph_vol_approx",
    "original_shape_SurfaceArea": "morph_area_mesh",
    "original_shape_SurfaceVolumeRatio": "morph_av",
    "original_shape_Sphericity": "morph_sphericity",
    "original_shape_Maximum3DDiameter": "morph_diam",
    "original_shape_MajorAxisLength": "morph_pca_maj_axis",
    "original_shape_MinorAxisLength": "morph_pca_min_axis",
    "original_shape_LeastAxisLength": "morph_pca_least_axis",
    "original_shape_Elongation": "morph_pca_elongation",
    "original_shape_Flatness": "morph_pca_flatness",
    # intensity statistics
    "original_firstorder_Mean": "stat_mean",
    "original_firstorder_Variance": "stat_var",
    "original_firstorder_Skewness": "stat_skew",
    "original_firstorder_Kurtosis": "stat_kurt",
    "original_firstorder_Median": "stat_median",
    "original_firstorder_Minimum": "stat_min",
    "original_firstorder_10Percentile": "stat_p10",
    "original_firstorder_90Percentile": "stat_p90",
    "original_firstorder_Maximum": "stat_max",
    "original_firstorder_InterquartileRange": "stat_iqr",
    "original_firstorder_Range": "stat_range",
    "original_firstorder_MeanAbsoluteDeviation": "stat_mad",
    "original_firstorder_RobustMeanAbsoluteDeviation": "stat_rmad",
    "original_firstorder_Energy": "stat_energy",
    "original_firstorder_RootMeanSquared": "stat_rms",
    "original_firstorder_Entropy": "ih_entropy",
    "original_firstorder_Uniformity": "ih_uniformity",
    # GLCM (3D, averaged over 13 directions)
    "original_glcm_JointAverage": "cm_joint_avg_3D_avg",
    "original_glcm_MaximumProbability": "cm_joint_max_3D_avg",
    "original_glcm_JointEntropy": "cm_joint_entr_3D_avg",
    "original_glcm_SumSquares": "cm_joint_var_3D_avg",
    "original_glcm_DifferenceAverage": "cm_diff_avg_3D_avg",
    "original_glcm_DifferenceVariance": "cm_diff_var_3D_avg",
    "original_glcm_DifferenceEntropy": "cm_diff_entr_3D_avg",
    "original_glcm_SumAverage": "cm_sum_avg_3D_avg",
    "original_glcm_SumEntropy": "cm_sum_entr_3D_avg",
    "original_glcm_JointEnergy": "cm_energy_3D_avg",
    "original_glcm_Contrast": "cm_contrast_3D_avg",
    "original_glcm_Id": "cm_inv_diff_3D_avg",
    "original_glcm_Idn": "cm_inv_diff_norm_3D_avg",
    "original_glcm_Idm": "cm_inv_diff_mom_3D_avg",
    "original_glcm_Idmn": "cm_inv_diff_mom_norm_3D_avg",
    "original_glcm_InverseVariance": "cm_inv_var_3D_avg",
    "original_glcm_Correlation": "cm_corr_3D_avg",
    "original_glcm_Autocorrelation": "cm_auto_corr_3D_avg",
    "original_glcm_ClusterTendency": "cm_clust_tend_3D_avg",
    "original_glcm_ClusterShade": "cm_clust_shade_3D_avg",
    "original_glcm_ClusterProminence": "cm_clust_prom_3D_avg",
    "original_glcm_Imc1": "cm_info_corr1_3D_avg",
    "original_glcm_Imc2": "cm_info_corr2_3D_avg",
    # GLRLM (3D, averaged over 13 directions)
    "original_glrlm_ShortRunEmphasis": "rlm_sre_3D_avg",
    "original_glrlm_LongRunEmphasis": "rlm_lre_3D_avg",
    "original_glrlm_LowGrayLevelRunEmphasis": "rlm_lgre_3D_avg",
    "original_glrlm_HighGrayLevelRunEmphasis": "rlm_hgre_3D_avg",
    "original_glrlm_ShortRunLowGrayLevelEmphasis": "rlm_srlge_3D_avg",
    "original_glrlm_ShortRunHighGrayLevelEmphasis": "rlm_srhge_3D_avg",
    "original_glrlm_LongRunLowGrayLevelEmphasis": "rlm_lrlge_3D_avg",
    "original_glrlm_LongRunHighGrayLevelEmphasis": "rlm_lrhge_3D_avg",
    "original_glrlm_GrayLevelNonUniformity": "rlm_glnu_3D_avg",
    "original_glrlm_GrayLevelNonUniformityNormalized": "rlm_glnu_norm_3D_avg",
    "original_glrlm_RunLengthNonUniformity": "rlm_rlnu_3D_avg",
    "original_glrlm_RunLengthNonUniformityNormalized": "rlm_rlnu_norm_3D_avg",
    "original_glrlm_RunPercentage": "rlm_r_perc_3D_avg",
    "original_glrlm_GrayLevelVariance": "rlm_gl_var_3D_avg",
    "original_glrlm_RunVariance": "rlm_rl_var_3D_avg",
    "original_glrlm_RunEntropy": "rlm_rl_entr_3D_avg",
    # GLSZM (3D)
    "original_glszm_SmallAreaEmphasis": "szm_sze_3D",
    "original_glszm_LargeAreaEmphasis": "szm_lze_3D",
    "original_glszm_LowGrayLevelZoneEmphasis": "szm_lgze_3D",
    "original_glszm_HighGrayLevelZoneEmphasis": "szm_hgze_3D",
    "original_glszm_SmallAreaLowGrayLevelEmphasis": "szm_szlge_3D",
    "original_glszm_SmallAreaHighGrayLevelEmphasis": "szm_szhge_3D",
    "original_glszm_LargeAreaLowGrayLevelEmphasis": "szm_lzlge_3D",
    "original_glszm_LargeAreaHighGrayLevelEmphasis": "szm_lzhge_3D",
    "original_glszm_GrayLevelNonUniformity": "szm_glnu_3D",
    "original_glszm_GrayLevelNonUniformityNormalized": "szm_glnu_norm_3D",
    "original_glszm_SizeZoneNonUniformity": "szm_zsnu_3D",
    "original_glszm_SizeZoneNonUniformityNormalized": "szm_zsnu_norm_3D",
    "original_glszm_ZonePercentage": "szm_z_perc_3D",
    "original_glszm_GrayLevelVariance": "szm_gl_var_3D",
    "original_glszm_ZoneVariance": "szm_zs_var_3D",
    "original_glszm_ZoneEntropy": "szm_zs_entr_3D",
    # NGTDM (3D)
    "original_ngtdm_Coarseness": "ngt_coarseness_3D",
    "original_ngtdm_Contrast": "ngt_contrast_3D",
    "original_ngtdm_Busyness": "ngt_busyness_3D",
    "original_ngtdm_Complexity": "ngt_complexity_3D",
    "original_ngtdm_Strength": "ngt_strength_3D",
    # GLDM = IBSI NGLDM (alpha 0, distance 1)
    "original_gldm_SmallDependenceEmphasis": "ngl_lde_3D",
    "original_gldm_LargeDependenceEmphasis": "ngl_hde_3D",
    "original_gldm_LowGrayLevelEmphasis": "ngl_lgce_3D",
    "original_gldm_HighGrayLevelEmphasis": "ngl_hgce_3D",
    "original_gldm_SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge_3D",
    "original_gldm_SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge_3D",
    "original_gldm_LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge_3D",
    "original_gldm_LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge_3D",
    "original_gldm_GrayLevelNonUniformity": "ngl_glnu_3D",
    "original_gldm_DependenceNonUniformity": "ngl_dcnu_3D",
    "original_gldm_DependenceNonUniformityNormalized": "ngl_dcnu_norm_3D",
    "original_gldm_GrayLevelVariance": "ngl_gl_var_3D",
    "original_gldm_DependenceVariance": "ngl_dc_var_3D",
    "original_gldm_DependenceEntropy": "ngl_dc_entr_3D",
}

#: pyradiomics features whose definition differs from the IBSI one they resemble (kept under their own name)
NOT_RENAMED = frozenset({
    "original_firstorder_Kurtosis",
    "original_shape_MinorAxisLength",
    "original_shape_LeastAxisLength",
})


def ibsi_column_names(columns: Iterable[str]) -> dict[str, str]:
    """Renaming of a feature table's columns to IBSI tags: pyradiomics names through
    :data:`PYRADIOMICS_TO_IBSI` (except :data:`NOT_RENAMED`), MIRP names through
    :func:`hpd_imaging.radiomics.ibsi.ibsi_tag`. When both engines give the same tag (``engine: both``) the
    MIRP column takes the tag (it follows the IBSI preprocessing) and the pyradiomics column keeps its name.
    Columns that are neither (identifiers, provenance, unmapped features) keep their names."""
    columns = list(columns)
    mirp = {c: ibsi_tag(c) for c in columns if c.startswith(IBSI_FAMILIES)}
    taken = set(mirp.values())
    renames = dict(mirp)
    for c in columns:
        tag = PYRADIOMICS_TO_IBSI.get(c)
        if tag is not None and c not in NOT_RENAMED and tag not in taken:
            renames[c] = tag
    return {old: new for old, new in renames.items() if old != new}


def with_ibsi_tags(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` with its columns named by IBSI tag (see :func:`ibsi_column_names`)."""
    return features.rename(columns=ibsi_column_names(features.columns))
