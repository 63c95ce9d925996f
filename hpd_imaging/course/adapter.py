"""The table adapter: the only place where a measurement table (+ clinical table) becomes
:class:`~hpd_imaging.domain.PatientCourse` objects.

Both ``hpd-imaging kinetics`` (a spreadsheet) and ``hpd-imaging run`` (lesions.csv written by the measurement
stage) come through here, so that both get the same courses: timepoint roles by the one rule
(:mod:`hpd_imaging.course.roles`), lesion roles set once (:mod:`hpd_imaging.course.targets`), RECIST fragments
summed into their parent, and missing values as None (the rows are typed values, never a DataFrame again).
A patient's course is built from that patient's rows alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd

from hpd_imaging.course.roles import scan_roles
from hpd_imaging.course.table import MeasurementRow, parse_clinical, parse_measurements
from hpd_imaging.course.targets import assign_lesion_roles
from hpd_imaging.domain import (
    ClinicalFacts,
    Lesion,
    LesionMeasurement,
    LesionRole,
    PatientCourse,
    Timepoint,
)
from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.measure.uncertainty import GRID, TABLE, grid_uncertainty
from hpd_imaging.settings.hpd import ResponseConfig

log = logging.getLogger(__name__)


def _sum(values: Sequence[float | None]) -> float | None:
    """Sum of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _fold_fragments(rows: list[MeasurementRow], source: str) -> tuple[list[MeasurementRow], dict[str, str]]:
    """RECIST 1.1 fragments: a row with ``fragment_of`` = parent adds its long axis (and volume) to the
    parent's row of the same scan (a parent without a row there is made from its fragments).
    Returns the rows of the non-fragment lesions and {fragment id: parent id}."""
    parents: dict[str, str] = {}
    for r in rows:
        if r.fragment_of is not None:
            if parents.get(r.lesion_id, r.fragment_of) != r.fragment_of:
                raise ClinicalDataError(
                    f"{source}: row {r.row}, column 'fragment_of': lesion {r.lesion_id!r} of patient "
                    f"{r.patient_id!r} is a fragment of {parents[r.lesion_id]!r} on another row; "
                    f"expected one parent, got {r.fragment_of!r}",
                    path=source,
                )
            parents[r.lesion_id] = r.fragment_of
    if not parents:
        return rows, {}
    ids = {r.lesion_id for r in rows}
    for child, parent in parents.items():
        if parent not in ids or parent in parents:
            raise ClinicalDataError(
                f"{source}: patient {rows[0].patient_id!r}: lesion {child!r} is a fragment of {parent!r}; "
                "expected the parent to be a lesion of the table that is not itself a fragment",
                path=source,
            )
    by_key: dict[tuple[str, dt.date], list[MeasurementRow]] = defaultdict(list)
    for r in rows:
        by_key[(parents.get(r.lesion_id, r.lesion_id), r.scan_date)].append(r)
    folded = []
    for (lid, _date), group in by_key.items():
        own = [r for r in group if r.lesion_id == lid]
        frags = [r for r in group if r.lesion_id != lid]
        base = own[0] if own else frags[0]
        if not frags:
            folded.append(base)
            continue
        pieces = [*own, *frags]
        folded.append(
            MeasurementRow(
                row=base.row,
                patient_id=base.patient_id,
                scan_date=base.scan_date,
                lesion_id=lid,
                organ=own[0].organ if own else base.organ,
                is_lymph_node=own[0].is_lymph_node if own else base.is_lymph_node,
                longest_axial_diameter_mm=_sum([r.longest_axial_diameter_mm for r in pieces]),
                # a fragmented node is measured by its largest piece's short axis (RECIST sums long axes only)
                short_axis_mm=max(
                    (r.short_axis_mm for r in pieces if r.short_axis_mm is not None), default=None
                ),
                volume_mm3=None
                if any(r.volume_mm3 is None for r in pieces)
                else _sum([r.volume_mm3 for r in pieces]),
                is_new=own[0].is_new if own else None,
                is_target=own[0].is_target if own else None,
                fragment_of=None,
                # summed axes and volumes: SDs in quadrature; the node's short axis is its largest piece's
                longest_axial_diameter_sd_mm=_quadrature([r.longest_axial_diameter_sd_mm for r in pieces]),
                short_axis_sd_mm=max(
                    pieces, key=lambda r: r.short_axis_mm if r.short_axis_mm is not None else -1.0
                ).short_axis_sd_mm,
                volume_sd_mm3=_quadrature([r.volume_sd_mm3 for r in pieces]),
                pixel_spacing_mm=base.pixel_spacing_mm,
                uncertainty_source=base.uncertainty_source,
                slice_thickness_mm=base.slice_thickness_mm,
            )
        )
    return folded, parents


def _quadrature(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else math.sqrt(sum(v * v for v in values if v is not None))


def _row_uncertainty(r: MeasurementRow) -> dict[str, Any]:
    """The SDs of one row (issue 17): its SD columns where given (source "table"), else the grid error of a
    given pixel spacing (source "grid"); nothing: the response stage applies its literature defaults."""
    given = {
        "longest_axial_diameter_sd_mm": r.longest_axial_diameter_sd_mm,
        "short_axis_sd_mm": r.short_axis_sd_mm,
        "volume_sd_mm3": r.volume_sd_mm3,
    }
    if any(v is not None for v in given.values()):
        return {**given, "uncertainty_source": r.uncertainty_source or TABLE}
    if r.pixel_spacing_mm:
        thickness = r.slice_thickness_mm if r.slice_thickness_mm else r.pixel_spacing_mm
        sd = grid_uncertainty(
            (r.pixel_spacing_mm, r.pixel_spacing_mm, thickness),
            longest_axial_diameter_mm=r.longest_axial_diameter_mm,
            short_axis_mm=r.short_axis_mm,
            volume_mm3=r.volume_mm3,
        )
        return {
            "longest_axial_diameter_sd_mm": sd.longest_axial_diameter_sd_mm,
            "short_axis_sd_mm": sd.short_axis_sd_mm,
            "volume_sd_mm3": sd.volume_sd_mm3 if r.volume_mm3 is not None else None,
            "uncertainty_source": GRID,
        }
    return {}


def _derived_new(lid: str, present: dict[dt.date, bool], baseline: dt.date | None) -> bool:
    """Derived ``is_new``: absent on the baseline scan, seen after it, never seen before it."""
    if baseline is None:
        return False
    at_base = present.get(baseline, False)
    after = any(v for d, v in present.items() if d > baseline)
    before = any(v for d, v in present.items() if d < baseline)
    return not at_base and after and not before


def build_course(
    patient_id: str,
    rows: list[MeasurementRow],
    clinical: ClinicalFacts | None,
    cfg: ResponseConfig,
    source: str = "measurements",
) -> PatientCourse:
    """One patient's course from that patient's validated rows and clinical facts."""
    facts = clinical if clinical is not None else ClinicalFacts()
    rows, fragments = _fold_fragments(rows, source)
    dates = sorted({r.scan_date for r in rows})
    roles = scan_roles(dates, facts.ici_start_date)
    measurements = []
    info: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (r.scan_date, r.lesion_id)):
        m = LesionMeasurement(
            lesion_id=r.lesion_id,
            voxel_count=None,
            volume_mm3=r.volume_mm3,
            longest_axial_diameter_mm=r.longest_axial_diameter_mm,
            short_axis_mm=r.short_axis_mm,
            max_3d_diameter_mm=None,
            organ=r.organ,
            is_lymph_node=r.is_lymph_node,
            patient_id=patient_id,
            scan_date=r.scan_date,
            **_row_uncertainty(r),
        )
        measurements.append(m)
        entry = info.setdefault(
            r.lesion_id,
            {"organ": r.organ, "node": r.is_lymph_node, "new": None, "target": None, "present": {}},
        )
        if r.is_new is not None:
            entry["new"] = bool(entry["new"]) or r.is_new
        if r.is_target is not None:
            entry["target"] = bool(entry["target"]) or r.is_target
        entry["present"][r.scan_date] = m.is_present
    declared_any = any(e["target"] is not None for e in info.values())
    lesions = []
    for lid, e in sorted(info.items()):
        is_new = e["new"] if e["new"] is not None else _derived_new(lid, e["present"], roles.baseline)
        lesions.append(
            Lesion(
                lesion_id=lid,
                organ=e["organ"],
                is_lymph_node=bool(e["node"]),
                role=LesionRole.NEW if is_new else LesionRole.NON_TARGET,
                first_seen=min((d for d, v in e["present"].items() if v), default=None),
            )
        )
    for child, parent in sorted(fragments.items()):
        lesions.append(
            Lesion(
                lesion_id=child,
                organ=info[parent]["organ"],
                is_lymph_node=bool(info[parent]["node"]),
                role=LesionRole.FRAGMENT,
                fragment_of=parent,
                role_reason=f"fragment of {parent}: its long axis is summed into the parent's (RECIST 1.1)",
            )
        )
    course = PatientCourse(
        patient_id=patient_id,
        lesions=tuple(lesions),
        measurements=tuple(measurements),
        timepoints=tuple(Timepoint(patient_id, d, role=roles.role_of(d)) for d in dates),
        clinical=facts,
        source=source,
        targets_declared=declared_any,
    )
    declared = {lid: e["target"] for lid, e in info.items()} if declared_any else None
    return assign_lesion_roles(course, cfg, declared)


def courses_from_tables(
    measurements: pd.DataFrame,
    clinical: pd.DataFrame,
    cfg: ResponseConfig | None = None,
    *,
    measurements_source: str = "measurements",
    clinical_source: str = "clinical",
) -> list[PatientCourse]:
    """Every patient's course, sorted by patient id: patients with measurements, and patients of the clinical
    table without any (their course has no lesion; every label is then not evaluable)."""
    cfg = cfg if cfg is not None else ResponseConfig()
    rows = parse_measurements(measurements, measurements_source)
    facts = parse_clinical(clinical, clinical_source)
    by_patient: dict[str, list[MeasurementRow]] = defaultdict(list)
    for r in rows:
        by_patient[r.patient_id].append(r)
    for pid in facts:
        if pid not in by_patient:
            log.warning("patient %s is in the clinical table but has no measurements", pid)
    courses = []
    for pid in sorted(set(by_patient) | set(facts)):
        if pid not in facts:
            log.warning(
                "patient %s has measurements but no clinical row (no ICI start date): not evaluable", pid
            )
        courses.append(build_course(pid, by_patient.get(pid, []), facts.get(pid), cfg, measurements_source))
    return courses
