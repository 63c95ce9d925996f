"""Typed, validated pipeline settings loaded from pipelines/*.yaml.

Each stage owns its section model (``hpd_imaging/<stage>/settings.py``); this module only composes them and
loads YAML. Relative paths inside a config file are resolved against the folder that holds the file, then
against the package's own ``pipelines/`` folder, so that a config works from any working directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from hpd_imaging.archive.settings import ArchiveSettings
from hpd_imaging.errors import ConfigError
from hpd_imaging.io.settings import LoaderSettings
from hpd_imaging.measure.settings import MeasureSettings, TrackingSettings
from hpd_imaging.model.settings import ModelSettings
from hpd_imaging.outcome.settings import OutcomeSettings
from hpd_imaging.radiomics_settings import RadiomicsSettings
from hpd_imaging.response.settings import ResponseSettings
from hpd_imaging.settings_base import Section

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_PIPELINES = PACKAGE_ROOT.parent / "pipelines"
DEFAULT_CONFIG = REPO_PIPELINES / "default.yaml"


class RunSettings(Section):
    workers: int | None = None  # None: sized to the machine
    scheduler: str | None = None  # address of an existing Dask scheduler
    # A follow-up exam with a CT but no segmentation: archives (and `hpd-imaging synth`) often store no mask
    # when
    # every lesion has disappeared. "no_lesions" reads it as no visible lesion (each tracked lesion measured
    # 0 mm, i.e. RECIST CR unless nodes remain) and writes a warning row; "error" refuses the patient. A
    # pre-baseline or baseline exam without a segmentation is always an error: targets are chosen there.
    follow_up_without_mask: Literal["no_lesions", "error"] = "no_lesions"


class PipelineConfig(Section):
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    loader: LoaderSettings = Field(default_factory=LoaderSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    measure: MeasureSettings = Field(default_factory=MeasureSettings)
    response: ResponseSettings = Field(default_factory=ResponseSettings)
    outcome: OutcomeSettings = Field(default_factory=OutcomeSettings)
    radiomics: RadiomicsSettings = Field(default_factory=RadiomicsSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    run: RunSettings = Field(default_factory=RunSettings)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON form: recorded in provenance and in the resume keys."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


def resolve_resource(path: Path, relative_to: Path | None = None) -> Path:
    """Find a settings resource: as given, next to the config file, or in the bundled pipelines/ folder."""
    candidates = [path]
    if not path.is_absolute():
        if relative_to is not None:
            candidates.append(relative_to / path)
        candidates.append(PACKAGE_ROOT.parent / path)
        candidates.append(REPO_PIPELINES / path.name)
    for c in candidates:
        if c.exists():
            return c.resolve()
    raise ConfigError(
        f"settings file not found: expected {path} (looked in {', '.join(map(str, candidates))})",
        path=str(path),
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with a clear error naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc}", path=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}", path=str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(data).__name__}", path=str(path)
        )
    return data


def format_validation_error(exc: ValidationError) -> str:
    """Every problem of a pydantic ValidationError on one line: ``loc: msg (got input)``, ``; ``-joined.

    Shared by every settings loader so a bad value reads the same whichever file it came from.
    """
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
        for err in exc.errors()
    )


def load_config(path: Path | None = None) -> PipelineConfig:
    """Load and validate a pipeline config (default: pipelines/default.yaml)."""
    path = path or DEFAULT_CONFIG
    data = read_yaml(path) if path.exists() else {}
    if not path.exists() and path != DEFAULT_CONFIG:
        raise ConfigError(f"config file not found: {path}", path=str(path))
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: invalid settings: {format_validation_error(exc)}", path=str(path)
        ) from exc
