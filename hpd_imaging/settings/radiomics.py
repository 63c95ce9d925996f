"""Settings of the radiomics stage (owned by the radiomics stage). Kept apart from radiomics.py so that
reading a config never imports pyradiomics.

The feature definitions themselves live in a pyradiomics parameter file (``params_file``, validated by
:func:`hpd_imaging.radiomics.load_params`); this section holds what pyradiomics has no word for:
peritumoral rings, which timepoints to extract, the body mask threshold and the fast shape path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat

from hpd_imaging.settings.base import Section


class RadiomicsSettings(Section):
    enabled: bool = True
    #: pyradiomics parameter file (imageType / featureClass / setting), resolved like every settings resource
    params_file: Path = Path("pipelines/radiomics_ct.yaml")
    #: peritumoral rings: every voxel within N mm of the lesion, minus the lesion, clipped to the body
    #: (regions ``ring5mm``...; Vaidya et al. 2020: peritumoral texture within 5-10 mm most predictive of HPD)
    ring_widths_mm: tuple[PositiveFloat, ...] = (5.0,)
    #: "baseline": features of the baseline exam only; "all": every timepoint (delta-radiomics)
    timepoints: Literal["baseline", "all"] = "baseline"
    #: body mask for ring clipping: largest connected component of HU > this, holes filled per slice
    body_threshold_hu: float = -500.0
    #: hull-based shape coefficients (identical values to pyradiomics' O(n^2) search, much faster)
    fast_shape: bool = True
    #: processes per patient for lesions (the pipeline already parallelises over patients)
    lesion_workers: int = Field(default=1, ge=1)
    #: calculator: pyradiomics, mirp (IBSI-conformant, needs an ``ibsi:`` section in params_file, e.g.
    #: pipelines/ibsi/ct_config_c.yaml, and ``uv sync --extra ibsi``) or both; None: as params_file says
    engine: Literal["pyradiomics", "mirp", "both"] | None = None
    #: name feature columns by IBSI feature tag (stat_mean, cm_joint_avg_3D_avg, morph_volume, ivh_v10, ...)
    ibsi_tags: bool = False
