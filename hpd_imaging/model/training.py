"""Train the HPD risk model on all labelled patients, and predict with it.

Decision threshold (``ModelSettings.threshold_rule``), always chosen on training data only:

* ``prevalence`` (default): threshold = the training prevalence of HPD. On calibrated risks this classifies a
  patient as ``hpd`` when their risk is above the base rate (likelihood ratio > 1); it needs no extra fitting
  and is stable in small cohorts.
* ``youden``: the threshold maximising sensitivity + specificity - 1 on the calibrated *training*
  predictions (in-sample, hence optimistic; prefer ``prevalence`` for small cohorts).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.metrics import roc_curve

from hpd_imaging.errors import ModelError
from hpd_imaging.model.estimator import CvPlan, best_params, build_model, plan_folds, selected_features
from hpd_imaging.model.features import (
    TrainingTable,
    clinical_covariates,
    label_column,
    numeric_features,
    read_labels,
    table_from_settings,
)
from hpd_imaging.settings.model import ModelSettings

log = logging.getLogger(__name__)


@contextmanager
def quiet_fit_warnings() -> Iterator[None]:
    """Silence warnings that are expected and harmless at these cohort sizes (logged once by the caller).

    SelectKBest warns when k exceeds the features left after the filters (it then keeps them all);
    liblinear/saga may warn about convergence on tiny folds.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"k=\d+ is greater than n_features")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*Features? .* constant.*")
        warnings.filterwarnings(
            "ignore", category=RuntimeWarning, message=r"invalid value encountered in divide"
        )
        yield


def fit_model(
    X: pd.DataFrame, y: np.ndarray, settings: ModelSettings, plan: CvPlan, *, feature_selection: bool = True
) -> BaseEstimator:
    """Fit the model of :func:`build_model`, then apply the monotonicity guard of the sigmoid calibration.

    Guard: when the sigmoid fitted on the out-of-fold scores has a non-positive slope (higher model score ->
    lower or equal HPD risk: the model did not generalise within the training data, common in small cohorts
    and under no signal), the calibrator is replaced by the constant training prevalence instead of
    inverting the model's ranking. Such a model predicts the base rate for everyone (AUC 0.5); it is logged
    and flagged (``calibration_flat_`` = True on the estimator).
    """
    model = build_model(settings, plan, feature_selection=feature_selection)
    with quiet_fit_warnings():
        model.fit(X, y)
    model.calibration_flat_ = False
    for calibrated in model.calibrated_classifiers_:
        for cal in calibrated.calibrators:
            # _SigmoidCalibration predicts expit(-(a_ * score + b_)): a_ >= 0 means risk not rising with score
            if hasattr(cal, "a_") and cal.a_ >= 0:
                prevalence = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
                cal.a_ = 0.0
                cal.b_ = float(-np.log(prevalence / (1 - prevalence)))
                model.calibration_flat_ = True
                log.info(
                    "calibration slope was not positive: model predicts the training prevalence %.3f",
                    prevalence,
                )
    return model


def choose_threshold(model: BaseEstimator, X: pd.DataFrame, y: np.ndarray, rule: str) -> float:
    """Decision threshold from training data only (see the module docstring)."""
    if rule == "prevalence":
        return float(np.mean(y))
    if rule == "youden":
        risk = model.predict_proba(X)[:, 1]
        fpr, tpr, thr = roc_curve(y, risk)
        best = int(np.argmax(tpr - fpr))
        return float(min(max(thr[best], 0.0), 1.0))
    raise ModelError(f"model settings: threshold_rule: expected 'prevalence' or 'youden', got {rule!r}")


@dataclass
class TrainedModel:
    """A fitted model plus everything its card and predictions need."""

    estimator: BaseEstimator  # CalibratedClassifierCV(GridSearchCV(Pipeline)), see estimator.py
    feature_names: list[str]  # input columns, in order (imaging + clinical covariates)
    clinical_columns: list[str]  # the subset that comes from clinical.csv
    clinical_covariates: list[str]  # raw clinical.csv column names used (e.g. 'sex' for 'sex_male')
    definition: str
    threshold: float
    threshold_rule: str
    training_summary: dict[str, Any]
    selected_features: list[str]
    best_params: dict[str, Any]
    settings: dict[str, Any]
    cv_plan: dict[str, Any]
    metrics: dict[str, Any] | None = None  # from evaluate(), copied into the card
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"synthetic": True, "cohort": {...}}

    @property
    def label_column(self) -> str:
        return label_column(self.definition)


def train(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    definition: str | None = None,
    settings: ModelSettings | None = None,
    *,
    clinical: pd.DataFrame | None = None,
    metrics: dict[str, Any] | None = None,
) -> TrainedModel:
    """Fit the risk model on every evaluable patient (not_evaluable labels left out and counted)."""
    table, settings = table_from_settings(features, labels, definition, settings, clinical=clinical)
    return train_table(table, settings, metrics=metrics)


def train_table(
    table: TrainingTable, settings: ModelSettings, *, metrics: dict[str, Any] | None = None
) -> TrainedModel:
    plan = plan_folds(table.y, settings, nested=False)
    model = fit_model(table.X, table.y, settings, plan)
    threshold = choose_threshold(model, table.X, table.y, settings.threshold_rule)
    used = [
        c for c in settings.clinical_covariates if ("sex_male" if c == "sex" else c) in table.clinical_columns
    ]
    log.info(
        "trained %s on %d patients (%d hpd); threshold %.3f (%s)",
        settings.classifier,
        len(table.y),
        int(table.y.sum()),
        threshold,
        settings.threshold_rule,
    )
    return TrainedModel(
        estimator=model,
        feature_names=list(table.X.columns),
        clinical_columns=list(table.clinical_columns),
        clinical_covariates=used,
        definition=table.definition,
        threshold=threshold,
        threshold_rule=settings.threshold_rule,
        training_summary=table.summary(),
        selected_features=selected_features(model),
        best_params=best_params(model),
        settings=settings.model_dump(mode="json"),
        cv_plan={
            "calibration_folds": plan.calibration_folds,
            "inner_splits": plan.inner_splits,
            "warnings": list(plan.warnings),
        },
        metrics=metrics,
    )


def predict(
    model: TrainedModel,
    features: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    *,
    clinical: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per patient: ``hpd_risk`` (calibrated probability), ``predicted_hpd`` at the model's threshold, and
    (with ``labels``, a kinetics table) the kinetics label of the model's definition side by side.

    Clinical covariates, when the model uses them, come from ``clinical`` or else from kinetics.csv columns.
    Missing feature columns are an error; extra columns are ignored; missing values are imputed by the model.
    """
    feats = numeric_features(features)
    src = str(features.attrs.get("source", "features"))
    X = feats
    if model.clinical_columns:
        source = clinical if clinical is not None else labels
        if source is None:
            raise ModelError(
                f"model uses clinical covariates {model.clinical_covariates}: expected a clinical "
                "table (--clinical) or kinetics labels carrying them, got neither"
            )
        clin = clinical_covariates(source, model.clinical_covariates).reindex(feats.index)
        X = pd.concat([feats.drop(columns=[c for c in clin.columns if c in feats.columns]), clin], axis=1)
    missing = [c for c in model.feature_names if c not in X.columns]
    if missing:
        raise ModelError(
            f"{src}: expected the model's {len(model.feature_names)} feature columns, got "
            f"{len(missing)} missing: {missing[:10]}",
            path=src,
        )
    extra = [c for c in X.columns if c not in model.feature_names]
    if extra:
        log.info("%s: %d column(s) not used by the model were ignored", src, len(extra))
    X = X[model.feature_names]
    with quiet_fit_warnings():
        risk = model.estimator.predict_proba(X)[:, 1]
    out = pd.DataFrame(
        {
            "patient_id": X.index.astype(str),
            "hpd_risk": risk,
            "predicted_hpd": np.where(risk >= model.threshold, "hpd", "no_hpd"),
            "threshold": model.threshold,
            "definition": model.definition,
        }
    )
    if labels is not None:
        truth = read_labels(labels, model.definition)
        out[model.label_column] = out["patient_id"].map(truth)
        n_missing = int(out[model.label_column].isna().sum())
        if n_missing:
            log.warning("%d predicted patient(s) have no %s label", n_missing, model.label_column)
    return out
