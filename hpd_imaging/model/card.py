"""The JSON model card written next to every .skops model file.

It is what a reader (or a reviewer filling CLEAR / TRIPOD+AI) needs without opening the model: training data
summary (n, prevalence, n excluded as not evaluable), label definition, features in and features selected,
hyperparameters, threshold and its rule, metrics with CIs (when evaluated), package versions, intended use,
and the sha256 of the .skops file, which :func:`hpd_imaging.model.persist.load_model` checks before loading.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from hpd_imaging import provenance

if TYPE_CHECKING:
    from hpd_imaging.model.training import TrainedModel

CARD_FORMAT = "hpd-imaging-model-card/1"
VERSIONED_PACKAGES = (
    "hpd-imaging",
    "scikit-learn",
    "skops",
    "numpy",
    "scipy",
    "pandas",
    "pyradiomics",
    "SimpleITK",
    "pydicom",
)

INTENDED_USE = (
    "Research use only: estimates the risk of hyperprogressive disease (by the stated label "
    "definition) from baseline imaging features (and clinical covariates when listed), for "
    "hypothesis generation and method comparison in retrospective cohorts. Not a medical device; "
    "not validated for clinical decisions."
)
SYNTHETIC_WARNING = (
    "SYNTHETIC DATA - NOT FOR CLINICAL USE: trained on a synthetic cohort; its numbers say nothing "
    "about real patients."
)


def json_clean(o: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, NaN/inf to None (metrics.json never holds NaN)."""
    if isinstance(o, dict):
        return {str(k): json_clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_clean(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def package_versions() -> dict[str, str | None]:
    """The model card's versions: the packages a saved model depends on, None for one not installed."""
    return provenance.package_versions(VERSIONED_PACKAGES, missing=None)


def build_card(
    model: TrainedModel,
    *,
    model_file: str,
    sha256: str,
    synthetic: bool = False,
    intended_use: str | None = None,
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card as a JSON-ready dict (see the module docstring for what it holds)."""
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "model_file": {"name": model_file, "sha256": sha256, "serialisation": "skops"},
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "synthetic": bool(synthetic),
        "not_for_clinical_use": True,
        "warning": SYNTHETIC_WARNING if synthetic else "Research use only - not for clinical use.",
        "intended_use": intended_use or INTENDED_USE,
        "label": {
            "definition": model.definition,
            "column": model.label_column,
            "positive_class": "hpd",
            "negative_class": "no_hpd",
            "excluded": "not_evaluable (left out of training, counted below)",
        },
        "training_data": model.training_summary,
        "features": {
            "inputs": model.feature_names,
            "n_inputs": len(model.feature_names),
            "clinical_columns": model.clinical_columns,
            "clinical_covariates": model.clinical_covariates,
            "selected": model.selected_features,
            "n_selected": len(model.selected_features),
        },
        "estimator": {
            "classifier": model.settings.get("classifier"),
            "best_params": model.best_params,
            "structure": "CalibratedClassifierCV(GridSearchCV(Pipeline[impute, variance, scale, "
            "redundancy, select, clf]))",
            "cv_plan": model.cv_plan,
        },
        "threshold": {
            "value": model.threshold,
            "rule": model.threshold_rule,
            "note": "chosen on training data; 'prevalence' = training HPD prevalence applied to "
            "calibrated risks, 'youden' = max(sens + spec - 1) on training predictions",
        },
        "metrics": model.metrics,
        "settings": model.settings,
        "versions": package_versions(),
        "notes": {**model.extra, **(notes or {})},
    }
    return json_clean(card)
