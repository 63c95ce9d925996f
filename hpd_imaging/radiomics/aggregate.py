"""Patient-level aggregation of per-lesion radiomics features (one row per patient, for the model stage)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hpd_imaging.errors import ClinicalDataError

#: columns of the per-lesion feature table that are identifiers or provenance, not features
ID_COLUMNS = ("patient_id", "scan_date", "lesion_id", "region")
PROVENANCE_COLUMNS = ("pyradiomics_version", "mirp_version", "params_sha256", "image_sha256", "mask_sha256")
_FALLBACK_VOLUME = "original_shape_VoxelVolume"


def feature_columns(features: pd.DataFrame) -> list[str]:
    """Numeric feature columns of a per-lesion table (everything but identifiers and provenance)."""
    skip = set(ID_COLUMNS) | set(PROVENANCE_COLUMNS)
    return [c for c in features.columns if c not in skip and pd.api.types.is_numeric_dtype(features[c])]


def _wide(features: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per lesion: region ``lesion`` columns as they are, other regions prefixed ``<region>_``."""
    cols = feature_columns(features)
    regions = features["region"].unique() if "region" in features else ["lesion"]
    parts = []
    for region in regions:
        part = features[features["region"] == region] if "region" in features else features
        part = part[keys + cols].set_index(keys)
        if region != "lesion":
            part = part.add_prefix(f"{region}_")
        parts.append(part)
    return pd.concat(parts, axis=1).reset_index()


def _target_flags(lesions: pd.DataFrame) -> pd.Series:
    if "is_target" in lesions:
        return lesions["is_target"].astype(bool)
    if "role" in lesions:
        return lesions["role"].astype(str).str.lower().eq("target")
    if "is_new" in lesions:
        return ~lesions["is_new"].astype(bool)
    return pd.Series(True, index=lesions.index)


def aggregate_patient(features: pd.DataFrame, lesions: pd.DataFrame | None) -> pd.DataFrame:
    """Aggregate per-lesion features to one row per patient (per patient and scan date when ``features`` has a
    ``scan_date`` column, e.g. delta-radiomics).

    Rules (WHY: the model needs one row per patient, and published HPD radiomics uses the dominant lesion or
    all target lesions; we give both, plus the tumour burden):

    * Lesion volume is ``volume_mm3`` from ``lesions`` (lesions.csv of the measure stage), matched on
      ``patient_id`` + ``lesion_id`` (+ ``scan_date`` when both tables have it; otherwise ``lesions`` must
      hold one row per lesion, i.e. be filtered to the timepoint the features were computed on). Without
      ``lesions`` (``None``), ``original_shape_VoxelVolume`` of the lesion region is used and every lesion
      counts as a target.
    * Target lesions: ``is_target`` when present, else ``role == "target"``, else lesions not ``is_new``, else
      all.
    * ``largest_<feature>``: features of the target lesion with the largest volume among those that have
      features (a lesion whose extraction failed is skipped); ``largest_lesion_id`` names it.
    * ``vwmean_<feature>``: volume-weighted mean over target lesions with features, sum(v_i f_i) / sum(v_i),
      NaN values left out (weights renormalised over the lesions where the feature exists).
    * ``n_lesions`` and ``total_volume_mm3``: all lesions of the patient in ``lesions`` (every role);
      ``n_target_lesions``; ``n_lesions_with_features``.
    * Ring regions are aggregated the same way, their columns prefixed by the region
      (``largest_ring5mm_...``).
    * Patients present in ``lesions`` but without any feature row get a row with the counts and NaN features.
    """
    if "lesion_id" not in features or "patient_id" not in features:
        raise ClinicalDataError(f"radiomics features: expected columns patient_id and lesion_id, got "
                                f"{list(features.columns)[:6]}...")
    by_date = "scan_date" in features
    group_keys = ["patient_id", "scan_date"] if by_date else ["patient_id"]
    lesion_keys = [*group_keys, "lesion_id"]
    wide = _wide(features, lesion_keys)
    cols = [c for c in wide.columns if c not in lesion_keys]

    if lesions is None:
        if _FALLBACK_VOLUME not in wide:
            raise ClinicalDataError(f"radiomics features: without a lesions table expected column "
                                    f"{_FALLBACK_VOLUME} for the volume weights")
        les = wide[lesion_keys].copy()
        les["volume_mm3"] = wide[_FALLBACK_VOLUME].to_numpy()
        les["_target"] = True
    else:
        missing = [c for c in ("patient_id", "lesion_id", "volume_mm3") if c not in lesions]
        if missing:
            raise ClinicalDataError(f"lesions table: expected columns {missing}, got {list(lesions.columns)}")
        les = lesions.copy()
        les["_target"] = _target_flags(les).to_numpy()
        les["lesion_id"] = les["lesion_id"].astype(str)
        les["patient_id"] = les["patient_id"].astype(str)
        if by_date and "scan_date" in les:
            les["scan_date"] = pd.to_datetime(les["scan_date"]).dt.date
        elif by_date:
            raise ClinicalDataError(
                "lesions table: features are per scan date but lesions has no scan_date column")
        dup = les.duplicated(lesion_keys, keep=False)
        if dup.any():
            first = les.loc[dup, lesion_keys].iloc[0].tolist()
            raise ClinicalDataError(
                f"lesions table: expected one row per {lesion_keys}, got several for {first}; "
                f"filter it to the timepoint the radiomics features were computed on")
        les = les[[*lesion_keys, "volume_mm3", "_target"]]
    wide = wide.copy()
    wide["lesion_id"] = wide["lesion_id"].astype(str)
    wide["patient_id"] = wide["patient_id"].astype(str)
    if by_date:
        wide["scan_date"] = pd.to_datetime(wide["scan_date"]).dt.date
    merged = les.merge(wide, on=lesion_keys, how="outer", indicator=True)

    rows = []
    for key, group in merged.groupby(group_keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(group_keys, key, strict=True))
        known = group[group["_merge"] != "right_only"]
        row["n_lesions"] = int(len(known))
        row["n_target_lesions"] = int(known["_target"].astype(bool).sum())
        row["total_volume_mm3"] = float(known["volume_mm3"].sum())
        with_features = group[group["_merge"] != "left_only"]
        row["n_lesions_with_features"] = int(len(with_features))
        targets = group[(group["_merge"] == "both") & group["_target"].astype(bool)]
        targets = targets[np.isfinite(targets["volume_mm3"].astype(float))]
        if len(targets):
            targets = targets.sort_values(["volume_mm3", "lesion_id"], ascending=[False, True])
            largest = targets.iloc[0]
            row["largest_lesion_id"] = largest["lesion_id"]
            values = targets[cols].to_numpy(dtype=float)
            weights = targets["volume_mm3"].to_numpy(dtype=float)[:, None]
            present = np.isfinite(values)
            wsum = np.where(present, weights, 0.0).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                vw = np.where(present, values * weights, 0.0).sum(axis=0) / wsum
            for c, v, lv in zip(cols, vw, largest[cols].to_numpy(dtype=float), strict=True):
                row[f"largest_{c}"] = lv
                row[f"vwmean_{c}"] = v
        else:
            row["largest_lesion_id"] = None
            for c in cols:
                row[f"largest_{c}"] = np.nan
                row[f"vwmean_{c}"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)
