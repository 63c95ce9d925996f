"""Timepoint roles: the one rule, used by ``run`` (pipeline) and ``kinetics`` (table adapter) alike.

specs/hpd_kinetics.md section 0: the baseline is the last scan on or before the first ICI dose, the
pre-baseline scan the one just before it (reference period of the growth kinetics), scans before that are
EARLIER (listed, not used by the kinetics), and every scan after the ICI start is a FOLLOW_UP (the first of
them is the first evaluation). Without an ICI start date no role can be given: every scan stays UNASSIGNED.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from hpd_imaging.domain import TimepointRole


@dataclass(frozen=True)
class ScanRoles:
    """The dates that play a role in one patient's course."""

    ici_start: dt.date | None
    baseline: dt.date | None
    pre_baseline: dt.date | None
    first_eval: dt.date | None
    follow_ups: tuple[dt.date, ...]  # every scan after ICI start, first evaluation included
    earlier: tuple[dt.date, ...]  # scans before the pre-baseline scan (or every scan without an ICI start)

    def role_of(self, date: dt.date) -> TimepointRole:
        if self.ici_start is None:
            return TimepointRole.UNASSIGNED
        if date == self.baseline:
            return TimepointRole.BASELINE
        if date == self.pre_baseline:
            return TimepointRole.PRE_BASELINE
        if date in self.follow_ups:
            return TimepointRole.FOLLOW_UP
        return TimepointRole.EARLIER


def scan_roles(dates: Iterable[dt.date], ici_start: dt.date | None) -> ScanRoles:
    """Assign the roles of section 0 to a patient's scan dates."""
    ordered = sorted(set(dates))
    if ici_start is None:
        return ScanRoles(None, None, None, None, (), tuple(ordered))
    before = [d for d in ordered if d <= ici_start]
    after = tuple(d for d in ordered if d > ici_start)
    baseline = before[-1] if before else None
    pre = before[-2] if len(before) >= 2 else None
    return ScanRoles(ici_start, baseline, pre, after[0] if after else None, after, tuple(before[:-2]))


def roles_from_timepoints(
    roles: Iterable[tuple[dt.date, TimepointRole]], ici_start: dt.date | None
) -> ScanRoles:
    """Read back the roles a course carries (the inverse of :func:`scan_roles`)."""
    by_role: dict[TimepointRole, list[dt.date]] = {}
    for date, role in sorted(roles):
        by_role.setdefault(role, []).append(date)
    follow = tuple(by_role.get(TimepointRole.FOLLOW_UP, []))
    base = by_role.get(TimepointRole.BASELINE, [])
    pre = by_role.get(TimepointRole.PRE_BASELINE, [])
    earlier = tuple(
        sorted(by_role.get(TimepointRole.EARLIER, []) + by_role.get(TimepointRole.UNASSIGNED, []))
    )
    return ScanRoles(
        ici_start,
        base[-1] if base else None,
        pre[-1] if pre else None,
        follow[0] if follow else None,
        follow,
        earlier,
    )
