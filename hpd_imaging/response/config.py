"""Validated settings of the response stage: conventions, policies, thresholds and comparators.

Every ambiguity of the literature is a named setting here (specs/hpd_kinetics.md section 7), so that the
output
can say which convention produced a label. The YAML file ``pipelines/hpd_definitions.yaml`` holds the
defaults;
unknown keys, unknown definition keys and unknown threshold names are refused with a :class:`ConfigError`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from hpd_imaging.errors import ConfigError
from hpd_imaging.settings_base import Section

Comparator = Literal[">=", ">", "<=", "<"]
ReferencePolicy = Literal[
    "inequality_if_exp_positive", "strict_ratio", "not_evaluable", "infinite_acceleration"
]

# Relative tolerance used when comparing against a threshold so that a value that is *mathematically* on the
# boundary (e.g. a sum that rose exactly 40 %) is not pushed to one side by binary rounding of 70/50.
BOUNDARY_REL_TOL = 1e-9

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def compare(value: float, comparator: str, threshold: float) -> bool:
    """``value <comparator> threshold`` where values within a relative 1e-9 of the threshold count as
    equal."""
    if abs(value - threshold) <= BOUNDARY_REL_TOL * max(1.0, abs(threshold)):
        return comparator in (">=", "<=")
    return _OPS[comparator](value, threshold)


class Threshold(Section):
    """A number and the comparator that must hold between the observed value and it."""

    value: float
    comparator: Comparator = ">="

    def holds(self, observed: float) -> bool:
        return compare(observed, self.comparator, self.value)

    def text(self) -> str:
        return f"{self.comparator} {self.value:g}"


class DefinitionParams(Section):
    """Per-definition overrides. Threshold names must be those the definition declares (see the registry)."""

    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    require_pd1: bool | None = None  # None: the definition's published default
    nonpositive_reference_policy: ReferencePolicy | None = None  # None: the global policy


class ResponseConfig(Section):
    """Conventions and policies (specs/hpd_kinetics.md section 7) plus per-definition overrides."""

    month_days: float = Field(default=30.4375, gt=0)
    exp_period_start: Literal["baseline_scan", "ici_start"] = "baseline_scan"
    ttf_threshold_days: float = Field(default=60.875, gt=0)
    nonpositive_reference_policy: ReferencePolicy = "inequality_if_exp_positive"
    pd1_mode: Literal["recist_overall", "targets_only", "irecist_iupd"] = "recist_overall"
    kinetic_basis: Literal[
        "sld_power3", "sum_ld_cubed", "volume_power1", "sphere_equiv_diameter_from_volume"
    ] = "sld_power3"
    burden_lesion_set: Literal["baseline_targets", "targets_plus_new", "all_lesions"] = "baseline_targets"
    missing_target_at_prebaseline: Literal["zero", "too_small", "exclude"] = "zero"
    # A target without a row on an on-treatment scan was not measured (a disappeared lesion has a 0 mm row,
    # spec section A): RECIST 1.1 makes the target response NE unless the measured targets alone give PD.
    missing_target_at_followup: Literal["zero", "not_evaluable"] = "not_evaluable"
    too_small_to_measure_mm: float = Field(default=5.0, ge=0)
    early_death_policy: Literal["not_evaluable", "hpd"] = "not_evaluable"
    # early_death_policy = hpd is Gandara-style: death within 12 weeks of ICI start (spec section 7)
    early_death_window_days: float = Field(default=84.0, gt=0)
    kato_pace_basis: Literal["relative", "absolute"] = "relative"
    matos_new_lesion_rule: Literal[
        "two_in_involved_or_new_organ", "new_lesions_in_two_organs", "any_multiple"
    ] = "two_in_involved_or_new_organ"
    matos_require_ttf: bool = False
    kim_composite: Literal["reconstruction", "any_of", "all_of"] = "reconstruction"
    kim_y_tgk_basis: Literal["volume", "diameter"] = "volume"
    # 0 = off (no volumetric analogue of the 5 mm rule)
    min_abs_volume_increase_mm3: float = Field(default=0.0, ge=0)
    # RECIST 1.1 constants (Eisenhauer 2009), exposed so that sensitivity analyses can move them
    measurable_min_mm: float = 10.0
    node_measurable_min_sa_mm: float = 15.0
    node_pathological_min_sa_mm: float = 10.0
    max_targets_total: int = Field(default=5, ge=1)
    max_targets_per_organ: int = Field(default=2, ge=1)
    pd_pct: float = 20.0
    pd_min_abs_mm: float = 5.0
    pr_pct: float = 30.0
    volumetric_pd_ratio: float = 1.728  # (1.2)^3
    volumetric_pr_ratio: float = 0.343  # (0.7)^3
    # unequivocal non-target progression: non-target burden volume x1.728 vs its nadir (sphere equivalent of
    # the
    # RECIST working group's ~73 %) AND its diameter sum up by at least this many mm (an operationalisation)
    non_target_pd_volume_ratio: float = 1.728
    non_target_pd_min_abs_mm: float = 5.0
    confirmation_min_days: int = 28  # iRECIST / irRC / imRECIST: >= 4 weeks
    irecist_confirmation_max_days: int = 56  # iRECIST: next assessment 4-8 weeks later (later: flagged)
    irrecist_confirmation_max_days: int = 84  # irRECIST: 4-12 weeks
    irrc_pd_pct: float = 25.0
    irrc_pr_pct: float = 50.0
    irrc_min_lesion_mm: float = 5.0
    irrc_max_index_total: int = 10
    irrc_max_index_per_organ: int = 5
    growth_include_pre_baseline: bool = False
    definitions: dict[str, DefinitionParams] = Field(default_factory=dict)

    @field_validator("definitions")
    @classmethod
    def _known_definitions(cls, value: dict[str, DefinitionParams]) -> dict[str, DefinitionParams]:
        from hpd_imaging.response.hpd import DEFINITIONS

        for key, params in value.items():
            if key not in DEFINITIONS:
                raise ValueError(f"unknown HPD definition {key!r}; expected one of {', '.join(DEFINITIONS)}")
            allowed = DEFINITIONS[key].default_thresholds
            for name in params.thresholds:
                if name not in allowed:
                    raise ValueError(
                        f"definition {key!r} has no threshold {name!r}; "
                        f"expected one of {', '.join(allowed) or '(none)'}"
                    )
        return value

    def threshold(self, key: str, name: str) -> Threshold:
        """The threshold ``name`` of definition ``key``: the override if any, else the registry default."""
        from hpd_imaging.response.hpd import DEFINITIONS

        params = self.definitions.get(key)
        if params is not None and name in params.thresholds:
            return params.thresholds[name]
        return DEFINITIONS[key].default_thresholds[name]

    def policy(self, key: str) -> str:
        params = self.definitions.get(key)
        if params is not None and params.nonpositive_reference_policy is not None:
            return params.nonpositive_reference_policy
        return self.nonpositive_reference_policy

    def require_pd1(self, key: str, default: bool) -> bool:
        params = self.definitions.get(key)
        if params is not None and params.require_pd1 is not None:
            return params.require_pd1
        return default


def default_definitions_path() -> Path:
    return Path(__file__).resolve().parents[2] / "pipelines" / "hpd_definitions.yaml"


def load_response_config(path: Path | None = None) -> ResponseConfig:
    """Load and validate ``hpd_definitions.yaml`` (default: the bundled one); errors name the file and key."""
    from hpd_imaging.config import format_validation_error, read_yaml

    if path is None:
        path = default_definitions_path()
        if not path.exists():  # installed without the pipelines folder: the documented defaults
            return ResponseConfig()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: HPD definitions file not found", path=str(path))
    data = read_yaml(path)
    # the file may hold the section at top level or under a `response:` key
    if set(data) == {"response"} and isinstance(data["response"], dict):
        data = data["response"]
    try:
        return ResponseConfig.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise ConfigError(f"{path}: invalid HPD definitions settings: {problems}", path=str(path)) from exc
