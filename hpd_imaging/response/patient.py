"""One patient's course as the criteria read it: a read-only index over a :class:`PatientCourse`.

Why a separate module: every criterion (RECIST 1.1, iRECIST, irRC, irRECIST, imRECIST) and every kinetic
metric reads the same facts (which scan is the baseline, which lesions are targets, which are new, the sums),
and they must agree on them. The facts are the course's: timepoint roles and lesion roles were set once when
the course was built (hpd_imaging/course/); nothing here re-derives them. Rules: specs/hpd_kinetics.md
sections 0 and 3 (RECIST 1.1, Eisenhauer 2009).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from hpd_imaging.course.roles import ScanRoles, roles_from_timepoints
from hpd_imaging.domain import ClinicalFacts, Lesion, LesionMeasurement, LesionRole, PatientCourse
from hpd_imaging.settings.hpd import ResponseConfig

log = logging.getLogger(__name__)

Roles = ScanRoles
Size = LesionMeasurement


@dataclass(frozen=True)
class TargetSelection:
    """The lesion roles of the course, grouped (targets, non-targets, new lesions)."""

    targets: tuple[str, ...]
    non_targets: tuple[str, ...]
    new: tuple[str, ...]
    automatic: bool


class PatientData:
    """Read-only lookups over one course: lesions by id (fragments excluded: they are summed into their
    parent), measurements by (lesion, date), the scan roles and the target selection."""

    def __init__(self, course: PatientCourse) -> None:
        self.course = course
        self.patient_id = course.patient_id
        self.scan_dates: list[dt.date] = list(course.scan_dates)
        self.lesions: dict[str, Lesion] = {
            lesion.lesion_id: lesion for lesion in course.lesions if lesion.role is not LesionRole.FRAGMENT
        }
        self._sizes: dict[tuple[str, dt.date | None], LesionMeasurement] = {
            (m.lesion_id, m.scan_date): m for m in course.measurements
        }
        self.clinical: ClinicalFacts = course.clinical
        self.roles: ScanRoles = roles_from_timepoints(
            ((t.scan_date, t.role) for t in course.timepoints), course.clinical.ici_start_date
        )

        def ids(role: LesionRole) -> tuple[str, ...]:
            return tuple(lesion.lesion_id for lesion in course.lesions if lesion.role is role)

        self.selection = TargetSelection(
            ids(LesionRole.TARGET),
            ids(LesionRole.NON_TARGET),
            ids(LesionRole.NEW),
            not course.targets_declared,
        )

    def size(self, lesion_id: str, date: dt.date) -> LesionMeasurement | None:
        return self._sizes.get((lesion_id, date))


def recist_diameter(info: Lesion, size: LesionMeasurement | None) -> float | None:
    """RECIST 1.1 diameter: short axis for lymph nodes, longest axial diameter otherwise."""
    if size is None:
        return None
    return size.short_axis_mm if info.is_lymph_node else size.longest_axial_diameter_mm


def diameter_sum(patient: PatientData, lesion_ids: Iterable[str], date: dt.date) -> float:
    """Sum of RECIST diameters on ``date``; a lesion without a row (or without the diameter) counts as 0."""
    return sum(recist_diameter(patient.lesions[lid], patient.size(lid, date)) or 0.0 for lid in lesion_ids)


def is_present(info: Lesion, size: LesionMeasurement | None) -> bool:
    """A lesion is present when any measurement is positive (a row of zeros records a disappearance)."""
    return size is not None and size.is_present


def role_name(roles: ScanRoles, date: dt.date) -> str:
    """The ``role`` column of response.csv: the timepoint role, ``first_eval`` for the first follow-up."""
    if roles.first_eval is not None and date == roles.first_eval:
        return "first_eval"
    return roles.role_of(date).value


def baseline_organs(patient: PatientData, selection: TargetSelection) -> set[str]:
    return {patient.lesions[lid].organ for lid in (*selection.targets, *selection.non_targets)}


# --------------------------------------------------------------------------------------------------
# Sums
# --------------------------------------------------------------------------------------------------


def target_value(
    patient: PatientData, lid: str, date: dt.date, roles: Roles, cfg: ResponseConfig, kind: str = "diameter"
) -> float | None:
    """One target's contribution on one scan, applying the missing-measurement policies."""
    info = patient.lesions[lid]
    size = patient.size(lid, date)
    if kind == "diameter":
        value = recist_diameter(info, size)
    else:
        value = None if size is None else size.volume_mm3
        if size is not None and value is None:
            return None  # a row without a volume: volumetric metrics not evaluable
    if size is None:
        policy = (
            cfg.missing_target_at_prebaseline
            if date < (roles.baseline or date)
            else cfg.missing_target_at_followup
        )
        if policy == "zero":
            return 0.0
        if policy == "too_small":
            d = cfg.too_small_to_measure_mm
            return d if kind == "diameter" else math.pi / 6 * d**3
        return None
    return value


def sum_over(
    patient: PatientData,
    lesion_ids: tuple[str, ...],
    date: dt.date,
    roles: Roles,
    cfg: ResponseConfig,
    kind: str = "diameter",
) -> float | None:
    total = 0.0
    for lid in lesion_ids:
        value = target_value(patient, lid, date, roles, cfg, kind)
        if value is None:
            return None
        total += value
    return total


def new_lesions_present(patient: PatientData, date: dt.date, cfg: ResponseConfig) -> list[str]:
    """New lesions visible on ``date`` (new nodes count only when pathological, short axis >= 10 mm)."""
    present = []
    for lid, info in patient.lesions.items():
        if not info.is_new:
            continue
        size = patient.size(lid, date)
        if not is_present(info, size):
            continue
        if info.is_lymph_node and (
            size is None or (size.short_axis_mm or 0.0) < cfg.node_pathological_min_sa_mm
        ):
            continue
        present.append(lid)
    return sorted(present)


def is_measurable(info: Lesion, size: LesionMeasurement | None, cfg: ResponseConfig) -> bool:
    d = recist_diameter(info, size)
    if d is None:
        return False
    return d >= (cfg.node_measurable_min_sa_mm if info.is_lymph_node else cfg.measurable_min_mm)


def new_measurable_lesions(
    patient: PatientData,
    dates: list[dt.date],
    cfg: ResponseConfig,
    max_total: int | None = None,
    max_per_organ: int | None = None,
) -> list[str]:
    """New lesions measurable when first seen, in order of appearance then size (iRECIST new-lesion targets,
    irRECIST/imRECIST additions)."""
    chosen: list[str] = []
    per_organ: dict[str, int] = {}
    for date in dates:
        appearing = []
        for lid in new_lesions_present(patient, date, cfg):
            if lid in chosen or any(
                is_present(patient.lesions[lid], patient.size(lid, d)) for d in dates if d < date
            ):
                continue
            info = patient.lesions[lid]
            size = patient.size(lid, date)
            if is_measurable(info, size, cfg):
                appearing.append((-(recist_diameter(info, size) or 0.0), lid))
        for _, lid in sorted(appearing):
            organ = patient.lesions[lid].organ
            if max_total is not None and len(chosen) >= max_total:
                break
            if max_per_organ is not None and per_organ.get(organ, 0) >= max_per_organ:
                continue
            per_organ[organ] = per_organ.get(organ, 0) + 1
            chosen.append(lid)
    return chosen
