"""Validated settings of the response stage: conventions, policies, thresholds and comparators.

Every ambiguity of the literature is a named setting here (specs/hpd_kinetics.md section 7), so that the
output can say which convention produced a label. The YAML file ``pipelines/hpd_definitions.yaml`` holds the
defaults; unknown keys, unknown definition keys and unknown threshold names are refused with a
:class:`ConfigError`. Options that belong to one definition (Kato's pace basis, Matos' reading of
"multiple new lesions", Kim's composite) live in that definition's block; the flat names of earlier versions
(``matos_new_lesion_rule`` ...) are still accepted and moved into the block.

This module is part of the settings leaf: it imports no stage code. The default thresholds of every
definition are data here (:data:`DEFINITION_THRESHOLDS`); the registry of rules (response/hpd.py) reads them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from hpd_imaging.errors import ConfigError
from hpd_imaging.settings.base import Section
from hpd_imaging.settings.loader import DEFAULT_DEFINITIONS, format_validation_error, read_yaml

Comparator = Literal[">=", ">", "<=", "<"]
ReferencePolicy = Literal[
    "inequality_if_exp_positive", "strict_ratio", "not_evaluable", "infinite_acceleration"
]
MatosNewLesionRule = Literal["new_lesions_in_two_organs", "two_in_involved_or_new_organ", "any_multiple"]

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


def _t(value: float, comparator: Comparator = ">=") -> Threshold:
    return Threshold(value=value, comparator=comparator)


_KIM = {"tgk_ratio": _t(2.0), "tgr_ratio": _t(2.0), "window_days": _t(84.0, "<=")}

#: Published default thresholds of every HPD definition (specs/hpd_kinetics.md section 5). The keys are the
#: definition keys of the registry (response/hpd.py checks that both list the same definitions).
DEFINITION_THRESHOLDS: dict[str, dict[str, Threshold]] = {
    "champiat2017": {"tgr_ratio": _t(2.0)},
    "kanjanapan2019": {"tgr_ratio": _t(2.0)},
    "saada_bouzid2017": {"tgk_ratio": _t(2.0)},
    "kato2017": {"burden_increase_pct": _t(50.0, ">"), "pace_ratio": _t(2.0, ">")},
    "ferrara2018": {"delta_tgr": _t(50.0, ">")},
    "lo_russo2019": {
        "n_criteria": _t(3.0),
        "sld_increase_pct": _t(50.0),
        "new_in_involved_organ": _t(2.0),
        "new_organs": _t(1.0),
        "ecog_worsening": _t(2.0),
    },
    "kim2019": dict(_KIM),
    "kim2019_tgk": dict(_KIM),
    "kim2019_tgr": dict(_KIM),
    "kim2019_ttf": dict(_KIM),
    "matos2020": {
        "pct_a": _t(40.0),
        "pct_b": _t(20.0),
        "window_days": _t(56.0, "<="),
        "min_abs_increase_mm": _t(0.0),
    },
    "kas2020": {"delta_tgr": _t(100.0, ">")},
    "gandara2021": {
        "sld_increase_pct": _t(50.0),
        "scan_window_days": _t(42.0, "<="),
        "death_window_days": _t(84.0, "<="),
    },
    "champiat2017_vol": {"tgr_ratio": _t(2.0)},
    "ferrara2018_vol": {"delta_tgr": _t(50.0, ">")},
    "saada_bouzid2017_vol": {"tgk_ratio": _t(2.0)},
    "lahmar2016": {"delta_tgr": _t(50.0, ">")},
    "sasaki2019": {"tgk_ratio": _t(2.0), "burden_increase_pct": _t(50.0, ">")},
    "ji2019": {"tgk_ratio": _t(2.0)},
    "refae2020": {"tgk_ratio": _t(2.0)},
    "tunali2019": {"tgr_ratio": _t(2.0)},
    "kim_y2019_volumetric": {"tgk_ratio": _t(2.0), "volume_increase_pct": _t(50.0)},
}


class DefinitionParams(Section):
    """Per-definition overrides. Threshold names must be those the definition declares."""

    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    require_pd1: bool | None = None  # None: the definition's published default
    nonpositive_reference_policy: ReferencePolicy | None = None  # None: the global policy


class KatoParams(DefinitionParams):
    # Kato 2017 gives fold changes of the "progression pace" without a formula: % of burden per month
    # (relative, default) or mm per month (absolute, = TGK) (spec 1.6)
    pace_basis: Literal["relative", "absolute"] = "relative"


class MatosParams(DefinitionParams):
    # "multiple new lesions" of Matos 2020 branch B. Default: new lesions in >= 2 different organs, the
    # reading of the project's seed review (Lin 2021 table); the other readings are documented in
    # docs/hpd_definitions.md
    new_lesion_rule: MatosNewLesionRule = "new_lesions_in_two_organs"
    require_ttf: bool = False  # earlier abstract version: also TTF < 2 months


class KimParams(DefinitionParams):
    # the paper's Boolean combination is unconfirmed;
    # reconstruction = (TGKR >= 2 or TGRR >= 2) and TTF < 2 months and PD1
    composite: Literal["reconstruction", "any_of", "all_of"] = "reconstruction"


class KimYParams(DefinitionParams):
    tgk_basis: Literal["volume", "diameter"] = "volume"


PARAMS_CLASS: dict[str, type[DefinitionParams]] = {
    "kato2017": KatoParams,
    "matos2020": MatosParams,
    "kim2019": KimParams,
    "kim_y2019_volumetric": KimYParams,
}

# flat option names of earlier versions -> (definition key, option name in its block)
LEGACY_OPTIONS: dict[str, tuple[str, str]] = {
    "kato_pace_basis": ("kato2017", "pace_basis"),
    "matos_new_lesion_rule": ("matos2020", "new_lesion_rule"),
    "matos_require_ttf": ("matos2020", "require_ttf"),
    "kim_composite": ("kim2019", "composite"),
    "kim_y_tgk_basis": ("kim_y2019_volumetric", "tgk_basis"),
}


class StabilitySettings(Section):
    """Measurement uncertainty and label stability (issue 17; docs/label_stability.md).

    Sources of the per-lesion SD, in order: the SD columns of a measurement table; the grid the mask was
    measured on (pixel spacing, slice thickness, surface voxels: hpd_imaging/measure/uncertainty.py); else
    the repeat-scan coefficients of variation below (literature defaults, and the output says so).
    """

    # Monte Carlo draws per patient (0 turns the stability analysis off); deterministic for a given seed
    draws: int = Field(default=200, ge=0, le=100_000)
    seed: int = Field(default=17, ge=0)
    # sequential stop: from this many draws on, every 20 draws, stop when every label's stable/fragile call
    # is settled by an exact binomial test of its disagreement rate against 1 - stable_agreement at level
    # stop_alpha in either direction (at 60 draws: unanimous = stable, 0.95^60 = 4.6 %); 0 = never stop
    # early (docs/label_stability.md section 2 gives the error rates)
    early_stop_draws: int = Field(default=60, ge=0)
    stop_alpha: float = Field(default=0.05, gt=0, lt=0.5)
    # worker processes for a table of many patients (1 = in this process; each patient stays independent)
    workers: int = Field(default=1, ge=1, le=64)
    confidence: float = Field(default=0.95, gt=0, lt=1)  # level of the <metric>_ci_low/_ci_high interval
    stable_agreement: float = Field(default=0.95, gt=0.5, le=1)  # share of draws agreeing -> stable
    # Repeat-scan CV of one RECIST diameter (%). Oxnard et al., J Clin Oncol 2011;29:3114 (NSCLC, two CTs
    # 15 min apart, 3 readers): 84 % of diameter changes within +-10 % -> SD of a difference ~7.1 %, of one
    # measurement 7.1/sqrt(2) = 5.0 %.
    diameter_repeat_cv_pct: float = Field(default=5.0, ge=0)
    # Repeat-scan CV of one volume (%). Marchiano et al., Radiology 2009;251:919 (MILD screening, 233 nodules,
    # semi-automatic volumetry): 95 % limits of agreement +-27 % -> 27/1.96/sqrt(2) = 9.7 %.
    volume_repeat_cv_pct: float = Field(default=9.7, ge=0)
    # add the repeat-scan variability to SDs that came with the measurement (grid or table); off: a grid SD
    # is the mask's discretisation error alone (the right model for synthetic archives)
    add_repeatability: bool = False
    # minimum-detectable-change guard: under the inequality form (reference rate <= 0) a growth within
    # z x SD of the change is not acceleration
    mdc_guard: bool = True
    mdc_z: float = Field(default=1.96, gt=0)
    # concordance.csv counts only labels called stable
    concordance_stable_only: bool = False


@functools.cache
def _default_params(key: str) -> DefinitionParams:
    """The default block of a definition (frozen, so one instance serves every call: the stability draws
    read the options tens of thousands of times per table)."""
    return PARAMS_CLASS.get(key, DefinitionParams)()


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
    stability: StabilitySettings = Field(default_factory=StabilitySettings)
    definitions: dict[str, DefinitionParams] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy_flat_options(cls, data: Any) -> Any:
        """Move the flat per-definition options of earlier versions into their definition's block."""
        if not isinstance(data, dict) or not any(k in data for k in LEGACY_OPTIONS):
            return data
        data = dict(data)
        blocks = dict(data.get("definitions") or {})
        for flat, (key, name) in LEGACY_OPTIONS.items():
            if flat not in data:
                continue
            value = data.pop(flat)
            block = blocks.get(key) or {}
            block = block.model_dump(exclude_unset=True) if isinstance(block, Section) else dict(block)
            if name in block and block[name] != value:
                raise ValueError(
                    f"{flat} = {value!r} contradicts definitions.{key}.{name} = {block[name]!r}; "
                    f"expected one of them (prefer definitions.{key}.{name})"
                )
            block[name] = value
            blocks[key] = block
        data["definitions"] = blocks
        return data

    @field_validator("definitions", mode="before")
    @classmethod
    def _typed_blocks(cls, value: Any) -> Any:
        """Each block validated with its definition's own options model; unknown keys and names refused."""
        if not isinstance(value, dict):
            return value
        out: dict[str, DefinitionParams] = {}
        for key, block in value.items():
            if key not in DEFINITION_THRESHOLDS:
                raise ValueError(
                    f"unknown HPD definition {key!r}; expected one of {', '.join(DEFINITION_THRESHOLDS)}"
                )
            model = PARAMS_CLASS.get(key, DefinitionParams)
            if isinstance(block, DefinitionParams):
                block = block.model_dump(exclude_unset=True)
            try:
                params = model.model_validate(block or {})
            except ValidationError as exc:
                raise ValueError(f"definition {key!r}: {format_validation_error(exc)}") from None
            allowed = DEFINITION_THRESHOLDS[key]
            for name in params.thresholds:
                if name not in allowed:
                    raise ValueError(
                        f"definition {key!r} has no threshold {name!r}; "
                        f"expected one of {', '.join(allowed) or '(none)'}"
                    )
            out[key] = params
        return out

    def options(self, key: str) -> DefinitionParams:
        """The block of definition ``key``: as configured, else its defaults."""
        params = self.definitions.get(key)
        return params if params is not None else _default_params(key)

    def threshold(self, key: str, name: str) -> Threshold:
        """The threshold ``name`` of definition ``key``: the override if any, else the published default."""
        params = self.definitions.get(key)
        if params is not None and name in params.thresholds:
            return params.thresholds[name]
        return DEFINITION_THRESHOLDS[key][name]

    # typed shortcuts for the rules (the options live in the definitions' blocks)
    @property
    def kato_pace_basis(self) -> str:
        return getattr(self.options("kato2017"), "pace_basis", "relative")

    @property
    def matos_new_lesion_rule(self) -> str:
        return getattr(self.options("matos2020"), "new_lesion_rule", "new_lesions_in_two_organs")

    @property
    def matos_require_ttf(self) -> bool:
        return bool(getattr(self.options("matos2020"), "require_ttf", False))

    @property
    def kim_composite(self) -> str:
        return getattr(self.options("kim2019"), "composite", "reconstruction")

    @property
    def kim_y_tgk_basis(self) -> str:
        return getattr(self.options("kim_y2019_volumetric"), "tgk_basis", "volume")

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
    return DEFAULT_DEFINITIONS


def load_response_config(path: Path | None = None) -> ResponseConfig:
    """Load and validate ``hpd_definitions.yaml`` (default: the bundled one); errors name the file and key."""
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
