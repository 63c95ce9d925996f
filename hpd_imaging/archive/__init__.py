"""Archive discovery: headers-only indexing of an imaging archive, and the clinical table.

``scan_archive(study_dir, cache_dir=..., settings=...)`` walks any folder layout (flat, nested, DICOMDIR,
mixed with other files, symbolic links followed), reads DICOM headers only (optionally through an SQLite
header-index cache in ``cache_dir``, which also keeps the finished index: an archive whose files, sizes and
mtimes are all unchanged is only walked and stat'ed -- ``index_cache.py``), and returns an :class:`Archive`:

* images are grouped into series (SeriesInstanceUID; blank UIDs: Frame of Reference + orientation + matrix +
  date) and series into stacks (orientation, matrix, pixel spacing, LOCALIZER, multi-frame file; acquisition /
  temporal position only where positions repeat) -- ``stacks.py``;
* SEG and RTSTRUCT files are paired with a stack by referenced series, referenced instances, Frame of
  Reference + geometry, or geometry alone -- ``pairing.py``;
* NIfTI/NRRD label maps are paired through ``masks.csv`` at the archive root (``manifest.py``) or by naming
  convention: ``<series folder>[_seg|_label|_labels|_mask|.seg].nii.gz`` next to the series folder, or a label
  map anywhere inside an exam folder (e.g. ``<patient>/<date>/LABELS/labels.nii.gz``) whose size equals the
  CT's matrix. NIfTI files whose name says image (``image``, ``img``, ``_0000``, ``CT.nii.gz``) or whose
  voxels are floating point are images, not label maps, and are skipped;
* one CT stack per exam (patient + date) is chosen: the one a segmentation was paired with, otherwise by the
  rules of ``ArchiveSettings.choice_rules`` -- ``choose.py``; ``Archive.series_table()`` (series.csv) lists
  every stack with ``chosen``, ``choice_reason``, ``mask_files`` and ``mask_pairing``.

Problems never end the scan: they are collected in ``Archive.issues``. ``read_clinical(path)`` validates
clinical.csv and raises :class:`~hpd_imaging.errors.ClinicalDataError` naming line, column and value.
"""

from hpd_imaging.archive.clinical import read_clinical
from hpd_imaging.archive.scan import Archive, ArchiveIssue, scan_archive
from hpd_imaging.settings.archive import ArchiveSettings

__all__ = ["Archive", "ArchiveIssue", "ArchiveSettings", "read_clinical", "scan_archive"]
