"""Settings of the HPD risk model (owned by the model stage).

Every choice that changes a number in a model card or in metrics.json is a field here, so that the card can
record it (``ModelSettings.model_dump()``) and a run can be reproduced. Defaults follow
specs/radiomics_models_notes.md section 5: a small search space, nested repeated stratified CV (5 x 5 outer,
3-fold inner), corrected resampled t-test CIs (Nadeau & Bengio 2003, as WORC does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from hpd_imaging.settings.base import Section

ClassifierName = Literal[
    "logistic_l1", "logistic_elasticnet", "logistic_l2", "random_forest", "gradient_boosting", "svm"
]

DEFAULT_CLINICAL_COVARIATES = ["age", "n_metastatic_sites", "ldh_above_uln", "ecog_baseline", "sex"]
DEFAULT_VOLUME_COLUMNS = ["total_volume_mm3", "largest_lesion_volume_mm3", "volume_baseline_mm3"]


class ModelSettings(Section):
    # --- label ----------------------------------------------------------------------------------------------
    definition: str = "champiat2017"  # kinetics.csv column hpd_<definition> is the label

    # --- pipeline (hpd_imaging.model.estimator.build_model) -------------------------------------------------
    classifier: ClassifierName = "logistic_l1"
    # variance filter on raw (imputed, unscaled) values; 0 drops constant columns
    variance_threshold: float = Field(default=0.0, ge=0.0)
    # |r| above which the redundant feature of a pair is dropped
    correlation_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    correlation_method: Literal["pearson", "spearman"] = "spearman"
    k_best_grid: list[int] = Field(default_factory=lambda: [5, 10])  # SelectKBest(f_classif) k, tuned
    c_grid: list[float] = Field(default_factory=lambda: [0.1, 1.0])  # inverse regularisation (logistic, SVM)
    l1_ratio: float = Field(default=0.5, gt=0.0, lt=1.0)  # elastic-net mixing
    tree_depth_grid: list[int] = Field(default_factory=lambda: [2, 4])  # random forest / gradient boosting
    n_estimators: int = Field(default=200, ge=10)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    calibration_folds: int = Field(default=3, ge=2)

    # --- evaluation (hpd_imaging.model.evaluate) ------------------------------------------------------------
    outer_splits: int = Field(default=5, ge=2)
    outer_repeats: int = Field(default=5, ge=1)
    inner_splits: int = Field(default=3, ge=2)
    ci_method: Literal["corrected_t", "bootstrap"] = "corrected_t"
    ci_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    n_bootstrap: int = Field(default=1000, ge=50)
    threshold_rule: Literal["prevalence", "youden"] = "prevalence"
    n_permutations: int = Field(default=5, ge=0)
    permutation_repeats: int = Field(default=1, ge=1)  # outer repeats per permutation run
    baselines: bool = True
    clinical_covariates: list[str] = Field(default_factory=lambda: list(DEFAULT_CLINICAL_COVARIATES))
    clinical_in_model: bool = True  # with --clinical: covariates join the imaging features in the main model
    volume_columns: list[str] = Field(default_factory=lambda: list(DEFAULT_VOLUME_COLUMNS))
    decision_thresholds: list[float] = Field(
        default_factory=lambda: [round(0.02 * i, 2) for i in range(1, 26)]
    )
    seed: int = 0
    n_jobs: int = 1

    @field_validator("k_best_grid", "tree_depth_grid")
    @classmethod
    def _positive_ints(cls, v: list[int]) -> list[int]:
        if not v or any(x < 1 for x in v):
            raise ValueError(f"expected a non-empty list of integers >= 1, got {v}")
        return v

    @field_validator("c_grid")
    @classmethod
    def _positive_floats(cls, v: list[float]) -> list[float]:
        if not v or any(x <= 0 for x in v):
            raise ValueError(f"expected a non-empty list of positive numbers, got {v}")
        return v

    @field_validator("decision_thresholds")
    @classmethod
    def _probabilities(cls, v: list[float]) -> list[float]:
        if not v or any(not 0.0 < x < 1.0 for x in v):
            raise ValueError(f"expected thresholds strictly between 0 and 1, got {v}")
        return v


def load_model_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> ModelSettings:
    """Model settings from a YAML file (its ``model:`` section, or the whole file when it has none), default
    pipelines/default.yaml, then command-line ``overrides`` (None values ignored). Errors name the file."""
    from pydantic import ValidationError

    from hpd_imaging.errors import ConfigError
    from hpd_imaging.settings.loader import DEFAULT_CONFIG, format_validation_error, read_yaml

    source = Path(path) if path is not None else DEFAULT_CONFIG
    if path is not None and not source.is_file():
        raise ConfigError(
            f"{source}: expected a model settings YAML file, got no such file", path=str(source)
        )
    data = read_yaml(source) if source.is_file() else {}
    section = data.get("model", data if path is not None else {}) or {}
    if not isinstance(section, dict):
        raise ConfigError(
            f"{source}: 'model' section: expected a mapping, got {type(section).__name__}", path=str(source)
        )
    merged = {**section, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        return ModelSettings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            f"{source}: invalid model settings: {format_validation_error(exc)}", path=str(source)
        ) from exc
