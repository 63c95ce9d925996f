"""pyradiomics parameter files, with our ``engine`` and ``ibsi:`` keys: reading and validation.

:func:`load_params` / :func:`params_from_dict` validate a parameter file before any image is read:
pyradiomics' own schema (pykwalify) and what it does not check (known image types and feature names, a binary
label, a consistent resampling request, no voxel-based mode), plus the engine (``pyradiomics`` | ``mirp`` |
``both``) and the ``ibsi:`` section of MIRP settings (:class:`hpd_imaging.radiomics.ibsi.IbsiSettings`).

pyradiomics configures logging when imported (a stderr handler on the ``radiomics`` logger). Library code must
not do that, so we detach that handler here, where hpd-imaging first imports pyradiomics, and leave the
``radiomics`` logger at WARNING (its INFO output is one line per feature class per image); applications can
lower it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykwalify.core
import radiomics  # pyradiomics

from hpd_imaging.errors import ConfigError
from hpd_imaging.radiomics._extractor import quiet_pykwalify
from hpd_imaging.radiomics.ibsi import IbsiSettings, ibsi_settings_from_dict, require_mirp

# importing ._extractor (above) detached pyradiomics' logging handler and set its WARNING floor


_TOP_LEVEL_KEYS = ("imageType", "featureClass", "setting", "voxelSetting")
#: our own top-level keys of a parameter file: the engine and the IBSI (MIRP) section (:mod:`.ibsi`)
_ENGINE_KEYS = ("engine", "ibsi")
ENGINES = ("pyradiomics", "mirp", "both")


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RadiomicsParams:
    """A validated pyradiomics parameter set. ``canonical_json`` is the source of truth (immutable,
    picklable); ``sha256`` (of that canonical JSON) is the settings hash recorded with every feature row."""

    canonical_json: str
    source: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """A fresh copy of the pyradiomics parameters (pyradiomics' parameter-file layout, without our
        ``engine`` / ``ibsi`` keys)."""
        return {k: v for k, v in json.loads(self.canonical_json).items() if k not in _ENGINE_KEYS}

    @property
    def engine(self) -> str:
        """``pyradiomics`` (default), ``mirp`` (IBSI configuration, :mod:`.ibsi`) or ``both``."""
        return str(json.loads(self.canonical_json).get("engine", "pyradiomics"))

    @property
    def ibsi(self) -> IbsiSettings | None:
        """The validated ``ibsi:`` section (MIRP settings), None when the file has none."""
        section = json.loads(self.canonical_json).get("ibsi")
        return None if section is None else ibsi_settings_from_dict(section, self.source)

    def with_engine(self, engine: str) -> RadiomicsParams:
        """The same parameters with another engine (the run setting ``radiomics.engine`` overrides the
        file)."""
        data = json.loads(self.canonical_json)
        data["engine"] = engine
        return params_from_dict(data, source=self.source)

    @property
    def image_types(self) -> list[str]:
        return list(self.as_dict().get("imageType") or {"Original": {}})


_quiet_pykwalify = quiet_pykwalify  # the one definition lives with the extractor (light import)


def _feature_names(feature_class: str) -> dict[str, bool]:
    return dict(radiomics.getFeatureClasses()[feature_class].getFeatureNames())


def params_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> RadiomicsParams:
    """Validate a pyradiomics parameter mapping and return it as :class:`RadiomicsParams`.

    Checks, in order: the top-level layout, pyradiomics' own schema (``radiomics/schemas/paramSchema.yaml``
    via pykwalify, which also checks types and ranges of every setting), then what the schema does not check:
    known image types and feature names, a binary mask label, a consistent resampling request, and no
    voxel-based mode. Every failure raises :class:`ConfigError` naming the source, the key and the value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of pyradiomics parameters, got {type(data).__name__}", path=source)
    unknown = [k for k in data if k not in _TOP_LEVEL_KEYS + _ENGINE_KEYS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key(s) {unknown}; expected some of "
            f"{list(_TOP_LEVEL_KEYS + _ENGINE_KEYS)}",
            path=source)
    params = copy.deepcopy(dict(data))
    own = {k: params.pop(k) for k in _ENGINE_KEYS if k in params}
    _check_engine(own, params, source)
    for key in _TOP_LEVEL_KEYS:  # an empty YAML section reads as None; pyradiomics means "defaults" by it
        if key in params and params[key] is None:
            params[key] = {}
    schema_file, schema_funcs = radiomics.getParameterValidationFiles()
    try:
        with _quiet_pykwalify():
            pykwalify.core.Core(source_data=copy.deepcopy(params), schema_files=[schema_file],
                                extensions=[schema_funcs]).validate()
    except Exception as exc:  # pykwalify raises SchemaError / CoreError with the list of violations
        detail = " ".join(str(getattr(exc, "msg", exc)).split())
        raise ConfigError(f"{source}: pyradiomics parameter schema violated: {detail}", path=source) from exc

    known_types = set(radiomics.getImageTypes())
    for name in params.get("imageType", {}):
        if name not in known_types:
            raise ConfigError(
                f"{source}: imageType: expected one of {sorted(known_types)}, got {name!r}", path=source)
    classes = radiomics.getFeatureClasses()
    for cls, names in (params.get("featureClass") or {}).items():
        if cls not in classes:
            raise ConfigError(
                f"{source}: featureClass: expected one of {sorted(classes)}, got {cls!r}", path=source)
        valid = _feature_names(cls)
        for n in names or []:
            if n not in valid:
                raise ConfigError(f"{source}: featureClass.{cls}: unknown feature {n!r}; expected some of "
                                  f"{sorted(valid)}", path=source)
    setting = params.get("setting", {})
    if setting.get("label", 1) != 1:
        raise ConfigError(f"{source}: setting.label: hpd-imaging passes one binary mask per lesion, so the "
                          f"label is always 1; expected 1 or absent, got {setting['label']!r}", path=source)
    spacing = setting.get("resampledPixelSpacing")
    if spacing is not None and len(spacing) != 3:
        raise ConfigError(f"{source}: setting.resampledPixelSpacing: expected 3 spacings in mm (x, y, z), "
                          f"got {spacing!r}", path=source)
    if spacing is not None and setting.get("interpolator", "sitkBSpline") is None:
        raise ConfigError(f"{source}: setting.interpolator: resampling requested, expected an interpolator "
                          f"name (e.g. sitkBSpline), got None", path=source)
    if "binWidth" in setting and "binCount" in setting:
        raise ConfigError(f"{source}: setting: expected binWidth or binCount, got both "
                          f"(binWidth={setting['binWidth']}, binCount={setting['binCount']})", path=source)
    if params.get("voxelSetting"):
        raise ConfigError(f"{source}: voxelSetting: voxel-based (feature map) extraction is not supported by "
                          f"hpd-imaging; expected no voxelSetting, got {params['voxelSetting']!r}",
                          path=source)
    fc = params.get("featureClass") or {}
    if "shape2D" in fc and not setting.get("force2D", False):
        raise ConfigError(f"{source}: featureClass.shape2D needs setting.force2D: true (pyradiomics skips it "
                          f"otherwise); got force2D={setting.get('force2D', False)}", path=source)
    canonical = json.dumps({**params, **own}, sort_keys=True, separators=(",", ":"))
    return RadiomicsParams(canonical_json=canonical, source=source)


def _check_engine(own: dict[str, Any], params: dict[str, Any], source: str) -> None:
    """``engine`` and ``ibsi``: a known engine; MIRP installed and an ``ibsi`` section when MIRP computes;
    no pyradiomics sections when only MIRP computes (they would be silently ignored)."""
    engine = own.get("engine", "pyradiomics")
    if engine not in ENGINES:
        raise ConfigError(f"{source}: engine: expected one of {list(ENGINES)}, got {engine!r}", path=source)
    if "ibsi" in own:
        ibsi_settings_from_dict(own["ibsi"], source)
    if engine == "pyradiomics":
        return
    if "ibsi" not in own:
        raise ConfigError(f"{source}: engine {engine} computes IBSI features with MIRP; expected an ibsi: "
                          f"section (see pipelines/ibsi/ct_config_c.yaml), got none", path=source)
    if engine == "mirp" and any(params.get(k) for k in _TOP_LEVEL_KEYS):
        given = [k for k in _TOP_LEVEL_KEYS if params.get(k)]
        raise ConfigError(f"{source}: engine mirp uses only the ibsi: section; expected no pyradiomics "
                          f"sections, got {given} (use engine: both to compute both)", path=source)
    require_mirp(source)


def load_params(path: Path) -> RadiomicsParams:
    """Read and validate a pyradiomics parameter file (YAML or JSON). Raises :class:`ConfigError`."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pyradiomics parameter file: {exc}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}", path=str(path)) from exc
    if data is None:
        data = {}
    return params_from_dict(data, source=str(path))
