"""Reading and validating the two input tables of the response stage (specs/hpd_kinetics.md section A).

Errors name the file, the row (1-based, counting the header as row 1 like a spreadsheet), the column and the
value, so that a user with a hand-made spreadsheet can fix it without reading code.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.errors import ClinicalDataError

MEASUREMENT_REQUIRED = (
    "patient_id",
    "scan_date",
    "lesion_id",
    "organ",
    "is_lymph_node",
    "longest_axial_diameter_mm",
    "short_axis_mm",
)
MEASUREMENT_OPTIONAL = ("volume_mm3", "is_new", "is_target")
CLINICAL_REQUIRED = ("patient_id", "ici_start_date")
CLINICAL_DATES = ("ici_start_date", "treatment_stop_date", "death_date")

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV as strings (no type guessing; the validators convert with row-level errors)."""
    path = Path(path)
    if not path.exists():
        raise ClinicalDataError(f"{path}: file not found", path=str(path))
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ClinicalDataError(f"{path}: cannot parse as CSV: {exc}", path=str(path)) from exc


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in ("", "NA", "NaN", "nan", "None", "null")


def _where(source: str, index: int, column: str) -> str:
    return f"{source}: row {index + 2}, column {column!r}"


def parse_date(value: Any, source: str, index: int, column: str) -> dt.date | None:
    if _is_missing(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ClinicalDataError(
        f"{_where(source, index, column)}: expected an ISO date YYYY-MM-DD, got {value!r}", path=source
    )


def parse_bool(value: Any, source: str, index: int, column: str) -> bool | None:
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ClinicalDataError(
        f"{_where(source, index, column)}: expected true/false, got {value!r}", path=source
    )


def parse_float(value: Any, source: str, index: int, column: str, *, required: bool) -> float | None:
    if _is_missing(value):
        if required:
            raise ClinicalDataError(
                f"{_where(source, index, column)}: expected a number >= 0, got an empty cell", path=source
            )
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ClinicalDataError(
            f"{_where(source, index, column)}: expected a number >= 0, got {value!r}", path=source
        ) from None
    if not math.isfinite(number) or number < 0:
        raise ClinicalDataError(
            f"{_where(source, index, column)}: expected a finite number >= 0, got {value!r}", path=source
        )
    return number


def _require_columns(df: pd.DataFrame, required: tuple[str, ...], source: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ClinicalDataError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"got columns {', '.join(map(str, df.columns))}",
            path=source,
        )


def validate_measurements(df: pd.DataFrame, source: str = "measurements") -> pd.DataFrame:
    """Typed copy of a measurement table: dates, bools and floats converted, duplicates refused."""
    _require_columns(df, MEASUREMENT_REQUIRED, source)
    rows: list[dict[str, Any]] = []
    has_target = "is_target" in df.columns and any(not _is_missing(v) for v in df["is_target"])
    has_new = "is_new" in df.columns and any(not _is_missing(v) for v in df["is_new"])
    has_volume = "volume_mm3" in df.columns
    seen: dict[tuple[str, dt.date, str], int] = {}
    for index, rec in enumerate(df.to_dict("records")):
        pid = str(rec["patient_id"]).strip()
        lid = str(rec["lesion_id"]).strip()
        if _is_missing(rec["patient_id"]) or not pid:
            raise ClinicalDataError(
                f"{_where(source, index, 'patient_id')}: expected a patient id, got an empty cell",
                path=source,
            )
        if _is_missing(rec["lesion_id"]) or not lid:
            raise ClinicalDataError(
                f"{_where(source, index, 'lesion_id')}: expected a lesion id, got an empty cell", path=source
            )
        scan_date = parse_date(rec["scan_date"], source, index, "scan_date")
        if scan_date is None:
            raise ClinicalDataError(
                f"{_where(source, index, 'scan_date')}: expected an ISO date, got an empty cell", path=source
            )
        key = (pid, scan_date, lid)
        if key in seen:
            raise ClinicalDataError(
                f"{_where(source, index, 'lesion_id')}: duplicate measurement of lesion {lid!r} "
                f"of patient {pid!r} on {scan_date} (also on row {seen[key] + 2}); "
                "expected one row per lesion per scan",
                path=source,
            )
        seen[key] = index
        node = parse_bool(rec["is_lymph_node"], source, index, "is_lymph_node")
        out = {
            "patient_id": pid,
            "scan_date": scan_date,
            "lesion_id": lid,
            "organ": "" if _is_missing(rec["organ"]) else str(rec["organ"]).strip(),
            "is_lymph_node": bool(node),
            "longest_axial_diameter_mm": parse_float(
                rec["longest_axial_diameter_mm"],
                source,
                index,
                "longest_axial_diameter_mm",
                required=not node,
            ),
            "short_axis_mm": parse_float(
                rec["short_axis_mm"], source, index, "short_axis_mm", required=bool(node)
            ),
            "volume_mm3": parse_float(rec["volume_mm3"], source, index, "volume_mm3", required=False)
            if has_volume
            else None,
            "is_new": parse_bool(rec["is_new"], source, index, "is_new") if has_new else None,
            "is_target": parse_bool(rec["is_target"], source, index, "is_target") if has_target else None,
        }
        rows.append(out)
    result = pd.DataFrame(rows, columns=[*MEASUREMENT_REQUIRED, *MEASUREMENT_OPTIONAL])
    result.attrs["has_is_target"] = has_target
    result.attrs["has_is_new"] = has_new
    result.attrs["source"] = source
    return result


def validate_clinical(df: pd.DataFrame, source: str = "clinical") -> pd.DataFrame:
    """Typed copy of the clinical table; covariates other than the ones used here pass through untouched."""
    _require_columns(df, CLINICAL_REQUIRED, source)
    records = []
    seen: dict[str, int] = {}
    for index, rec in enumerate(df.to_dict("records")):
        pid = str(rec["patient_id"]).strip()
        if _is_missing(rec["patient_id"]) or not pid:
            raise ClinicalDataError(
                f"{_where(source, index, 'patient_id')}: expected a patient id, got an empty cell",
                path=source,
            )
        if pid in seen:
            raise ClinicalDataError(
                f"{_where(source, index, 'patient_id')}: duplicate patient {pid!r} (also on row "
                f"{seen[pid] + 2}); expected one row per patient",
                path=source,
            )
        seen[pid] = index
        out = dict(rec)
        out["patient_id"] = pid
        for column in CLINICAL_DATES:
            out[column] = parse_date(rec.get(column), source, index, column) if column in df.columns else None
        out["death_from_progression"] = (
            parse_bool(rec.get("death_from_progression"), source, index, "death_from_progression")
            if "death_from_progression" in df.columns
            else None
        )
        for column in ("ecog_baseline", "ecog_worst_first_2_months"):
            value = rec.get(column) if column in df.columns else None
            number = parse_float(value, source, index, column, required=False)
            if number is not None and (number > 5 or number != int(number)):
                raise ClinicalDataError(
                    f"{_where(source, index, column)}: expected an ECOG grade 0-5, got {value!r}", path=source
                )
            out[column] = None if number is None else int(number)
        if (
            out["treatment_stop_date"] is not None
            and out["ici_start_date"] is not None
            and out["treatment_stop_date"] < out["ici_start_date"]
        ):
            raise ClinicalDataError(
                f"{_where(source, index, 'treatment_stop_date')}: expected a date on or after ici_start_date "
                f"{out['ici_start_date']}, got {out['treatment_stop_date']}",
                path=source,
            )
        records.append(out)
    result = pd.DataFrame(records)
    result.attrs["source"] = source
    return result
