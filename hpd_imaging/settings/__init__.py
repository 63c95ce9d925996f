"""Typed, validated settings of every stage (pydantic), the one YAML loader and the config hash.

This package is the leaf of hpd-imaging: it imports no stage code, so any stage can import its settings
without pulling in another stage. One module per stage: archive, io (loader), tracking, measure, radiomics,
hpd (the response stage's conventions and HPD thresholds), response (where the response settings file is),
model, synth; pipeline composes them and hashes them; loader reads YAML.
"""

from hpd_imaging.settings.base import Section
from hpd_imaging.settings.hpd import (
    DEFINITION_THRESHOLDS,
    DefinitionParams,
    ResponseConfig,
    Threshold,
    compare,
    load_response_config,
)
from hpd_imaging.settings.loader import (
    DEFAULT_CONFIG,
    DEFAULT_DEFINITIONS,
    PACKAGE_ROOT,
    REPO_PIPELINES,
    format_validation_error,
    read_yaml,
    resolve_resource,
)
from hpd_imaging.settings.pipeline import PipelineConfig, RunSettings, load_config

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_DEFINITIONS",
    "DEFINITION_THRESHOLDS",
    "PACKAGE_ROOT",
    "REPO_PIPELINES",
    "DefinitionParams",
    "PipelineConfig",
    "ResponseConfig",
    "RunSettings",
    "Section",
    "Threshold",
    "compare",
    "format_validation_error",
    "load_config",
    "load_response_config",
    "read_yaml",
    "resolve_resource",
]
