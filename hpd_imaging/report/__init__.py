"""The HTML report: a cohort page (summary, labels under every HPD definition, spider/waterfall plots,
definition concordance, survival, stability) and one page per patient (tumour-burden curves, lesion
snapshots, labels with reasons, model risk); columns: :mod:`.inputs`."""

from hpd_imaging.report.html import (
    PATIENT_PAGES_DIR,
    REPORT_FILENAME,
    page_names,
    patient_pages,
    read_report_inputs,
    render_patient_pages,
    render_report,
    write_report,
)
from hpd_imaging.report.inputs import LesionSnapshot, ReportInputs, make_snapshot

__all__ = [
    "PATIENT_PAGES_DIR",
    "REPORT_FILENAME",
    "LesionSnapshot",
    "ReportInputs",
    "make_snapshot",
    "page_names",
    "patient_pages",
    "read_report_inputs",
    "render_patient_pages",
    "render_report",
    "write_report",
]
