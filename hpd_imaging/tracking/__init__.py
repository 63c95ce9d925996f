"""Lesion tracking: one identity per lesion across a patient's exams (declared ids, image registration,
assignment), fragments and coalescence (RECIST 1.1); settings in :mod:`hpd_imaging.settings.tracking`.

Public API::

    track_lesions(patient_id, exams, settings=None, ...) -> PatientCourse
    tracking_table(courses) -> DataFrame (tracking.csv)
    register_to_reference(exam_ct, reference_ct, settings) -> Registration
"""

from hpd_imaging.tracking.registration import IDENTITY, Registration, register_to_reference
from hpd_imaging.tracking.track import ExamMasks, registration_needed, track_lesions, tracking_table

__all__ = [
    "IDENTITY",
    "ExamMasks",
    "Registration",
    "register_to_reference",
    "registration_needed",
    "track_lesions",
    "tracking_table",
]
