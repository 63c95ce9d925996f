"""Ruler SRs in an archive: TID 1500 reports of linear measurements, attached to their exam by date.

A radiologist's ruler report (OHIF, 3D Slicer) is a DICOM SR in the study it measures; it references images,
not a series the pairing rules could use, so it joins the exam of its patient and StudyDate and goes with that
exam's chosen CT (like a label map known only by its exam folder). Only SRs holding at least one linear
measurement (Long axis, Short axis, Length, Diameter) count: dose reports and volume-only TID 1500 reports
are no rulers. ``run`` uses the rulers of an exam only when it has no segmentation (masks where they exist,
rulers elsewhere).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from hpd_imaging.archive.pairing import PairedMask
from hpd_imaging.archive.stacks import IssueSink
from hpd_imaging.domain import MaskRef, MaskSource


def ruler_reports(sr_files: list[tuple[Path, dict[str, Any]]], issue: IssueSink) -> list[PairedMask]:
    """Exam-level pairings of the SRs that hold linear measurements (module docstring)."""
    from hpd_imaging.io.rulers import read_ruler_sr

    out: list[PairedMask] = []
    for path, record in sr_files:
        pid = str(record.get("patient_id") or "")
        try:
            measurements = read_ruler_sr(path)
        except Exception:  # noqa: BLE001 - an SR without rulers is simply not a ruler report
            continue
        text = str(record.get("study_date") or record.get("series_date") or "")
        try:
            date = dt.datetime.strptime(text[:8], "%Y%m%d").date()
        except ValueError:
            issue(pid, path, f"ruler SR: expected a StudyDate YYYYMMDD, got '{text}'; not indexed")
            continue
        ref = MaskRef(
            path=path,
            source=MaskSource.RULER_SR,
            patient_id=pid,
            pairing="exam_date",
            structures=tuple(f"{m.lesion_id} [ruler]" for m in measurements),
        )
        out.append(PairedMask(ref, None, (pid, date)))
    return out
