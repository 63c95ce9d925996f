"""Archive discovery: headers-only indexing of an imaging archive, and the clinical table.

``scan_archive(study_dir)`` walks any folder layout (flat, nested, DICOMDIR, mixed with other files), reads
DICOM headers only (optionally through an SQLite header-index cache), groups images into series and stacks,
pairs SEG / RTSTRUCT / label-map masks with their CT, and chooses one CT series per exam with the reason
recorded. ``read_clinical(path)`` validates clinical.csv.
"""

from hpd_imaging.archive.clinical import read_clinical
from hpd_imaging.archive.scan import Archive, ArchiveIssue, scan_archive
from hpd_imaging.archive.settings import ArchiveSettings

__all__ = ["Archive", "ArchiveIssue", "ArchiveSettings", "read_clinical", "scan_archive"]
