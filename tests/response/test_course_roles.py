"""Roles are assigned once, by one rule, whichever way the course is built (issue 14)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd

from hpd_imaging.course import assign_lesion_roles, courses_from_tables, scan_roles
from hpd_imaging.domain import (
    Lesion,
    LesionMeasurement,
    LesionRole,
    PatientCourse,
    SeriesRef,
    Timepoint,
    TimepointRole,
)
from hpd_imaging.pipeline import assign_roles
from hpd_imaging.settings import ResponseConfig

D = [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1), dt.date(2024, 4, 1), dt.date(2024, 5, 1)]
ICI = dt.date(2024, 3, 5)


def test_one_timepoint_rule_for_pipeline_and_table() -> None:
    roles = scan_roles(D, ICI)
    expected = [
        TimepointRole.EARLIER,
        TimepointRole.PRE_BASELINE,
        TimepointRole.BASELINE,
        TimepointRole.FOLLOW_UP,
        TimepointRole.FOLLOW_UP,
    ]
    assert [roles.role_of(d) for d in D] == expected
    assert roles.first_eval == D[3] and roles.baseline == D[2] and roles.pre_baseline == D[1]
    ref = SeriesRef("P", "1.2", "1.2.3", "1.2.4", "CT", ())
    tps = assign_roles([Timepoint("P", d, ref) for d in reversed(D)], ICI)
    assert [t.role for t in tps] == expected  # pipeline: the same rule (earlier scans are EARLIER)
    assert [t.role for t in assign_roles([Timepoint("P", d, ref) for d in D], None)] == [
        TimepointRole.UNASSIGNED
    ] * 5
    # the baseline is the last scan on or before the ICI start (a scan on the ICI day is the baseline)
    assert scan_roles([D[0], ICI, D[4]], ICI).baseline == ICI


def _rows() -> list[dict]:
    sizes = {"L1": (30, 32, 35), "L2": (22, 24, 26), "L3": (12, 12, 13), "N1": (16, 17, 18), "N2": (8, 8, 8)}
    rows = []
    for lid, values in sizes.items():
        node = lid.startswith("N")
        for date, v in zip(D[1:4], values, strict=True):
            rows.append(
                {
                    "patient_id": "P",
                    "scan_date": date.isoformat(),
                    "lesion_id": lid,
                    "organ": "node" if node else "lung",
                    "is_lymph_node": node,
                    "longest_axial_diameter_mm": v * 1.5 if node else v,
                    "short_axis_mm": v if node else v * 0.6,
                }
            )
    return rows


def test_lesion_roles_are_set_once_in_the_course_and_same_from_images_or_table() -> None:
    clinical = pd.DataFrame([{"patient_id": "P", "ici_start_date": ICI.isoformat()}])
    course = courses_from_tables(pd.DataFrame(_rows()), clinical, ResponseConfig())[0]
    roles = {lesion.lesion_id: lesion.role for lesion in course.lesions}
    # <= 2 per organ: L1, L2 (lung, largest); L3 lung is the third -> non-target; N1 SA 16 >= 15 -> target;
    # N2 SA 8 < 10: a normal node
    assert roles == {
        "L1": LesionRole.TARGET,
        "L2": LesionRole.TARGET,
        "L3": LesionRole.NON_TARGET,
        "N1": LesionRole.TARGET,
        "N2": LesionRole.NORMAL_NODE,
    }
    assert [lesion.lesion_id for lesion in course.lesions_with_role("target")] == ["L1", "L2", "N1"]
    assert "already 2 targets in organ 'lung'" in course.lesion("L3").role_reason
    # a course as tracking builds it (roles NEW / NON_TARGET only, timepoints with roles, no clinical):
    # assign_lesion_roles gives the same targets
    tracked = PatientCourse(
        "P",
        lesions=tuple(
            dataclasses.replace(lesion, role=LesionRole.NON_TARGET, role_reason="")
            for lesion in course.lesions
        ),
        measurements=tuple(
            LesionMeasurement(
                m.lesion_id,
                10,
                100.0,
                m.longest_axial_diameter_mm,
                m.short_axis_mm,
                m.longest_axial_diameter_mm,
                is_lymph_node=m.is_lymph_node,
                scan_date=m.scan_date,
            )
            for m in course.measurements
        ),
        timepoints=tuple(Timepoint("P", d, role=scan_roles(D[1:4], ICI).role_of(d)) for d in D[1:4]),
    )
    again = assign_lesion_roles(tracked, ResponseConfig())
    assert {lesion.lesion_id: lesion.role for lesion in again.lesions} == roles
    assert isinstance(Lesion("X").role, LesionRole)


def test_the_stage_returns_frozen_enum_valued_records() -> None:
    import pytest

    from hpd_imaging.domain import HpdLabel
    from hpd_imaging.response import assess_course
    from hpd_imaging.response.records import RecistResponse

    clinical = pd.DataFrame([{"patient_id": "P", "ici_start_date": ICI.isoformat()}])
    course = courses_from_tables(pd.DataFrame(_rows()), clinical, ResponseConfig())[0]
    result = assess_course(course, ResponseConfig())
    first = next(tp for tp in result.timepoints if tp.recist.role == "first_eval")
    # targets L1 + L2 + N1: 32 + 24 + 17 = 73 at baseline, 35 + 26 + 18 = 79 (+8.2 %) -> SD
    assert first.recist.sld_mm == 79 and first.recist.recist_response is RecistResponse.SD
    assert first.immune is not None and first.row()["irrc_response"] == "irSD"
    champiat = result.assessment("champiat2017")
    assert champiat.label is HpdLabel.NO_HPD and "not met (SD)" in champiat.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.recist.recist_response = RecistResponse.PD  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.kinetics.tgr_exp = 1.0  # type: ignore[misc]
