"""What the HTML report is made from, and the tidy tables derived from it.

The report reads only tables (the CSVs the pipeline writes) plus small pre-cut image snapshots, so it can be
rendered again from an output folder without touching the images, and a test can build its inputs by hand.

Columns relied on (extra columns are ignored; "optional" columns enrich the report when present):

``lesions`` (lesions.csv, one row per lesion per scan)
    required: ``patient_id``, ``scan_date``, ``lesion_id``, ``longest_axial_diameter_mm``, ``short_axis_mm``;
    optional: ``organ``, ``is_lymph_node``, ``is_new``, ``volume_mm3``, ``is_target``.
``kinetics`` (kinetics.csv, one row per patient; specs/hpd_kinetics.md section A)
    required: ``patient_id`` and at least one label column ``hpd_<key>`` (values ``hpd``/``no_hpd``/
    ``not_evaluable``); optional: ``hpd_<key>_reason``, ``ici_start_date``, ``pre_baseline_date``,
    ``baseline_date``, ``first_eval_date``, ``sld_pre_baseline_mm``, ``sld_baseline_mm``,
    ``sld_first_eval_mm``,
    ``volume_pre_baseline_mm3``, ``volume_baseline_mm3``, ``volume_first_eval_mm3``,
    ``tgr_ref_pct_per_month``, ``tgr_exp_pct_per_month``, ``tgk_ref_mm_per_month``, ``tgk_exp_mm_per_month``,
    ``vol_tgr_ref_pct_per_month``, ``vol_tgr_exp_pct_per_month``, ``recist_first_eval``.
``response`` (response.csv, one row per patient per scan)
    required: ``patient_id``, ``scan_date``, ``sld_mm`` (sum of the baseline target diameters);
    optional: ``volume_mm3`` (sum of target volumes), ``role``, ``recist_response``,
    ``sld_change_from_baseline_pct`` (computed from ``sld_mm`` at the ``baseline_date`` when absent).
``concordance`` (concordance.csv): ``definition_a``, ``definition_b``, ``jaccard``.
``predictions`` (predictions.csv, optional): ``patient_id``, ``hpd_risk``; optional ``predicted_hpd``,
    ``definition``, ``threshold``.
``clinical`` (clinical.csv): ``patient_id``; optional ``ici_start_date`` (used when kinetics lacks it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hpd_imaging.domain import CtImage, LesionMask, LesionMeasurement
from hpd_imaging.errors import ClinicalDataError, MeasurementError

LABEL_PREFIX = "hpd_"
LABEL_VALUES = ("hpd", "no_hpd", "not_evaluable")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "lesions": ("patient_id", "scan_date", "lesion_id", "longest_axial_diameter_mm", "short_axis_mm"),
    "kinetics": ("patient_id",),
    "response": ("patient_id", "scan_date", "sld_mm"),
    "concordance": ("definition_a", "definition_b", "jaccard"),
    "predictions": ("patient_id", "hpd_risk"),
    "clinical": ("patient_id",),
}


@dataclass(frozen=True, eq=False)
class LesionSnapshot:
    """A small axial crop of one lesion at one scan, with its outline and measured axes.

    ``hu`` and ``mask`` are 2D arrays ``[row, column]`` of the crop; axis end points are ``(x, y)`` =
    ``(column, row)`` in the crop's pixel-centre coordinates (pixel (0, 0) centre at (0, 0));
    ``pixel_spacing_mm`` is ``(row spacing, column spacing)`` so the picture keeps the physical aspect.
    """

    patient_id: str
    lesion_id: str
    scan_date: dt.date
    hu: np.ndarray
    mask: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    long_axis_xy: tuple[tuple[float, float], tuple[float, float]] | None = None
    short_axis_xy: tuple[tuple[float, float], tuple[float, float]] | None = None
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    slice_index: int | None = None

    def __post_init__(self) -> None:
        if self.hu.ndim != 2 or self.hu.shape != self.mask.shape:
            raise MeasurementError(
                f"snapshot {self.patient_id}/{self.lesion_id}/{self.scan_date}: expected 2D hu and mask "
                "of equal "
                f"shape, got {self.hu.shape} and {self.mask.shape}"
            )


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """Everything ``write_report`` needs; see the module docstring for the columns used."""

    lesions: pd.DataFrame
    kinetics: pd.DataFrame
    response: pd.DataFrame
    concordance: pd.DataFrame
    predictions: pd.DataFrame | None = None
    clinical: pd.DataFrame | None = None
    snapshots: list[LesionSnapshot] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    title: str = "hpd-imaging report"
    primary_definition: str | None = None  # colours spider/waterfall; default: the first label column

    def __post_init__(self) -> None:
        for name, required in REQUIRED_COLUMNS.items():
            df = getattr(self, name)
            if df is None:
                continue
            if not isinstance(df, pd.DataFrame):
                raise ClinicalDataError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
            missing = [c for c in required if c not in df.columns]
            if missing:
                raise ClinicalDataError(
                    f"{name}.csv: expected columns {list(required)}, got {list(map(str, df.columns))} "
                    f"(missing {missing})"
                )
        if not self.definitions:
            raise ClinicalDataError(
                f"kinetics.csv: expected at least one label column '{LABEL_PREFIX}<definition>', got "
                f"{list(map(str, self.kinetics.columns))}"
            )
        if self.primary_definition is not None and self.primary_definition not in self.definitions:
            raise ClinicalDataError(
                f"primary_definition: expected one of {self.definitions}, got {self.primary_definition!r}"
            )

    @property
    def definitions(self) -> list[str]:
        """Definition keys with a label column in kinetics (``hpd_<key>``, not ``..._reason``)."""
        keys = []
        for col in self.kinetics.columns:
            col = str(col)
            # not the reason, nor the stability columns of issue 17 (hpd_<key>_probability / _stable)
            if col.startswith(LABEL_PREFIX) and not col.endswith(("_reason", "_probability", "_stable")):
                values = set(self.kinetics[col].dropna().astype(str))
                if values <= set(LABEL_VALUES):
                    keys.append(col[len(LABEL_PREFIX) :])
        return keys

    @property
    def primary(self) -> str:
        return self.primary_definition or self.definitions[0]

    @property
    def patients(self) -> list[str]:
        ids = set(self.kinetics["patient_id"].astype(str)) | set(self.response["patient_id"].astype(str))
        ids |= set(self.lesions["patient_id"].astype(str))
        return sorted(ids)


# --------------------------------------------------------------------------------------------------
# Derived tables
# --------------------------------------------------------------------------------------------------


def to_date(value: Any) -> dt.date | None:
    """A date from an ISO string, Timestamp or date; None for missing values."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts.date()


def to_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def label_summary(inputs: ReportInputs) -> pd.DataFrame:
    """One row per definition: counts of each label and prevalence = hpd / (hpd + no_hpd)."""
    rows = []
    for key in inputs.definitions:
        col = inputs.kinetics[LABEL_PREFIX + key].astype("string")
        n = {v: int((col == v).sum()) for v in LABEL_VALUES}
        evaluable = n["hpd"] + n["no_hpd"]
        rows.append(
            {
                "definition": key,
                "n_hpd": n["hpd"],
                "n_no_hpd": n["no_hpd"],
                "n_not_evaluable": n["not_evaluable"],
                "prevalence_pct": 100.0 * n["hpd"] / evaluable if evaluable else None,
            }
        )
    return pd.DataFrame(rows)


def patient_labels(inputs: ReportInputs, patient_id: str) -> list[dict[str, str]]:
    """Labels of one patient under every definition, with the reason when kinetics gives one."""
    rows = inputs.kinetics[inputs.kinetics["patient_id"].astype(str) == patient_id]
    out = []
    for key in inputs.definitions:
        label = str(rows[LABEL_PREFIX + key].iloc[0]) if len(rows) else "not_evaluable"
        reason_col = f"{LABEL_PREFIX}{key}_reason"
        reason = str(rows[reason_col].iloc[0]) if len(rows) and reason_col in rows.columns else ""
        out.append({"definition": key, "label": label, "reason": "" if reason == "nan" else reason})
    return out


def kinetics_row(inputs: ReportInputs, patient_id: str) -> dict[str, Any]:
    rows = inputs.kinetics[inputs.kinetics["patient_id"].astype(str) == patient_id]
    return rows.iloc[0].to_dict() if len(rows) else {}


def ici_start(inputs: ReportInputs, patient_id: str) -> dt.date | None:
    date = to_date(kinetics_row(inputs, patient_id).get("ici_start_date"))
    if date is None and inputs.clinical is not None and "ici_start_date" in inputs.clinical.columns:
        rows = inputs.clinical[inputs.clinical["patient_id"].astype(str) == patient_id]
        date = to_date(rows["ici_start_date"].iloc[0]) if len(rows) else None
    return date


def burden_series(inputs: ReportInputs, patient_id: str) -> pd.DataFrame:
    """The patient's tumour burden over time: scan_date, sld_mm, volume_mm3 (NaN when unknown), sorted."""
    df = inputs.response[inputs.response["patient_id"].astype(str) == patient_id]
    out = pd.DataFrame(
        {
            "scan_date": [to_date(v) for v in df["scan_date"]],
            "sld_mm": [to_float(v) for v in df["sld_mm"]],
            "volume_mm3": [to_float(v) for v in df["volume_mm3"]] if "volume_mm3" in df.columns else np.nan,
        }
    )
    out = out.dropna(subset=["scan_date"]).sort_values("scan_date").reset_index(drop=True)
    return out.astype({"sld_mm": float, "volume_mm3": float})


def change_from_baseline(inputs: ReportInputs, patient_id: str) -> pd.DataFrame:
    """Days from baseline and % change of the target sum, for the spider plot (on/after baseline only)."""
    series = burden_series(inputs, patient_id)
    baseline = to_date(kinetics_row(inputs, patient_id).get("baseline_date"))
    if baseline is None and len(series):
        df = inputs.response[inputs.response["patient_id"].astype(str) == patient_id]
        if "role" in df.columns:
            dates = [to_date(d) for d, r in zip(df["scan_date"], df["role"], strict=True) if r == "baseline"]
            baseline = dates[0] if dates else None
    if baseline is None:
        return pd.DataFrame(columns=["days", "pct"])
    base = series[series["scan_date"] == baseline]["sld_mm"]
    if not len(base) or not np.isfinite(base.iloc[0]) or base.iloc[0] <= 0:
        return pd.DataFrame(columns=["days", "pct"])
    after = series[series["scan_date"] >= baseline]
    return pd.DataFrame(
        {
            "days": [(d - baseline).days for d in after["scan_date"]],
            "pct": 100.0 * (after["sld_mm"].to_numpy() / base.iloc[0] - 1.0),
        }
    ).dropna()


def first_eval_change(inputs: ReportInputs) -> pd.DataFrame:
    """patient_id, % change of the target sum from baseline to first evaluation (waterfall), label."""
    rows = []
    for _, rec in inputs.kinetics.iterrows():
        base, first = to_float(rec.get("sld_baseline_mm")), to_float(rec.get("sld_first_eval_mm"))
        if base is None or first is None or base <= 0:
            change = change_from_baseline(inputs, str(rec["patient_id"]))
            later = change[change["days"] > 0]
            if not len(later):
                continue
            pct = float(later["pct"].iloc[0])
        else:
            pct = 100.0 * (first / base - 1.0)
        rows.append(
            {
                "patient_id": str(rec["patient_id"]),
                "pct": pct,
                "label": str(rec[LABEL_PREFIX + inputs.primary]),
            }
        )
    return pd.DataFrame(rows, columns=["patient_id", "pct", "label"]).sort_values("pct", ascending=False)


def risk_of(inputs: ReportInputs, patient_id: str) -> dict[str, Any] | None:
    if inputs.predictions is None:
        return None
    rows = inputs.predictions[inputs.predictions["patient_id"].astype(str) == patient_id]
    return rows.iloc[0].to_dict() if len(rows) else None


# --------------------------------------------------------------------------------------------------
# Snapshot cutting (for the pipeline: from the CT, the mask and the measurement of one lesion)
# --------------------------------------------------------------------------------------------------


def make_snapshot(
    ct: CtImage,
    mask: LesionMask,
    measurement: LesionMeasurement,
    *,
    patient_id: str = "",
    margin_mm: float = 15.0,
) -> LesionSnapshot:
    """Cut the key axial slice around a lesion and express its axes in crop pixel coordinates.

    The key slice is ``measurement.long_axis_slice_index`` (else the slice with the most lesion voxels); the
    axis end points (LPS mm) are mapped with the CT geometry, so what is drawn is what was measured.
    """
    if not mask.geometry.is_close(ct.geometry):
        raise MeasurementError(
            f"{mask.source_path or mask.label}: expected the mask on the CT grid, got "
            f"{ct.geometry.describe_difference(mask.geometry)}"
        )
    if mask.is_empty:
        raise MeasurementError(
            f"lesion {measurement.lesion_id}: expected a non-empty mask for a snapshot, got 0 voxels"
        )
    k0, j0, i0 = mask.offset
    k = measurement.long_axis_slice_index
    if k is None:
        k = k0 + int(np.argmax(mask.crop.sum(axis=(1, 2))))
    sx, sy = ct.geometry.spacing_mm[0], ct.geometry.spacing_mm[1]
    # the key slice of the crop (all-False outside the crop's slices), indices shifted to the grid
    in_crop = 0 <= k - k0 < mask.crop.shape[0] and bool(mask.crop[k - k0].any())
    rows, cols = np.nonzero(mask.crop[k - k0]) if in_crop else np.nonzero(mask.crop.any(axis=0))
    rows, cols = rows + j0, cols + i0
    r0 = max(int(rows.min() - margin_mm / sy), 0)
    r1 = min(int(rows.max() + margin_mm / sy) + 1, ct.geometry.shape[1])
    c0 = max(int(cols.min() - margin_mm / sx), 0)
    c1 = min(int(cols.max() + margin_mm / sx) + 1, ct.geometry.shape[2])

    def to_xy(endpoints: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
        if endpoints is None:
            return None
        ijk = ct.geometry.lps_to_index(np.asarray(endpoints, dtype=float))
        return ((ijk[0, 0] - c0, ijk[0, 1] - r0), (ijk[1, 0] - c0, ijk[1, 1] - r0))

    return LesionSnapshot(
        patient_id=patient_id or measurement.patient_id,
        lesion_id=measurement.lesion_id,
        scan_date=measurement.scan_date or dt.date.min,
        # only the key slice's window: a lazily loaded CT decodes this one slice (issue 21)
        hu=np.asarray(ct.voxels((slice(k, k + 1), slice(r0, r1), slice(c0, c1)))[0], dtype=np.float32),
        mask=_window(mask, k, r0, r1, c0, c1),
        pixel_spacing_mm=(sy, sx),
        long_axis_xy=to_xy(measurement.long_axis_endpoints_mm),
        short_axis_xy=to_xy(measurement.short_axis_endpoints_mm),
        long_axis_mm=measurement.longest_axial_diameter_mm,
        short_axis_mm=measurement.short_axis_mm,
        slice_index=int(k),
    )


def _window(mask: LesionMask, k: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Rows r0:r1, columns c0:c1 of slice ``k`` of the whole-grid mask, cut from the crop."""
    out = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    k0, j0, i0 = mask.offset
    n_k, n_j, n_i = mask.crop.shape
    if not 0 <= k - k0 < n_k:
        return out
    a, b = max(r0, j0), min(r1, j0 + n_j)
    c, d = max(c0, i0), min(c1, i0 + n_i)
    if a < b and c < d:
        out[a - r0 : b - r0, c - c0 : d - c0] = mask.crop[k - k0, a - j0 : b - j0, c - i0 : d - i0]
    return out
