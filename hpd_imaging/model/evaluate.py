"""Nested, repeated, stratified cross-validation of the HPD risk model, two baselines and a permutation check.

Outer loop: RepeatedStratifiedKFold (``outer_splits`` x ``outer_repeats``) estimates performance; everything
that learns (imputation, filters, feature selection, hyperparameter search on inner folds, calibration)
is refitted inside every outer training part (see estimator.py), so no test patient informs its own
prediction. The decision threshold of each outer fold is chosen on that fold's training part.

Baselines, evaluated on the SAME outer splits (so paired per-fold AUC differences are reported too):
``clinical_only`` (age, metastatic sites, LDH, ECOG, sex, as available) and ``volume_only`` (the tumour
volume column(s)), both an L2 logistic regression without feature selection.

Permutation check: the whole nested procedure re-run on shuffled labels; its AUC must sit at 0.5. An AUC
clearly above chance on permuted labels reveals leakage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import RepeatedStratifiedKFold

from hpd_imaging.model.card import json_clean, package_versions
from hpd_imaging.model.estimator import CvPlan, plan_folds, selected_features
from hpd_imaging.model.features import TrainingTable, find_volume_columns, table_from_settings
from hpd_imaging.model.metrics import corrected_t_ci, decision_curve, fold_metrics, summarise
from hpd_imaging.model.training import choose_threshold, fit_model, quiet_fit_warnings
from hpd_imaging.settings.model import ModelSettings

log = logging.getLogger(__name__)


@dataclass
class CvRun:
    """Raw results of one nested CV of one model."""

    name: str
    features: list[str]
    plan: CvPlan
    n_repeats: int
    folds: (
        pd.DataFrame
    )  # one row per outer fold: repeat, fold, n_train, n_test, n_test_hpd, threshold, metrics
    oof: pd.DataFrame  # one row per patient per repeat
    selected: list[list[str]]  # selected features of every outer fold


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    oof: pd.DataFrame
    fold_metrics: pd.DataFrame
    selection_frequency: pd.DataFrame
    decision_curve: pd.DataFrame
    patient_summary: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def _one_fold(
    X: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    settings: ModelSettings,
    plan: CvPlan,
    feature_selection: bool,
) -> tuple[np.ndarray, float, list[str]]:
    model = fit_model(X.iloc[train], y[train], settings, plan, feature_selection=feature_selection)
    threshold = choose_threshold(model, X.iloc[train], y[train], settings.threshold_rule)
    with quiet_fit_warnings():
        risk = model.predict_proba(X.iloc[test])[:, 1]
    return risk, threshold, selected_features(model)


def cross_validate(
    name: str,
    X: pd.DataFrame,
    y: np.ndarray,
    settings: ModelSettings,
    *,
    n_repeats: int,
    seed: int,
    feature_selection: bool = True,
) -> CvRun:
    """Nested repeated stratified CV of one model on one design matrix."""
    plan = plan_folds(y, settings, nested=True)
    outer = RepeatedStratifiedKFold(n_splits=plan.outer_splits, n_repeats=n_repeats, random_state=seed)
    splits = list(outer.split(X, y))
    results = Parallel(n_jobs=settings.n_jobs)(
        delayed(_one_fold)(X, y, tr, te, settings, plan, feature_selection) for tr, te in splits
    )
    fold_rows, oof_rows, selected = [], [], []
    ids = X.index.astype(str).to_numpy()
    for i, ((tr, te), (risk, thr, sel)) in enumerate(zip(splits, results, strict=True)):
        rep, fold = divmod(i, plan.outer_splits)
        fold_rows.append(
            {
                "model": name,
                "repeat": rep,
                "fold": fold,
                "n_train": len(tr),
                "n_test": len(te),
                "n_test_hpd": int(y[te].sum()),
                "threshold": thr,
                "n_selected": len(sel),
                **fold_metrics(y[te], risk, thr),
            }
        )
        oof_rows.append(
            pd.DataFrame(
                {
                    "model": name,
                    "patient_id": ids[te],
                    "repeat": rep,
                    "fold": fold,
                    "y_true": y[te],
                    "hpd_risk": risk,
                    "threshold": thr,
                    "predicted_hpd": (risk >= thr).astype(int),
                }
            )
        )
        selected.append(sel)
    log.info("%s: %d outer folds done (%d x %d)", name, len(splits), n_repeats, plan.outer_splits)
    return CvRun(
        name=name,
        features=list(X.columns),
        plan=plan,
        n_repeats=n_repeats,
        folds=pd.DataFrame(fold_rows),
        oof=pd.concat(oof_rows, ignore_index=True),
        selected=selected,
    )


def _summary(run: CvRun, settings: ModelSettings) -> dict[str, Any]:
    return summarise(
        run.folds,
        run.oof,
        method=settings.ci_method,
        level=settings.ci_level,
        n_boot=settings.n_bootstrap,
        seed=settings.seed,
    )


def _paired_auc_difference(main: CvRun, other: CvRun, settings: ModelSettings) -> dict[str, Any]:
    """Corrected-t CI of the per-fold AUC difference (main - baseline) on identical outer splits."""
    diff = main.folds["auc"].to_numpy() - other.folds["auc"].to_numpy()
    ratio = float((main.folds["n_test"] / main.folds["n_train"]).mean())
    res = corrected_t_ci(diff, ratio, settings.ci_level)
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in res.items()}


def _permutation_check(table: TrainingTable, settings: ModelSettings, observed_auc: float) -> dict[str, Any]:
    rng = np.random.default_rng(settings.seed + 7919)
    runs = []
    for i in range(settings.n_permutations):
        y_perm = rng.permutation(table.y)
        runs.append(
            cross_validate(
                "permuted",
                table.X,
                y_perm,
                settings,
                n_repeats=settings.permutation_repeats,
                seed=settings.seed + 1 + i,
            )
        )
    aucs = [float(np.nanmean(r.folds["auc"])) for r in runs]
    folds = pd.concat([r.folds for r in runs], ignore_index=True)
    ratio = float((folds["n_test"] / folds["n_train"]).mean())
    pooled = corrected_t_ci(folds["auc"].to_numpy(), ratio, settings.ci_level)
    n_ge = sum(a >= observed_auc for a in aucs)
    return {
        "n_permutations": settings.n_permutations,
        "outer_repeats_per_permutation": settings.permutation_repeats,
        "auc_per_permutation": aucs,
        "auc": {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in pooled.items()},
        "observed_auc": observed_auc,
        "p_value": (1 + n_ge) / (1 + len(aucs)),
        "note": "AUC of the full nested procedure on shuffled labels; a CI containing 0.5 is the expected "
        "result (no leakage); p_value = (1 + #permuted AUC >= observed) / (1 + #permutations)",
    }


def evaluate(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    definition: str | None = None,
    settings: ModelSettings | None = None,
    *,
    clinical: pd.DataFrame | None = None,
    out_dir: Path | None = None,
) -> EvaluationResult:
    """Nested CV of the model, baselines and permutation check; with ``out_dir`` writes every output file."""
    table, settings = table_from_settings(features, labels, definition, settings, clinical=clinical)
    return evaluate_table(table, settings, out_dir=out_dir)


def evaluate_table(
    table: TrainingTable, settings: ModelSettings, *, out_dir: Path | None = None
) -> EvaluationResult:
    main = cross_validate(
        "model", table.X, table.y, settings, n_repeats=settings.outer_repeats, seed=settings.seed
    )
    runs = [main]
    baselines: dict[str, Any] = {}
    if settings.baselines:
        base_settings = settings.model_copy(update={"classifier": "logistic_l2"})
        candidates: dict[str, tuple[pd.DataFrame | None, str]] = {
            "clinical_only": (
                table.clinical,
                "no clinical covariates (give --clinical or covariate columns in kinetics.csv)",
            ),
        }
        vol_cols = find_volume_columns(table.imaging_columns, settings.volume_columns)
        candidates["volume_only"] = (
            table.X[vol_cols] if vol_cols else None,
            f"no volume column among {settings.volume_columns} or named '*volume*'",
        )
        for name, (Xb, reason) in candidates.items():
            if Xb is None or Xb.shape[1] == 0:
                log.warning("baseline %s skipped: %s", name, reason)
                baselines[name] = {"skipped": reason}
                continue
            run = cross_validate(
                name,
                Xb,
                table.y,
                base_settings,
                n_repeats=settings.outer_repeats,
                seed=settings.seed,
                feature_selection=False,
            )
            runs.append(run)
            baselines[name] = {
                "features": list(Xb.columns),
                **_summary(run, settings),
                "auc_difference_model_minus_baseline": _paired_auc_difference(main, run, settings),
            }
    main_summary = _summary(main, settings)
    permutation = (
        _permutation_check(table, settings, float(main_summary["auc"]["estimate"] or np.nan))
        if settings.n_permutations > 0
        else {"skipped": "n_permutations = 0"}
    )

    n_folds = len(main.selected)
    counts: dict[str, int] = dict.fromkeys(main.features, 0)
    for sel in main.selected:
        for f in sel:
            counts[f] = counts.get(f, 0) + 1
    selection = pd.DataFrame({"feature": list(counts), "n_folds_selected": list(counts.values())})
    selection["frequency"] = selection["n_folds_selected"] / n_folds
    selection = selection.sort_values(["frequency", "feature"], ascending=[False, True], ignore_index=True)

    oof = pd.concat([r.oof for r in runs], ignore_index=True)
    folds = pd.concat([r.folds for r in runs], ignore_index=True)
    dca = decision_curve(oof, settings.decision_thresholds)
    oof["correct"] = (oof["predicted_hpd"] == oof["y_true"]).astype(int)
    patients = (
        oof.groupby(["model", "patient_id"], sort=False)
        .agg(
            y_true=("y_true", "first"),
            mean_hpd_risk=("hpd_risk", "mean"),
            fraction_correct=("correct", "mean"),
            n_predictions=("hpd_risk", "size"),
        )
        .reset_index()
    )
    oof = oof.drop(columns="correct")

    summary = table.summary()
    metrics: dict[str, Any] = {
        **main_summary,
        **summary,
        "classifier": settings.classifier,
        "features": {
            "n_inputs": len(main.features),
            "imaging": len(table.imaging_columns),
            "clinical": table.clinical_columns,
        },
        "threshold_rule": settings.threshold_rule,
        "cv": {
            "outer_splits": main.plan.outer_splits,
            "outer_repeats": settings.outer_repeats,
            "calibration_folds": main.plan.calibration_folds,
            "inner_splits": main.plan.inner_splits,
            "n_outer_folds": n_folds,
            "warnings": list(main.plan.warnings),
            "scheme": "nested: RepeatedStratifiedKFold outer; CalibratedClassifierCV(GridSearchCV(Pipeline)) "
            "refitted in every outer training part",
        },
        "ci_method": settings.ci_method,
        "ci_level": settings.ci_level,
        "baselines": baselines,
        "permutation": permutation,
        "settings": settings.model_dump(mode="json"),
        "versions": package_versions(),
    }
    result = EvaluationResult(
        metrics=metrics,
        oof=oof,
        fold_metrics=folds,
        selection_frequency=selection,
        decision_curve=dca,
        patient_summary=patients,
    )
    if out_dir is not None:
        result.files = write_outputs(result, Path(out_dir))
    return result


def write_outputs(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """metrics.json, oof_predictions.csv, patient_summary.csv, fold_metrics.csv,
    feature_selection_frequency.csv, decision_curve.csv and roc.png / pr.png / calibration.png in ``out_dir``.
    """
    from hpd_imaging.model.plots import write_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics.json": None,
        "oof_predictions.csv": result.oof,
        "patient_summary.csv": result.patient_summary,
        "fold_metrics.csv": result.fold_metrics,
        "feature_selection_frequency.csv": result.selection_frequency,
        "decision_curve.csv": result.decision_curve,
    }
    written = []
    for name, df in files.items():
        path = out_dir / name
        if df is None:
            path.write_text(
                json.dumps(json_clean(result.metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8"
            )
        else:
            df.to_csv(path, index=False)
        written.append(path)
    written += write_plots(result.oof, result.metrics, out_dir)
    log.info("evaluation outputs written to %s", out_dir)
    return written
