"""The ONE factory of the HPD risk model: a scikit-learn Pipeline, tuned and calibrated.

Everything that learns from data sits inside the returned estimator, so cross-validating it cannot leak:

    CalibratedClassifierCV(method=sigmoid, ensemble=False, cv=calibration folds)
      └─ GridSearchCV(scoring=roc_auc, cv=inner folds)        # small hyperparameter grid
           └─ Pipeline: SimpleImputer(median) → VarianceThreshold → StandardScaler
                        → CorrelationFilter (redundancy) → SelectKBest(f_classif) → classifier

Why this nesting: the classifiers use ``class_weight='balanced'`` (HPD is 10-20 % of patients), which distorts
their probabilities; the sigmoid calibration fitted on out-of-fold decision values of the *tuned* procedure
maps scores back to calibrated risks. With ``ensemble=False`` the final model is a single tuned pipeline
fitted on all training data (so its selected features are one well-defined list) plus one monotone
calibration map, so the AUC of the calibrated model equals that of the tuned pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.feature_selection._base import SelectorMixin
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted, validate_data

from hpd_imaging.errors import ModelError
from hpd_imaging.settings.model import ModelSettings

log = logging.getLogger(__name__)


class CorrelationFilter(SelectorMixin, BaseEstimator):
    """Drop redundant features: of every pair with |correlation| > ``threshold`` keep one.

    Unsupervised (ignores ``y``), so it cannot leak labels. Greedy rule as in caret's ``findCorrelation``:
    features are visited from the least to the most redundant (mean |r| with all others, ties by column order)
    and a feature is kept only when its |r| with every feature already kept is <= ``threshold``. Constant
    columns have no defined correlation and are treated as uncorrelated (the variance filter removes them).
    Hand-written because scikit-learn has no correlation-based selector.

    Parameters
    ----------
    threshold : float in (0, 1], default 0.9
    method : {"pearson", "spearman"}, default "spearman"
    """

    def __init__(self, threshold: float = 0.9, method: str = "spearman") -> None:
        self.threshold = threshold
        self.method = method

    def fit(self, X, y=None):  # noqa: ANN001 - scikit-learn signature
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=True)
        if not 0.0 < float(self.threshold) <= 1.0:
            raise ValueError(f"CorrelationFilter: expected 0 < threshold <= 1, got {self.threshold!r}")
        if self.method not in ("pearson", "spearman"):
            raise ValueError(
                f"CorrelationFilter: expected method 'pearson' or 'spearman', got {self.method!r}"
            )
        n_features = X.shape[1]
        corr = np.zeros((n_features, n_features))
        if X.shape[0] >= 2 and n_features >= 2:
            data = rankdata(X, axis=0) if self.method == "spearman" else X
            centred = data - data.mean(axis=0)
            norm = np.sqrt((centred**2).sum(axis=0))
            ok = norm > 0
            unit = np.zeros_like(centred)
            unit[:, ok] = centred[:, ok] / norm[ok]
            corr = np.abs(unit.T @ unit)
            np.fill_diagonal(corr, 0.0)
        self.abs_correlation_ = corr
        order = np.argsort(corr.mean(axis=1) if n_features > 1 else np.zeros(n_features), kind="stable")
        keep: list[int] = []
        for j in order:
            if all(corr[j, k] <= self.threshold for k in keep):
                keep.append(int(j))
        mask = np.zeros(n_features, dtype=bool)
        mask[keep] = True
        self.support_ = mask
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags


@dataclass(frozen=True)
class CvPlan:
    """Fold counts actually used; reduced from the settings when a class is too small (logged)."""

    outer_splits: int
    calibration_folds: int
    inner_splits: int
    warnings: tuple[str, ...] = ()


def _reduce(requested: int, n_minority: int, level: str, notes: list[str]) -> int:
    if n_minority < 2:
        raise ModelError(
            f"{level}: expected at least 2 patients of each class (hpd / no_hpd) to cross-validate, "
            f"got {n_minority} in the smaller class; collect more labelled patients"
        )
    if requested > n_minority:
        msg = (
            f"{level}: reduced from {requested} to {n_minority} folds so that every fold holds at least one "
            f"patient of the smaller class ({n_minority} available)"
        )
        log.warning(msg)
        notes.append(msg)
        return n_minority
    return requested


def _train_minority(n_minority: int, n_splits: int) -> int:
    """Smallest minority count left in a training part of a stratified n_splits split."""
    return n_minority - int(np.ceil(n_minority / n_splits))


def plan_folds(y: np.ndarray, settings: ModelSettings, *, nested: bool) -> CvPlan:
    """Choose fold counts so that no fold at any level is without positives.

    Levels, outermost first: outer CV (evaluation only) → calibration folds → inner tuning folds.
    """
    counts = np.bincount(np.asarray(y, dtype=int), minlength=2)
    n_min = int(counts.min())
    notes: list[str] = []
    outer = 0
    if nested:
        outer = _reduce(settings.outer_splits, n_min, "outer CV", notes)
        n_min = _train_minority(n_min, outer)
    calib = _reduce(settings.calibration_folds, n_min, "calibration CV", notes)
    n_min = _train_minority(n_min, calib)
    inner = _reduce(settings.inner_splits, n_min, "inner (tuning) CV", notes)
    return CvPlan(outer_splits=outer, calibration_folds=calib, inner_splits=inner, warnings=tuple(notes))


def _classifier(settings: ModelSettings) -> tuple[BaseEstimator, dict[str, list]]:
    """Classifier of the chosen family and its (small) hyperparameter grid."""
    seed = settings.seed
    name = settings.classifier
    if name == "logistic_l1":
        clf = LogisticRegression(
            l1_ratio=1.0, solver="liblinear", class_weight="balanced", max_iter=5000, random_state=seed
        )
        return clf, {"clf__C": list(settings.c_grid)}
    if name == "logistic_elasticnet":
        clf = LogisticRegression(
            l1_ratio=settings.l1_ratio,
            solver="saga",
            class_weight="balanced",
            max_iter=5000,
            random_state=seed,
        )
        return clf, {"clf__C": list(settings.c_grid)}
    if name == "logistic_l2":
        clf = LogisticRegression(l1_ratio=0.0, solver="liblinear", class_weight="balanced", max_iter=5000)
        return clf, {"clf__C": list(settings.c_grid)}
    if name == "random_forest":
        clf = RandomForestClassifier(
            n_estimators=settings.n_estimators, class_weight="balanced", random_state=seed, n_jobs=1
        )
        return clf, {"clf__max_depth": list(settings.tree_depth_grid)}
    if name == "gradient_boosting":
        # the histogram variant is the scikit-learn booster with class_weight; small leaves for small cohorts
        clf = HistGradientBoostingClassifier(
            max_iter=settings.n_estimators,
            learning_rate=0.05,
            min_samples_leaf=5,
            early_stopping=False,
            class_weight="balanced",
            random_state=seed,
        )
        return clf, {"clf__max_depth": list(settings.tree_depth_grid)}
    if name == "svm":
        # decision_function scores; probabilities come from the sigmoid calibration wrapped around the search
        clf = SVC(kernel="rbf", gamma="scale", class_weight="balanced", probability=False, random_state=seed)
        return clf, {"clf__C": list(settings.c_grid)}
    raise ModelError(f"model settings: expected a known classifier, got {name!r}")  # pragma: no cover


def build_pipeline(
    settings: ModelSettings, *, feature_selection: bool = True
) -> tuple[Pipeline, dict[str, list]]:
    """The preprocessing + classifier Pipeline and its hyperparameter grid (not yet wrapped)."""
    clf, grid = _classifier(settings)
    steps: list[tuple[str, BaseEstimator]] = [
        ("impute", SimpleImputer(strategy="median")),
        ("variance", VarianceThreshold(threshold=settings.variance_threshold)),
        ("scale", StandardScaler()),
        (
            "redundancy",
            CorrelationFilter(threshold=settings.correlation_threshold, method=settings.correlation_method),
        ),
    ]
    if feature_selection:
        steps.append(("select", SelectKBest(score_func=f_classif, k=settings.k_best_grid[0])))
        grid = {**grid, "select__k": list(settings.k_best_grid)}
    steps.append(("clf", clf))
    return Pipeline(steps), grid


def build_model(
    settings: ModelSettings, plan: CvPlan, *, feature_selection: bool = True
) -> CalibratedClassifierCV:
    """The tuned, calibrated HPD risk model (unfitted). ``plan`` comes from :func:`plan_folds`."""
    pipeline, grid = build_pipeline(settings, feature_selection=feature_selection)
    calib = StratifiedKFold(n_splits=plan.calibration_folds, shuffle=True, random_state=settings.seed + 1)
    if all(len(v) == 1 for v in grid.values()):
        # a one-point grid needs no search: skipping GridSearchCV saves inner_splits + 1 fits per fit
        pipeline.set_params(**{k: v[0] for k, v in grid.items()})
        return CalibratedClassifierCV(pipeline, method=settings.calibration, cv=calib, ensemble=False)
    inner = StratifiedKFold(n_splits=plan.inner_splits, shuffle=True, random_state=settings.seed)
    search = GridSearchCV(
        pipeline, grid, scoring="roc_auc", cv=inner, refit=True, n_jobs=1, error_score="raise"
    )
    return CalibratedClassifierCV(search, method=settings.calibration, cv=calib, ensemble=False)


def fitted_pipeline(model: CalibratedClassifierCV) -> Pipeline:
    """The single tuned Pipeline inside a fitted model (ensemble=False ⇒ exactly one)."""
    check_is_fitted(model, "calibrated_classifiers_")
    inner = model.calibrated_classifiers_[0].estimator
    return inner.best_estimator_ if isinstance(inner, GridSearchCV) else inner


def best_params(model: CalibratedClassifierCV) -> dict[str, object]:
    """Tuned hyperparameters (a one-point grid: its fixed values)."""
    inner = fitted_pipeline_or_search(model)
    if isinstance(inner, GridSearchCV):
        params = inner.best_params_
    else:
        keys = ("clf__C", "clf__max_depth", "select__k")
        params = {k: v for k, v in inner.get_params().items() if k in keys}
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}


def fitted_pipeline_or_search(model: CalibratedClassifierCV) -> BaseEstimator:
    check_is_fitted(model, "calibrated_classifiers_")
    return model.calibrated_classifiers_[0].estimator


def selected_features(model: CalibratedClassifierCV) -> list[str]:
    """Features that reach the classifier; for linear models only those with a non-zero coefficient."""
    pipe = fitted_pipeline(model)
    names = np.asarray(pipe[:-1].get_feature_names_out(), dtype=object)
    clf = pipe[-1]
    coef = getattr(clf, "coef_", None)
    if coef is not None and getattr(clf, "kernel", "linear") == "linear":
        names = names[np.abs(np.ravel(coef)) > 0]
    return [str(n) for n in names]
