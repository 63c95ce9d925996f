"""HPD risk model stage: features (+ clinical covariates) -> calibrated HPD risk, next to the kinetics label.

Public API (see each module's docstring for the WHY):

* :func:`train` / :func:`predict` / :class:`TrainedModel` (training.py)
* :func:`evaluate` (evaluate.py): nested repeated stratified CV, baselines, permutation check, output files
* :func:`save_model` / :func:`load_model` (persist.py): skops + sha256-checked JSON model card
* :func:`build_model` / :class:`CorrelationFilter` (estimator.py): the one Pipeline factory
* :func:`make_feature_cohort` (synthetic.py): fast feature-level synthetic cohort for tests and demos

Heavy imports (scikit-learn, skops) happen when this package is imported; the CLI imports it lazily.
"""

from hpd_imaging.model.estimator import CorrelationFilter, build_model, build_pipeline, plan_folds
from hpd_imaging.model.evaluate import EvaluationResult, evaluate, evaluate_table
from hpd_imaging.model.features import TrainingTable, build_training_table, read_table
from hpd_imaging.model.persist import TRUSTED_TYPES, load_model, save_model
from hpd_imaging.model.synthetic import FeatureCohort, make_feature_cohort
from hpd_imaging.model.training import TrainedModel, predict, train
from hpd_imaging.settings.model import ModelSettings

__all__ = [
    "TRUSTED_TYPES",
    "CorrelationFilter",
    "EvaluationResult",
    "FeatureCohort",
    "ModelSettings",
    "TrainedModel",
    "TrainingTable",
    "build_model",
    "build_pipeline",
    "build_training_table",
    "evaluate",
    "evaluate_table",
    "load_model",
    "make_feature_cohort",
    "plan_folds",
    "predict",
    "read_table",
    "save_model",
    "train",
]
