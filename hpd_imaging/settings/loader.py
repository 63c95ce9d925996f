"""The one YAML loader of hpd-imaging and the helpers every settings file shares.

``read_yaml`` is the only function that parses a settings file: keep it one function so that a guard (size,
alias expansion) can wrap it in one place. Relative paths inside a config file are resolved against the
folder that holds the file, then against the package's own ``pipelines/`` folder, so that a config works from
any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hpd_imaging.errors import ConfigError
from hpd_imaging.settings.yaml_guard import load_yaml_bounded

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
REPO_PIPELINES = PACKAGE_ROOT.parent / "pipelines"
DEFAULT_CONFIG = REPO_PIPELINES / "default.yaml"
DEFAULT_DEFINITIONS = REPO_PIPELINES / "hpd_definitions.yaml"


def resource_candidates(path: Path, relative_to: Path | None = None) -> list[Path]:
    """Where a settings resource is looked for, in order."""
    candidates = [path]
    if not path.is_absolute():
        if relative_to is not None:
            candidates.append(relative_to / path)
        candidates.append(PACKAGE_ROOT.parent / path)
        candidates.append(REPO_PIPELINES / path.name)
    return candidates


def resolve_resource(path: Path, relative_to: Path | None = None) -> Path:
    """Find a settings resource: as given, next to the config file, or in the bundled pipelines/ folder."""
    candidates = resource_candidates(path, relative_to)
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
        data = load_yaml_bounded(Path(path).read_text(encoding="utf-8"), path)  # alias bombs (issue 16)
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
