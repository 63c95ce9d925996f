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
    #: processes per patient for lesions and image types when the patient runs in-process (--workers 1);
    #: on Dask the cluster's workers are used instead (``distribute_on_dask``)
    lesion_workers: int = Field(default=1, ge=1)
    #: on a Dask cluster, run a patient's lesions (and a large lesion's image types) as tasks of their own,
    #: so that the cluster's workers share a patient with many or large lesions; values do not change
    distribute_on_dask: bool = True
    #: lesions (or rings) of at least this many voxels (CT grid) are split by image type (shape, Original,
    #: each LoG sigma, groups of wavelet sub-bands) when they run on a pool or cluster; below it a region is
    #: one task, as pyradiomics runs it (process and task start-up would outweigh the work)
    split_min_voxels: int = Field(default=50_000, ge=1)
    #: calculator: pyradiomics, mirp (IBSI-conformant, needs an ``ibsi:`` section in params_file, e.g.
    #: pipelines/ibsi/ct_config_c.yaml, and ``uv sync --extra ibsi``) or both; None: as params_file says
    engine: Literal["pyradiomics", "mirp", "both"] | None = None
    #: name feature columns by IBSI feature tag (stat_mean, cm_joint_avg_3D_avg, morph_volume, ivh_v10, ...)
    ibsi_tags: bool = False
