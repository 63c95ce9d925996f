"""clinical.csv: read and validate the per-patient clinical table (schema: specs/hpd_kinetics.md section A).

Required columns: ``patient_id`` and ``ici_start_date`` (first immune-checkpoint-inhibitor dose).
Known optional columns are type-checked: dates (every column ending in ``_date``, ISO ``YYYY-MM-DD``),
booleans (``death_from_progression``, ``ldh_above_uln``, ``prior_radiotherapy``, ...) and numbers
(``age``, ``ecog_*``, ``n_metastatic_sites``); any other column passes through as text.

Errors name the file, the line (the header is line 1), the column and the value, because a clinical table is
edited by hand and the user must find the cell. Dates become ``datetime.date`` (blank cells ``None``), in an
object column, following the house convention (ARCHITECTURE.md: dates are ``datetime.date``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from hpd_imaging.errors import ClinicalDataError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("patient_id", "ici_start_date")
BOOL_COLUMNS = ("death_from_progression", "ldh_above_uln", "prior_radiotherapy")
NUMERIC_COLUMNS = ("age", "ecog_baseline", "ecog_worst_first_2_months", "n_metastatic_sites")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _fail(path: Path, line: int, column: str, message: str) -> ClinicalDataError:
    return ClinicalDataError(f"{path.name} line {line}, column {column}: {message}", path=str(path))


def _parse_date(text: str) -> dt.date:
    # strict ISO (YYYY-MM-DD): ambiguous day/month orders must not be guessed
    if len(text) != 10:
        raise ValueError(text)
    return dt.date.fromisoformat(text)


def read_clinical(path: Path, known_patients: Iterable[str] | None = None) -> pd.DataFrame:
    """Read clinical.csv; raise :class:`ClinicalDataError` naming line, column and value on any bad cell.

    ``known_patients`` (e.g. the patients of the scanned archive): a row whose patient is not among them is
    refused, since it usually means a typo in an id that would silently drop that patient's labels.
    """
    path = Path(path)
    if not path.is_file():
        raise ClinicalDataError(f"{path}: expected a clinical CSV file, got nothing there", path=str(path))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the user's file, reported as such
        raise ClinicalDataError(f"{path.name}: cannot be read as CSV: {exc}", path=str(path)) from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ClinicalDataError(
            f"{path.name}: missing required column(s) {', '.join(missing)}; "
            f"found columns {list(table.columns)}",
            path=str(path),
        )
    duplicated_columns = table.columns[table.columns.duplicated()].tolist()
    if duplicated_columns:
        raise ClinicalDataError(f"{path.name}: duplicate column(s) {duplicated_columns}", path=str(path))
    table = table.apply(lambda col: col.str.strip())

    known = set(known_patients) if known_patients is not None else None
    first_line: dict[str, int] = {}
    for i, pid in enumerate(table["patient_id"]):
        line = i + 2
        if not pid:
            raise _fail(path, line, "patient_id", "expected a patient id, got an empty cell")
        if pid in first_line:
            raise _fail(
                path, line, "patient_id", f"duplicate patient '{pid}' (first on line {first_line[pid]})"
            )
        first_line[pid] = line
        if known is not None and pid not in known:
            raise _fail(
                path,
                line,
                "patient_id",
                f"unknown patient '{pid}': not in the archive ({len(known)} patients)",
            )

    out = pd.DataFrame({"patient_id": table["patient_id"]})
    for column in table.columns:
        if column == "patient_id":
            continue
        values = table[column].tolist()
        if column.endswith("_date"):
            parsed: list[object] = []
            for i, text in enumerate(values):
                if not text:
                    parsed.append(None)
                    continue
                try:
                    parsed.append(_parse_date(text))
                except ValueError:
                    raise _fail(
                        path, i + 2, column, f"expected an ISO date YYYY-MM-DD, got '{text}'"
                    ) from None
            out[column] = pd.Series(parsed, dtype=object)
        elif column in BOOL_COLUMNS or column.startswith("is_"):
            flags: list[object] = []
            for i, text in enumerate(values):
                low = text.lower()
                if not low:
                    flags.append(None)
                elif low in _TRUE | _FALSE:
                    flags.append(low in _TRUE)
                else:
                    raise _fail(path, i + 2, column, f"expected true/false, got '{text}'")
            out[column] = pd.Series(flags, dtype=object)
        elif column in NUMERIC_COLUMNS:
            numbers = pd.to_numeric(table[column].replace("", None), errors="coerce")
            bad = numbers.isna() & (table[column] != "")
            if bad.any():
                i = int(bad.to_numpy().nonzero()[0][0])
                raise _fail(path, i + 2, column, f"expected a number, got '{values[i]}'")
            out[column] = numbers
        else:
            out[column] = table[column]

    if "treatment_stop_date" in out.columns:
        for i, (start, stop) in enumerate(
            zip(out["ici_start_date"], out["treatment_stop_date"], strict=True)
        ):
            if start is not None and stop is not None and stop < start:
                raise _fail(
                    path,
                    i + 2,
                    "treatment_stop_date",
                    f"expected a date on or after ici_start_date {start}, got {stop}",
                )
    n_no_start = sum(v is None for v in out["ici_start_date"])
    if n_no_start:
        logger.warning(
            "%s: %d patient(s) without ici_start_date; their kinetics are not evaluable", path, n_no_start
        )
    return out
