"""Building a :class:`~hpd_imaging.domain.PatientCourse`: timepoint roles by one rule, lesion roles set once,
and the table adapter (the only place a measurement table becomes courses).

Public API::

    courses_from_tables(measurements, clinical, cfg) -> list[PatientCourse]
    build_course(patient_id, rows, clinical, cfg) -> PatientCourse
    scan_roles(dates, ici_start) -> ScanRoles
    assign_lesion_roles(course, cfg, declared=None) -> PatientCourse
    read_table(path) -> DataFrame of strings
"""

from hpd_imaging.course.adapter import build_course, courses_from_tables
from hpd_imaging.course.roles import ScanRoles, roles_from_timepoints, scan_roles
from hpd_imaging.course.table import parse_clinical, parse_measurements, read_table
from hpd_imaging.course.targets import assign_lesion_roles

__all__ = [
    "ScanRoles",
    "assign_lesion_roles",
    "build_course",
    "courses_from_tables",
    "parse_clinical",
    "parse_measurements",
    "read_table",
    "roles_from_timepoints",
    "scan_roles",
]
