"""Save and load models with skops (never pickle), guarded by a sha256 and an explicit trusted-type list.

``save_model(model, "m.skops")`` writes ``m.skops`` and the card ``m.skops.card.json`` holding the file's
sha256. ``load_model`` refuses, with :class:`ModelError`:

1. a missing card, or a .skops file whose sha256 differs from the card's (tampered or swapped file);
2. any type that skops does not trust by default and that is not in :data:`TRUSTED_TYPES` — the list is
   explicit and reviewed, so a file cannot smuggle in an arbitrary callable;
3. an embedded header (definition, features, threshold) that disagrees with the card.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from hpd_imaging.errors import ModelError
from hpd_imaging.model.card import build_card
from hpd_imaging.model.training import TrainedModel

log = logging.getLogger(__name__)

PAYLOAD_FORMAT = "hpd-imaging-model/1"

# Types outside skops' default trust that our estimators legitimately contain. Every entry was reviewed: our
# own selector, scikit-learn estimators/splitters/scorers and numpy/scipy helpers used by them.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "hpd_imaging.model.estimator.CorrelationFilter",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.model_selection._search.GridSearchCV",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.metrics._scorer._Scorer",
        "sklearn.metrics._ranking.roc_auc_score",
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.SelectKBest",
        "sklearn.feature_selection._variance_threshold.VarianceThreshold",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.pipeline.Pipeline",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.svm._classes.SVC",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "builtins.slice",
        "collections.OrderedDict",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.float64",
        "numpy.int64",
        "numpy.random.mtrand.RandomState",
        "numpy.ma.core.MaskedArray",
        "numpy.ma.core.MaskedConstant",
        "scipy.sparse._csr.csr_matrix",
    }
)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path_for(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".card.json")


def save_model(
    model: TrainedModel,
    path: Path,
    *,
    synthetic: bool = False,
    intended_use: str | None = None,
    notes: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``path`` (.skops) and its card ``path.card.json``; returns both paths."""
    import skops.io as sio

    path = Path(path)
    if path.suffix != ".skops":
        raise ModelError(
            f"{path}: expected a file name ending in .skops, got {path.suffix or 'no suffix'!r}",
            path=str(path),
        )
    payload = {
        "format": PAYLOAD_FORMAT,
        "estimator": model.estimator,
        "definition": model.definition,
        "feature_names": list(model.feature_names),
        "clinical_columns": list(model.clinical_columns),
        "clinical_covariates": list(model.clinical_covariates),
        "threshold": float(model.threshold),
        "threshold_rule": model.threshold_rule,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(payload, path)
    untrusted = set(sio.get_untrusted_types(file=path)) - TRUSTED_TYPES
    if untrusted:  # fail at save time rather than ship a model nobody can load
        path.unlink()
        raise ModelError(
            f"{path}: model holds type(s) outside the trusted list: {sorted(untrusted)}; "
            "review them and add to hpd_imaging.model.persist.TRUSTED_TYPES",
            path=str(path),
        )
    card = build_card(
        model,
        model_file=path.name,
        sha256=file_sha256(path),
        synthetic=synthetic,
        intended_use=intended_use,
        notes=notes,
    )
    card_path = card_path_for(path)
    card_path.write_text(json.dumps(card, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    log.info("model saved to %s (card %s)", path, card_path)
    return path, card_path


def read_card(path: Path) -> dict[str, Any]:
    card_path = card_path_for(path)
    if not card_path.is_file():
        raise ModelError(
            f"{path}: expected its model card {card_path.name} next to it, got no such file; "
            "a model without its card (and sha256) is not loaded",
            path=str(path),
        )
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_path}: cannot read model card: {exc}", path=str(card_path)) from exc
    if not isinstance(card, dict) or "model_file" not in card:
        raise ModelError(f"{card_path}: expected a model card with a 'model_file' entry", path=str(card_path))
    _check_shape(card, _CARD_SHAPE, card_path, "model card")
    return card


# What load_model reads from the card and the payload, with the type each entry must have: a hand-edited or
# foreign card (``"model_file": "m.skops"``, ``"label": [...]``) or a payload without ``definition`` is a
# ModelError naming the file and the entry, never an AttributeError/KeyError from deep inside load_model.
_CARD_SHAPE: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "model_file": (dict, True),
    "model_file.sha256": (str, True),
    "label": (dict, False),
    "label.definition": (str, False),
    "features": (dict, False),
    "features.inputs": (list, False),
    "features.selected": (list, False),
    "threshold": (dict, False),
    "threshold.value": ((int, float), False),
    "training_data": (dict, False),
    "estimator": (dict, False),
    "estimator.best_params": (dict, False),
    "estimator.cv_plan": (dict, False),
    "settings": (dict, False),
    "metrics": ((dict, type(None)), False),
    "notes": (dict, False),
}
_PAYLOAD_SHAPE: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "estimator": (object, True),
    "definition": (str, True),
    "feature_names": (list, True),
    "clinical_columns": (list, True),
    "clinical_covariates": (list, True),
    "threshold": ((int, float), True),
    "threshold_rule": (str, True),
}


def _check_shape(
    obj: dict[str, Any], shape: dict[str, tuple[type | tuple[type, ...], bool]], where: Path, what: str
) -> None:
    """Every dotted ``key`` of ``shape`` present (when required) with the listed type, else ModelError."""
    for key, (kind, required) in shape.items():
        parent: Any = obj
        *head, last = key.split(".")
        for part in head:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or last not in parent:
            if required:
                raise ModelError(
                    f"{where}: {what} entry {key!r}: expected it to be present, got none; "
                    "re-save the model with hpd-imaging (save_model) or restore its original files",
                    path=str(where),
                )
            continue
        value = parent[last]
        if not isinstance(value, kind) or isinstance(value, bool):  # JSON true is no number
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:80] + "..."
            raise ModelError(
                f"{where}: {what} entry {key!r}: expected {names}, got {type(value).__name__} {shown}; "
                "re-save the model with hpd-imaging (save_model) or restore its original files",
                path=str(where),
            )


def load_model(path: Path) -> TrainedModel:
    """Load a model saved by :func:`save_model`, after the sha256 and trusted-type checks."""
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: expected a .skops model file, got no such file", path=str(path))
    card = read_card(path)
    expected = str(card["model_file"].get("sha256", ""))
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path}: sha256 mismatch: expected {expected} (from {card_path_for(path).name}), got "
            f"{actual}; the model file was modified or replaced, refusing to load",
            path=str(path),
        )
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any parse failure of a foreign file is a refusal
        raise ModelError(f"{path}: not a readable skops file: {exc}", path=str(path)) from exc
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise ModelError(
            f"{path}: untrusted type(s) in model file: {refused}; expected only types in "
            "hpd_imaging.model.persist.TRUSTED_TYPES, refusing to load",
            path=str(path),
        )
    try:
        payload = sio.load(path, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: cannot load skops file: {exc}", path=str(path)) from exc
    if not isinstance(payload, dict) or payload.get("format") != PAYLOAD_FORMAT:
        raise ModelError(
            f"{path}: expected an hpd-imaging model ({PAYLOAD_FORMAT}), got {type(payload).__name__}",
            path=str(path),
        )
    _check_shape(payload, _PAYLOAD_SHAPE, path, "model payload")
    for key, card_value in (
        ("definition", card.get("label", {}).get("definition")),
        ("feature_names", card.get("features", {}).get("inputs")),
        ("threshold", card.get("threshold", {}).get("value")),
    ):
        if payload[key] != card_value:
            raise ModelError(
                f"{path}: model and card disagree on {key}: model {payload[key]!r}, card {card_value!r}",
                path=str(path),
            )
    return TrainedModel(
        estimator=payload["estimator"],
        feature_names=list(payload["feature_names"]),
        clinical_columns=list(payload["clinical_columns"]),
        clinical_covariates=list(payload["clinical_covariates"]),
        definition=str(payload["definition"]),
        threshold=float(payload["threshold"]),
        threshold_rule=str(payload["threshold_rule"]),
        training_summary=card.get("training_data", {}),
        selected_features=list(card.get("features", {}).get("selected", [])),
        best_params=card.get("estimator", {}).get("best_params", {}),
        settings=card.get("settings", {}),
        cv_plan=card.get("estimator", {}).get("cv_plan", {}),
        metrics=card.get("metrics"),
        extra=card.get("notes", {}),
    )
