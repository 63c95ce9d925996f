"""Reading and validating the two input tables of the response stage (specs/hpd_kinetics.md section A).

This module and :mod:`hpd_imaging.course.adapter` are the only place where a table becomes typed
facts. Cells are converted one by one into Python values with row-level errors; a validated table is never
turned back into a DataFrame, because pandas would turn the ``None`` of a blank cell back into NaN as soon as
another row of the column holds a number (the bug that made one patient's labels depend on other patients'
rows). Missing is ``None`` here by construction.

Errors name the file, the row (1-based, counting the header as row 1 like a spreadsheet), the column and the
value, so that a user with a hand-made spreadsheet can fix it without reading code.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.domain import ClinicalFacts
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
MEASUREMENT_OPTIONAL = ("volume_mm3", "is_new", "is_target", "fragment_of")
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


def is_missing(value: Any) -> bool:
    """Blank cell: None, NaN (any float type), NaT, pd.NA or an empty / "NA" / "NaN" / "null" string."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):  # numpy.float64 is a float subclass
        return True
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and pd.isna(value):
        return True  # numpy scalars of other types (float32, datetime64('NaT'))
    return isinstance(value, str) and value.strip() in ("", "NA", "NaN", "nan", "None", "null")


_is_missing = is_missing


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


UNCERTAINTY_COLUMNS = (
    "longest_axial_diameter_sd_mm",
    "short_axis_sd_mm",
    "volume_sd_mm3",
    "pixel_spacing_mm",
    "slice_thickness_mm",
)


@dataclass(frozen=True)
class MeasurementRow:
    """One validated row of the measurement table (missing cells are None)."""

    row: int  # spreadsheet row number (header = 1)
    patient_id: str
    scan_date: dt.date
    lesion_id: str
    organ: str
    is_lymph_node: bool
    longest_axial_diameter_mm: float | None
    short_axis_mm: float | None
    volume_mm3: float | None
    is_new: bool | None
    is_target: bool | None
    fragment_of: str | None
    # measurement uncertainty (issue 17): SD columns, or the grid (pixel spacing, slice thickness)
    longest_axial_diameter_sd_mm: float | None = None
    short_axis_sd_mm: float | None = None
    volume_sd_mm3: float | None = None
    pixel_spacing_mm: float | None = None
    slice_thickness_mm: float | None = None
    uncertainty_source: str | None = None  # e.g. "grid" in lesions.csv written by the pipeline


def _text(value: Any) -> str | None:
    return None if is_missing(value) else str(value).strip() or None


def parse_measurements(df: pd.DataFrame, source: str = "measurements") -> list[MeasurementRow]:
    """Typed rows of a measurement table: dates, bools and floats converted, duplicates refused."""
    _require_columns(df, MEASUREMENT_REQUIRED, source)
    rows: list[MeasurementRow] = []
    seen: dict[tuple[str, dt.date, str], int] = {}
    for index, rec in enumerate(df.to_dict("records")):
        pid = _text(rec["patient_id"])
        lid = _text(rec["lesion_id"])
        if pid is None:
            raise ClinicalDataError(
                f"{_where(source, index, 'patient_id')}: expected a patient id, got an empty cell",
                path=source,
            )
        if lid is None:
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
        node = bool(parse_bool(rec["is_lymph_node"], source, index, "is_lymph_node"))
        fragment_of = _text(rec.get("fragment_of"))
        if fragment_of == lid:
            raise ClinicalDataError(
                f"{_where(source, index, 'fragment_of')}: expected the parent lesion's id, got the lesion's "
                f"own id {lid!r}",
                path=source,
            )
        rows.append(
            MeasurementRow(
                row=index + 2,
                patient_id=pid,
                scan_date=scan_date,
                lesion_id=lid,
                organ=_text(rec["organ"]) or "",
                is_lymph_node=node,
                longest_axial_diameter_mm=parse_float(
                    rec["longest_axial_diameter_mm"],
                    source,
                    index,
                    "longest_axial_diameter_mm",
                    required=not node,
                ),
                short_axis_mm=parse_float(
                    rec["short_axis_mm"], source, index, "short_axis_mm", required=node
                ),
                volume_mm3=parse_float(rec.get("volume_mm3"), source, index, "volume_mm3", required=False),
                is_new=parse_bool(rec.get("is_new"), source, index, "is_new"),
                is_target=parse_bool(rec.get("is_target"), source, index, "is_target"),
                fragment_of=fragment_of,
                **{
                    name: parse_float(rec.get(name), source, index, name, required=False)
                    for name in UNCERTAINTY_COLUMNS
                },
                uncertainty_source=_text(rec.get("uncertainty_source")),
            )
        )
    return rows


def parse_clinical(df: pd.DataFrame, source: str = "clinical") -> dict[str, ClinicalFacts]:
    """Clinical facts per patient, validated once for ``run`` and ``kinetics`` alike; covariates other than
    the ones used here pass through untouched (blank cells as None)."""
    _require_columns(df, CLINICAL_REQUIRED, source)
    known = {
        *CLINICAL_DATES,
        "patient_id",
        "death_from_progression",
        "ecog_baseline",
        "ecog_worst_first_2_months",
    }
    out: dict[str, ClinicalFacts] = {}
    seen: dict[str, int] = {}
    for index, rec in enumerate(df.to_dict("records")):
        pid = _text(rec["patient_id"])
        if pid is None:
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
        dates = {column: parse_date(rec.get(column), source, index, column) for column in CLINICAL_DATES}
        ecog: dict[str, int | None] = {}
        for column in ("ecog_baseline", "ecog_worst_first_2_months"):
            value = rec.get(column)
            number = parse_float(value, source, index, column, required=False)
            if number is not None and (number > 5 or number != int(number)):
                raise ClinicalDataError(
                    f"{_where(source, index, column)}: expected an ECOG grade 0-5, got {value!r}", path=source
                )
            ecog[column] = None if number is None else int(number)
        stop, start = dates["treatment_stop_date"], dates["ici_start_date"]
        if stop is not None and start is not None and stop < start:
            raise ClinicalDataError(
                f"{_where(source, index, 'treatment_stop_date')}: expected a date on or after ici_start_date "
                f"{start}, got {stop}",
                path=source,
            )
        covariates = tuple(
            (str(column), None if is_missing(value) else value)
            for column, value in rec.items()
            if column not in known
        )
        out[pid] = ClinicalFacts(
            ici_start_date=start,
            treatment_stop_date=stop,
            death_date=dates["death_date"],
            death_from_progression=parse_bool(
                rec.get("death_from_progression"), source, index, "death_from_progression"
            ),
            ecog_baseline=ecog["ecog_baseline"],
            ecog_worst_first_2_months=ecog["ecog_worst_first_2_months"],
            covariates=covariates,
        )
    return out
