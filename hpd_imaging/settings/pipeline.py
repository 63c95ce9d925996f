"""The pipeline's settings: one section per stage, composed from the modules of this package.

``config_hash`` covers the validated settings *and* the contents of every settings file a run reads (the HPD
definitions file and the pyradiomics parameter file named in the config), so that editing a threshold in
``hpd_definitions.yaml`` changes the hash recorded in run.json and in the resume keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError

from hpd_imaging.errors import ConfigError
from hpd_imaging.settings.archive import ArchiveSettings
from hpd_imaging.settings.base import Section
from hpd_imaging.settings.io import LoaderSettings
from hpd_imaging.settings.loader import (
    DEFAULT_CONFIG,
    format_validation_error,
    read_yaml,
    resource_candidates,
)
from hpd_imaging.settings.measure import MeasureSettings
from hpd_imaging.settings.model import ModelSettings
from hpd_imaging.settings.outcome import OutcomeSettings
from hpd_imaging.settings.radiomics import RadiomicsSettings
from hpd_imaging.settings.response import ResponseSettings
from hpd_imaging.settings.tracking import TrackingSettings


class RunSettings(Section):
    workers: int | None = None  # None: sized to the machine
    scheduler: str | None = None  # address of an existing Dask scheduler
    # A follow-up exam with a CT but no segmentation: archives (and `hpd-imaging synth`) often store no mask
    # when
    # every lesion has disappeared. "no_lesions" reads it as no visible lesion (each tracked lesion measured
    # 0 mm, i.e. RECIST CR unless nodes remain) and writes a warning row; "error" refuses the patient. A
    # pre-baseline or baseline exam without a segmentation is always an error: targets are chosen there.
    follow_up_without_mask: Literal["no_lesions", "error"] = "no_lesions"
    # no hang (issue 16): a patient still running after this many seconds is stopped and becomes an error
    # row (None: no limit); a Dask scheduler without any worker for cluster_lost_after_s ends the run
    patient_time_limit_s: float | None = Field(default=3600.0, gt=0)
    cluster_lost_after_s: float = Field(default=60.0, gt=0)


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

    # folder of the YAML file this config was read from (relative resource paths resolve against it)
    _config_dir: Path | None = PrivateAttr(default=None)

    def with_config_dir(self, config_dir: Path | None) -> PipelineConfig:
        """A copy of this config that resolves its relative settings files against ``config_dir``."""
        copy = self.model_copy()
        copy._config_dir = None if config_dir is None else Path(config_dir)
        return copy

    def settings_files(self) -> dict[str, Path | None]:
        """Every settings file a run reads besides the config itself (None: not found where looked)."""
        named = {
            "hpd_definitions": self.response.definitions_file,
            "radiomics_params": self.radiomics.params_file,
        }
        out: dict[str, Path | None] = {}
        for key, path in named.items():
            found = [c for c in resource_candidates(Path(path), self._config_dir) if c.is_file()]
            out[key] = found[0].resolve() if found else None
        return out

    def settings_files_sha256(self) -> dict[str, str | None]:
        """sha256 of the contents of each settings file (recorded in run.json next to the config hash)."""
        return {
            key: None if path is None else hashlib.sha256(path.read_bytes()).hexdigest()
            for key, path in self.settings_files().items()
        }

    def config_hash(self) -> str:
        """sha256 of the canonical JSON form plus the contents of every settings file it names: recorded in
        provenance and in the resume keys, so a changed threshold is a changed configuration."""
        payload = json.dumps(
            {"settings": self.model_dump(mode="json"), "files": self.settings_files_sha256()},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def load_config(path: Path | None = None) -> PipelineConfig:
    """Load and validate a pipeline config (default: pipelines/default.yaml)."""
    path = path or DEFAULT_CONFIG
    data = read_yaml(path) if path.exists() else {}
    if not path.exists() and path != DEFAULT_CONFIG:
        raise ConfigError(f"config file not found: {path}", path=str(path))
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: invalid settings: {format_validation_error(exc)}", path=str(path)
        ) from exc
    return config.with_config_dir(path.parent)
