"""Follow-up of each patient from clinical.csv: the dates survival is counted from and to, checked for sense.

Columns read (clinical.csv, specs/hpd_kinetics.md section A plus issue 19): ``ici_start_date`` (required),
``death_date``, ``last_followup_date`` (the last date the patient was known alive: censoring), and optional
``progression_date`` (for progression-free survival). Impossible dates are refused with the patient, the
column and the value, because a survival estimate built on them would be silently wrong:

* death before the first ICI dose, or progression before it;
* death, or last follow-up, before the patient's last scan (a patient cannot be scanned after death, and a
  follow-up date before the last scan contradicts the scan itself);
* last follow-up after death (nobody is followed alive after death), progression after death.

A patient with neither a death date nor a last follow-up date has unknown survival: not an error (a registry
may lag), but the patient is left out of the survival analysis and counted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.settings.base import MONTH_DAYS

__all__ = ["MONTH_DAYS", "FollowUp", "followups", "last_scan_dates", "to_date"]

logger = logging.getLogger(__name__)


def to_date(value: object) -> dt.date | None:
    """A date cell (``datetime.date``, ISO text, pandas Timestamp) as ``datetime.date``; blank is None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, float) or (isinstance(value, str) and value.strip() in ("", "nan", "NaT", "None")):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date()
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class FollowUp:
    """One patient's survival facts; valid by construction (the checks of the module docstring)."""

    patient_id: str
    ici_start_date: dt.date
    death_date: dt.date | None = None
    last_followup_date: dt.date | None = None
    progression_date: dt.date | None = None
    last_scan_date: dt.date | None = None
    source: str = "clinical.csv"

    def __post_init__(self) -> None:
        def fail(column: str, value: dt.date, rule: str) -> ClinicalDataError:
            return ClinicalDataError(
                f"{self.source}: patient {self.patient_id}, column {column}: expected {rule}, got {value}",
                path=self.source,
            )

        start, death, fu, prog, scan = (
            self.ici_start_date,
            self.death_date,
            self.last_followup_date,
            self.progression_date,
            self.last_scan_date,
        )
        if death is not None and death < start:
            raise fail("death_date", death, f"a date on or after ici_start_date {start}")
        if prog is not None and prog < start:
            raise fail("progression_date", prog, f"a date on or after ici_start_date {start}")
        if fu is not None and fu < start:
            raise fail("last_followup_date", fu, f"a date on or after ici_start_date {start}")
        if scan is not None and death is not None and death < scan:
            raise fail("death_date", death, f"a date on or after the last scan {scan}")
        if scan is not None and fu is not None and fu < scan:
            raise fail("last_followup_date", fu, f"a date on or after the last scan {scan}")
        if death is not None and fu is not None and fu > death:
            raise fail("last_followup_date", fu, f"a date on or before death_date {death}")
        if death is not None and prog is not None and prog > death:
            raise fail("progression_date", prog, f"a date on or before death_date {death}")

    @property
    def os_end(self) -> tuple[dt.date, bool] | None:
        """(end date, death observed) for overall survival; None when survival is unknown."""
        if self.death_date is not None:
            return self.death_date, True
        if self.last_followup_date is not None:
            return self.last_followup_date, False
        return None

    @property
    def pfs_end(self) -> tuple[dt.date, bool] | None:
        """(end date, progression or death observed) for progression-free survival from the ICI start: the
        earlier event."""
        return self.pfs_end_after(None)

    def pfs_end_after(self, landmark: dt.date | None) -> tuple[dt.date, bool] | None:
        """(end date, event) for progression-free survival counted from ``landmark``: a progression counts
        only when strictly after it. At the first-evaluation landmark a progression on (or before) that
        date is what labels a patient HPD; counting it would make every HPD patient an event at time 0 and
        PFS a restatement of the label. clinical.csv holds the first progression only, so such a patient is
        followed on to death (event) or last follow-up (censored)."""
        progression = self.progression_date
        if landmark is not None and progression is not None and progression <= landmark:
            progression = None
        events = [d for d in (progression, self.death_date) if d is not None]
        if events:
            return min(events), True
        if self.last_followup_date is not None:
            return self.last_followup_date, False
        return None


def followups(
    clinical: pd.DataFrame,
    last_scan_dates: Mapping[str, dt.date | None] | None = None,
    *,
    source: str = "clinical.csv",
    on_error: Callable[[str, ClinicalDataError], None] | None = None,
) -> dict[str, FollowUp]:
    """One :class:`FollowUp` per clinical.csv row with an ICI start date.

    ``last_scan_dates``: the latest scan of each patient (from the measurement table, or the kinetics table's
    first evaluation when nothing later is known), for the scan-order checks. Impossible dates raise
    :class:`ClinicalDataError`, unless ``on_error(patient_id, error)`` is given: then that patient is left out
    and the others go on (inside ``run``, one bad row is one row of errors.csv).
    """
    if "patient_id" not in clinical.columns or "ici_start_date" not in clinical.columns:
        raise ClinicalDataError(
            f"{source}: expected columns patient_id and ici_start_date, got {list(clinical.columns)}",
            path=source,
        )
    scans = dict(last_scan_dates or {})
    out: dict[str, FollowUp] = {}
    for rec in clinical.to_dict("records"):
        pid = str(rec["patient_id"])
        start = to_date(rec.get("ici_start_date"))
        if start is None:
            logger.warning("%s: patient %s has no ici_start_date; left out of survival", source, pid)
            continue
        try:
            out[pid] = FollowUp(
                patient_id=pid,
                ici_start_date=start,
                death_date=to_date(rec.get("death_date")),
                last_followup_date=to_date(rec.get("last_followup_date")),
                progression_date=to_date(rec.get("progression_date")),
                last_scan_date=scans.get(pid),
                source=source,
            )
        except ClinicalDataError as exc:
            if on_error is None:
                raise
            on_error(pid, exc)
    return out


def last_scan_dates(*tables: pd.DataFrame | None) -> dict[str, dt.date]:
    """Latest date per patient over the date columns of the given tables (``scan_date`` of a measurement
    table; ``pre_baseline_date``/``baseline_date``/``first_eval_date`` of a kinetics table)."""
    latest: dict[str, dt.date] = {}
    for table in tables:
        if table is None or not len(table):
            continue
        columns = [
            c
            for c in ("scan_date", "pre_baseline_date", "baseline_date", "first_eval_date")
            if c in table.columns
        ]
        for rec in table[["patient_id", *columns]].to_dict("records"):
            pid = str(rec["patient_id"])
            for c in columns:
                d = to_date(rec[c])
                if d is not None and (pid not in latest or d > latest[pid]):
                    latest[pid] = d
    return latest
