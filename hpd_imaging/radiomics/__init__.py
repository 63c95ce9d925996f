"""Radiomics stage: the only package of hpd-imaging that talks to pyradiomics (and, where asked, computes the
IBSI families pyradiomics lacks).

Modules:

* :mod:`.params` - parameter files (pyradiomics' layout + our ``engine`` and ``ibsi:`` keys), validated;
* :mod:`.extract` - features per lesion and peritumoral ring (pyradiomics, MIRP via :mod:`.ibsi`, provenance);
* :mod:`.ibsi` - IBSI-conformant features with MIRP (preprocessing settings, feature names by IBSI tag);
* :mod:`.tags` - column names by IBSI feature tag (``--ibsi-tags``);
* :mod:`.parallel` - a region's extraction cut into units (shape, each image type) run here, on a process
  pool or as tasks of the Dask cluster a patient runs on (issue 21), merged in pyradiomics' order;
* :mod:`._extractor` - pyradiomics' extractor with the hull shape and :mod:`._binning` (one discretisation
  per image), importable by pool processes and Dask workers without the rest of hpd-imaging;
* :mod:`._hull_shape` - value-identical fast replacement of pyradiomics' shape coefficients;
* :mod:`.regions` - body mask and peritumoral rings (no pyradiomics);
* :mod:`.aggregate` - per-patient aggregation of per-lesion features (no pyradiomics).

The names of :mod:`.extract` are re-exported here lazily (PEP 562), so that importing a pyradiomics-free
submodule (``hpd_imaging.radiomics.aggregate``) does not import pyradiomics. Importing
:mod:`hpd_imaging.radiomics.extract` detaches pyradiomics' logging handler.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpd_imaging.radiomics.aggregate import aggregate_patient
    from hpd_imaging.radiomics.extract import (
        PYRADIOMICS_VERSION,
        RadiomicsResult,
        check_geometry,
        extract_from_sitk,
        extract_lesion_features,
        plain_pyradiomics,
    )
    from hpd_imaging.radiomics.params import RadiomicsParams, load_params, params_from_dict

_LAZY = {
    "PYRADIOMICS_VERSION": "extract",
    "RadiomicsParams": "params",
    "RadiomicsResult": "extract",
    "check_geometry": "extract",
    "extract_from_sitk": "extract",
    "extract_lesion_features": "extract",
    "load_params": "params",
    "params_from_dict": "params",
    "plain_pyradiomics": "extract",
    "aggregate_patient": "aggregate",
}

__all__ = [
    "PYRADIOMICS_VERSION",
    "RadiomicsParams",
    "RadiomicsResult",
    "aggregate_patient",
    "check_geometry",
    "extract_from_sitk",
    "extract_lesion_features",
    "load_params",
    "params_from_dict",
    "plain_pyradiomics",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
