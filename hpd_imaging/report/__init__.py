"""The HTML report: cohort summary, per-patient tumour-burden curves and lesion snapshots, labels under every
HPD definition, spider/waterfall plots, definition concordance, model risk (columns: :mod:`.inputs`)."""

from hpd_imaging.report.html import REPORT_FILENAME, read_report_inputs, render_report, write_report
from hpd_imaging.report.inputs import LesionSnapshot, ReportInputs, make_snapshot

__all__ = [
    "REPORT_FILENAME",
    "LesionSnapshot",
    "ReportInputs",
    "make_snapshot",
    "read_report_inputs",
    "render_report",
    "write_report",
]
