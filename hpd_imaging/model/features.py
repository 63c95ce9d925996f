"""Table building for the model stage: read feature / label / clinical tables and join them per patient.

Joins are validated, never silent: patients present on one side only are listed (logged and returned in
:class:`TrainingTable`), ``not_evaluable`` labels are left out and counted, unknown label values are refused.
Messages name the table (``df.attrs["source"]``, set by :func:`read_table` to the file path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpd_imaging.errors import ModelError

if TYPE_CHECKING:
    from hpd_imaging.settings.model import ModelSettings

log = logging.getLogger(__name__)

LABEL_VALUES = ("hpd", "no_hpd", "not_evaluable")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


_IDENTIFIER_COLUMNS = frozenset({"scan_date", "largest_lesion_id", "lesion_id", "region"})

def _src(df: pd.DataFrame, default: str) -> str:
    return str(df.attrs.get("source", default))


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet table; ``attrs['source']`` remembers the path for error messages."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"{path}: expected an existing .csv or .parquet file, got no such file", path=str(path)
        )
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            df = pd.read_csv(path, dtype={"patient_id": str})
        else:
            raise ModelError(
                f"{path}: expected a .csv or .parquet table, got suffix {suffix!r}", path=str(path)
            )
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes one clear message
        raise ModelError(f"{path}: cannot read table: {exc}", path=str(path)) from exc
    df.attrs["source"] = str(path)
    return df


def _require_patient_id(df: pd.DataFrame, what: str) -> pd.DataFrame:
    src = _src(df, what)
    if "patient_id" not in df.columns:
        raise ModelError(
            f"{src}: expected a 'patient_id' column, got columns {list(df.columns)[:10]}", path=src
        )
    ids = df["patient_id"].astype(str)
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise ModelError(
            f"{src}: expected one row per patient, got duplicated patient_id {dup[:10]}", path=src
        )
    out = df.copy()
    out["patient_id"] = ids
    out.attrs["source"] = src
    return out.set_index("patient_id")


def numeric_features(features: pd.DataFrame) -> pd.DataFrame:
    """Feature table indexed by patient_id with only numeric columns (bools become 0/1).

    Non-numeric columns (e.g. pyradiomics ``diagnostics_*`` strings, file paths) cannot be model inputs;
    they are dropped and logged, never coerced.
    """
    src = _src(features, "features")
    df = _require_patient_id(features, "features")
    keep: dict[str, pd.Series] = {}
    dropped: list[str] = []
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            keep[str(col)] = s.astype(float)
        else:
            dropped.append(str(col))
    # identifier columns the radiomics aggregation always writes are expected, not worth a warning
    unexpected = [c for c in dropped if c not in _IDENTIFIER_COLUMNS]
    if dropped:
        (log.warning if unexpected else log.info)(
            "%s: %d non-numeric column(s) are not model inputs and were dropped: %s",
            src,
            len(dropped),
            (unexpected or dropped)[:10],
        )
    if not keep:
        raise ModelError(f"{src}: expected numeric feature columns besides patient_id, got none", path=src)
    out = pd.DataFrame(keep, index=df.index).replace([np.inf, -np.inf], np.nan)
    out.attrs["source"] = src
    return out


def _encode_covariate(s: pd.Series, name: str, src: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    text = s.astype("string").str.strip().str.lower()
    if name == "sex":
        mapping = {"m": 1.0, "male": 1.0, "f": 0.0, "female": 0.0}
        bad = sorted(set(text.dropna()) - set(mapping))
        if bad:
            raise ModelError(f"{src}: column 'sex': expected M/F (or male/female), got {bad[:5]}", path=src)
        return text.map(mapping).astype(float)
    if set(text.dropna()) <= _TRUE | _FALSE:
        return text.map(lambda v: np.nan if pd.isna(v) else float(v in _TRUE)).astype(float)
    converted = pd.to_numeric(s, errors="coerce")
    bad = sorted(set(s[converted.isna() & s.notna()].astype(str)))
    if bad:
        raise ModelError(
            f"{src}: covariate {name!r}: expected numbers or true/false, got {bad[:5]}", path=src
        )
    return converted.astype(float)


def clinical_covariates(clinical: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """Numeric clinical covariates indexed by patient_id; ``sex`` becomes ``sex_male`` (1 = M).

    Covariates listed in the settings but absent from the table are skipped with a warning (ECOG is often
    missing); an empty result is an error.
    """
    src = _src(clinical, "clinical")
    df = _require_patient_id(clinical, "clinical")
    present = [c for c in covariates if c in df.columns]
    missing = [c for c in covariates if c not in df.columns]
    if missing:
        log.warning("%s: clinical covariate(s) %s not found; used: %s", src, missing, present)
    if not present:
        raise ModelError(
            f"{src}: expected at least one clinical covariate of {covariates}, got none of them", path=src
        )
    out = pd.DataFrame(index=df.index)
    for c in present:
        out["sex_male" if c == "sex" else c] = _encode_covariate(df[c], c, src)
    out.attrs["source"] = src
    return out


def label_column(definition: str) -> str:
    return f"hpd_{definition}"


def read_labels(labels: pd.DataFrame, definition: str) -> pd.Series:
    """``hpd_<definition>`` indexed by patient_id, values checked against hpd/no_hpd/not_evaluable."""
    src = _src(labels, "labels")
    col = label_column(definition)
    df = _require_patient_id(labels, "labels")
    if col not in df.columns:
        avail = sorted(c for c in df.columns if c.startswith("hpd_") and not c.endswith("_reason"))
        raise ModelError(
            f"{src}: expected label column {col!r} (definition {definition!r}), got {avail}", path=src
        )
    values = df[col].astype("string").str.strip()
    bad = sorted(set(values[~values.isin(LABEL_VALUES)].fillna("<empty>")))
    if bad:
        raise ModelError(
            f"{src}: column {col!r}: expected one of {list(LABEL_VALUES)}, got {bad[:5]}", path=src
        )
    return values.astype(str).rename(col)


@dataclass
class TrainingTable:
    """Model inputs joined per patient, with everything needed to explain who is (not) in it."""

    X: pd.DataFrame  # indexed by patient_id; imaging features (+ clinical covariates when requested)
    y: np.ndarray  # 1 = hpd, 0 = no_hpd
    definition: str
    imaging_columns: list[str]
    clinical_columns: list[str]
    clinical: pd.DataFrame | None  # covariates of the same patients (for the clinical-only baseline)
    n_excluded_not_evaluable: int
    excluded_not_evaluable: list[str] = field(default_factory=list)
    patients_without_features: list[str] = field(default_factory=list)
    patients_without_labels: list[str] = field(default_factory=list)
    patients_without_clinical: list[str] = field(default_factory=list)

    @property
    def patient_ids(self) -> list[str]:
        return [str(p) for p in self.X.index]

    def summary(self) -> dict[str, object]:
        n = int(len(self.y))
        n_pos = int(self.y.sum())
        return {
            "n_patients": n,
            "n_hpd": n_pos,
            "n_no_hpd": n - n_pos,
            "prevalence": round(n_pos / n, 4) if n else None,
            "n_excluded_not_evaluable": self.n_excluded_not_evaluable,
            "n_patients_without_features": len(self.patients_without_features),
            "n_patients_without_labels": len(self.patients_without_labels),
            "n_patients_without_clinical": len(self.patients_without_clinical),
            "label_definition": self.definition,
            "label_column": label_column(self.definition),
        }


def build_training_table(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    definition: str,
    *,
    clinical: pd.DataFrame | None = None,
    covariates: list[str] | None = None,
    clinical_in_model: bool = True,
) -> TrainingTable:
    """Join features, labels (and clinical covariates) by patient_id.

    * label ``not_evaluable`` → left out, counted in ``n_excluded_not_evaluable``;
    * patients with a label but no feature row (or the reverse) → left out, listed, logged;
    * clinical covariates come from ``clinical`` or, when it is None, from covariate columns that kinetics.csv
      passed through; with ``clinical_in_model`` they are appended to the model inputs.
    """
    feats = numeric_features(features)
    y_text = read_labels(labels, definition)
    covariates = list(covariates or [])
    clin: pd.DataFrame | None = None
    if clinical is not None:
        clin = clinical_covariates(clinical, covariates)
    elif covariates and any(c in labels.columns for c in covariates):
        passthrough = labels[["patient_id", *[c for c in covariates if c in labels.columns]]].copy()
        passthrough.attrs["source"] = _src(labels, "labels")
        clin = clinical_covariates(passthrough, covariates)

    no_feat = sorted(set(y_text.index) - set(feats.index))
    no_label = sorted(set(feats.index) - set(y_text.index))
    if no_feat:
        log.warning(
            "%d labelled patient(s) have no feature row in %s and are left out: %s",
            len(no_feat),
            _src(features, "features"),
            no_feat[:10],
        )
    if no_label:
        log.warning(
            "%d patient(s) in %s have no label in %s and are left out: %s",
            len(no_label),
            _src(features, "features"),
            _src(labels, "labels"),
            no_label[:10],
        )
    common = [p for p in y_text.index if p in feats.index]
    if not common:
        raise ModelError(
            f"{_src(features, 'features')} and {_src(labels, 'labels')}: expected shared patient_id "
            f"values, got none in common ({len(feats)} feature rows, {len(y_text)} label rows)"
        )
    ne = [p for p in common if y_text[p] == "not_evaluable"]
    keep = [p for p in common if y_text[p] != "not_evaluable"]
    if ne:
        log.info("%d patient(s) with label not_evaluable for %s are left out", len(ne), definition)
    no_clin: list[str] = []
    if clin is not None:
        no_clin = sorted(set(keep) - set(clin.index))
        if no_clin:
            log.warning(
                "%d patient(s) have no clinical row; their covariates are imputed: %s",
                len(no_clin),
                no_clin[:10],
            )
        clin = clin.reindex(keep)
    X = feats.loc[keep]
    imaging_cols = list(X.columns)
    clinical_cols: list[str] = []
    if clin is not None and clinical_in_model:
        clash = sorted(set(clin.columns) & set(X.columns))
        if clash:
            raise ModelError(
                f"{_src(features, 'features')}: feature column(s) {clash} clash with clinical "
                "covariates of the same name; rename one side"
            )
        clinical_cols = list(clin.columns)
        X = pd.concat([X, clin], axis=1)
    y = (y_text.loc[keep] == "hpd").to_numpy(dtype=int)
    if len(np.unique(y)) < 2:
        raise ModelError(
            f"{_src(labels, 'labels')}: column {label_column(definition)!r}: expected both 'hpd' and "
            f"'no_hpd' among evaluable patients, got only {sorted(set(y_text.loc[keep]))}"
        )
    X.index.name = "patient_id"
    return TrainingTable(
        X=X,
        y=y,
        definition=definition,
        imaging_columns=imaging_cols,
        clinical_columns=clinical_cols,
        clinical=clin,
        n_excluded_not_evaluable=len(ne),
        excluded_not_evaluable=ne,
        patients_without_features=no_feat,
        patients_without_labels=no_label,
        patients_without_clinical=no_clin,
    )


def find_volume_columns(columns: list[str], preferred: list[str]) -> list[str]:
    """Columns for the volume-only baseline: the configured names present, else any column naming a volume."""
    found = [c for c in preferred if c in columns]
    if found:
        return found
    return [c for c in columns if "volume" in c.lower()][:2]


def table_from_settings(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    definition: str | None,
    settings: ModelSettings | None,
    *,
    clinical: pd.DataFrame | None = None,
) -> tuple[TrainingTable, ModelSettings]:
    """The training table for ``definition`` (default: the settings' one) with the settings' covariate rules;
    one place, so that train and evaluate cannot drift apart in what they feed the model."""
    from hpd_imaging.settings.model import ModelSettings

    settings = settings or ModelSettings()
    table = build_training_table(
        features,
        labels,
        definition or settings.definition,
        clinical=clinical,
        covariates=settings.clinical_covariates,
        clinical_in_model=settings.clinical_in_model,
    )
    return table, settings
