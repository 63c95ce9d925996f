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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


# --------------------------------------------------------------------------------------------------
# clinical dates against the scans (issue 16): a date that contradicts the archive is reported, never absorbed
# --------------------------------------------------------------------------------------------------

#: clinical dates that mark an event after which no scan of the living patient can exist
_END_DATES = ("death_date",)


@dataclass(frozen=True)
class ClinicalDateIssue:
    """One clinical date that contradicts the scans or the calendar: a row of errors.csv.

    ``severity`` "error": the date changes or withholds a result (labels computed from it are wrong or not
    evaluable); "warning": the date is suspicious but the results do not depend on it.
    """

    patient_id: str
    column: str
    value: str
    rule: str
    message: str
    severity: str = "error"


def check_clinical_dates(
    clinical: pd.DataFrame,
    scan_dates: Mapping[str, Sequence[dt.date]],
    *,
    today: dt.date | None = None,
    source: str = "clinical.csv",
) -> list[ClinicalDateIssue]:
    """Check every ``*_date`` of ``clinical`` (as returned by :func:`read_clinical`) against the calendar
    and against the patient's scan dates (``scan_dates``: patient_id -> CT dates of the archive).

    Rules (each one an issue naming the patient, the column and the value):

    * ``future_date`` (error): any clinical date after ``today`` (default: the date of the run) - a typo
      such as 2036 for 2026 that would otherwise become a survival time or an early-death reason;
    * ``ici_start_after_last_scan`` (error): the first ICI dose is after every scan, so no on-treatment
      evaluation scan exists and every HPD label of the patient is withheld (not evaluable);
    * ``ici_start_before_first_scan`` (warning): no scan on or before the ICI start, so no baseline;
    * ``death_before_scan`` (error): ``death_date`` before a scan of the patient - one of the two is wrong.
    """
    today = today or dt.date.today()
    issues: list[ClinicalDateIssue] = []
    date_columns = [c for c in clinical.columns if str(c).endswith("_date")]
    for _, row in clinical.iterrows():
        pid = str(row["patient_id"])
        scans = sorted(scan_dates.get(pid, ()))
        for column in date_columns:
            value = row[column]
            if not isinstance(value, dt.date):
                continue
            if value > today:
                issues.append(
                    ClinicalDateIssue(
                        pid,
                        column,
                        value.isoformat(),
                        "future_date",
                        f"{source}: patient {pid}, {column} {value.isoformat()}: expected a date on or "
                        f"before the day of the run ({today.isoformat()}), got a date in the future; "
                        "correct the date (results computed from it would be wrong)",
                    )
                )
        if not scans:
            continue
        start = row.get("ici_start_date")
        if isinstance(start, dt.date):
            if start > scans[-1]:
                issues.append(
                    ClinicalDateIssue(
                        pid,
                        "ici_start_date",
                        start.isoformat(),
                        "ici_start_after_last_scan",
                        f"{source}: patient {pid}, ici_start_date {start.isoformat()}: expected a date "
                        f"before the last scan ({scans[-1].isoformat()}), got a date after every scan: "
                        "there is no on-treatment evaluation scan, so the patient's HPD labels are not "
                        "evaluable; check "
                        "the date or add the follow-up scans",
                    )
                )
            elif start < scans[0]:
                issues.append(
                    ClinicalDateIssue(
                        pid,
                        "ici_start_date",
                        start.isoformat(),
                        "ici_start_before_first_scan",
                        f"{source}: patient {pid}, ici_start_date {start.isoformat()}: expected a baseline "
                        f"scan on or before it, got the first scan on {scans[0].isoformat()}: no baseline, "
                        "so kinetics are not evaluable",
                        severity="warning",
                    )
                )
        for column in _END_DATES:
            value = row.get(column)
            if isinstance(value, dt.date) and value < scans[-1]:
                later = [s for s in scans if s > value]
                issues.append(
                    ClinicalDateIssue(
                        pid,
                        column,
                        value.isoformat(),
                        "death_before_scan",
                        f"{source}: patient {pid}, {column} {value.isoformat()}: expected a date on or after "
                        f"the last scan ({scans[-1].isoformat()}), got a date before {len(later)} scan(s) "
                        f"(first {later[0].isoformat()}); one of the dates is wrong",
                    )
                )
    return issues
