"""Checks of patient identity and of clinical facts against the archive, before any patient is processed.

Every finding is a row for errors.csv (issue 16: an input fault that changes or withholds a result is never
only a console line):

* a segmentation (SEG, RTSTRUCT) whose PatientID differs from the PatientID of the CT it was paired with is
  refused for both patients: it is removed from the exam and each patient gets an error row. Merging it into
  the CT's patient (what pairing by referenced series alone does) mixes two people's lesions;
* a possible patient-ID split: the same PatientName and PatientBirthDate under different PatientIDs (an exam
  filed under a second ID) is a warning row for each ID, since the exams are then analysed as two patients;
* clinical dates that contradict the scans or the calendar (:func:`check_clinical_dates`).

Headers are read with pydicom (``stop_before_pixels``, a few tags): one read per mask and per exam.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.domain import MaskSource, Timepoint

logger = logging.getLogger(__name__)

Row = dict[str, str]


def _header(path: Path, tags: list[str]) -> dict[str, str]:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
        return {t: str(ds.get(t, "") or "").strip() for t in tags}
    except Exception:  # noqa: BLE001 - an unreadable header is the loaders' to report; no identity check
        return {}


def _row(pid: str, path: str, message: str, rule: str, value: str, severity: str = "error") -> Row:
    return {
        "patient_id": pid,
        "stage": "archive",
        "file": path,
        "message": message,
        "severity": severity,
        "rule": rule,
        "value": value,
    }


def refuse_foreign_masks(
    timepoints: Mapping[str, list[Timepoint]],
) -> tuple[dict[str, list[Timepoint]], list[Row]]:
    """Remove DICOM masks whose own PatientID is not their CT's; error rows for both patients."""
    out: dict[str, list[Timepoint]] = {}
    rows: list[Row] = []
    for pid, tps in timepoints.items():
        kept_tps = []
        for tp in tps:
            kept = []
            for ref in tp.masks:
                if ref.source not in (MaskSource.SEG, MaskSource.RTSTRUCT):
                    kept.append(ref)
                    continue
                own = _header(ref.path, ["PatientID"]).get("PatientID", "")
                if not own or own == pid:
                    kept.append(ref)
                    continue
                message = (
                    f"{ref.source.value} {ref.path}: PatientID {own!r} differs from the PatientID {pid!r} "
                    f"of the CT it references (exam {tp.scan_date}): expected the same patient, refused "
                    "for both patients; correct the PatientID of the segmentation or of the CT"
                )
                logger.warning("%s", message)
                rows.append(_row(pid, str(ref.path), message, "mask_patient_mismatch", own))
                rows.append(_row(own, str(ref.path), message, "mask_patient_mismatch", pid))
            kept_tps.append(dataclasses.replace(tp, masks=tuple(kept)))
        out[pid] = kept_tps
    return out, rows


def patient_id_splits(timepoints: Mapping[str, list[Timepoint]]) -> list[Row]:
    """Warning rows for PatientIDs that share PatientName and PatientBirthDate with another PatientID."""
    people: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for pid, tps in timepoints.items():
        for tp in tps:
            if tp.ct is None or not tp.ct.files:
                continue
            h = _header(Path(tp.ct.files[0]), ["PatientName", "PatientBirthDate"])
            name, birth = h.get("PatientName", ""), h.get("PatientBirthDate", "")
            if name and birth:
                people[(name.upper(), birth)].setdefault(pid, str(tp.ct.files[0].parent))
                break
    rows = []
    for (_name, birth), ids in sorted(people.items()):
        if len(ids) < 2:
            continue
        listed = ", ".join(sorted(ids))
        for pid, folder in sorted(ids.items()):
            rows.append(
                _row(
                    pid,
                    folder,
                    f"possible patient-ID split: PatientIDs {listed} share PatientName and PatientBirthDate "
                    f"{birth}; they are analysed as separate patients. If they are one person, give the "
                    "exams one PatientID",
                    "patient_id_split",
                    listed,
                    severity="warning",
                )
            )
    return rows


def clinical_date_rows(
    clinical: pd.DataFrame | None,
    timepoints: Mapping[str, list[Timepoint]],
    alias: Callable[[str], str],
    source: str = "clinical.csv",
) -> list[Row]:
    """errors.csv rows of :func:`hpd_imaging.archive.clinical.check_clinical_dates` (output IDs)."""
    if clinical is None:
        return []
    from hpd_imaging.archive.clinical import check_clinical_dates

    scans = {alias(pid): [t.scan_date for t in tps] for pid, tps in timepoints.items()}
    return [
        _row(i.patient_id, source, i.message, i.rule, f"{i.column}={i.value}", severity=i.severity)
        | {"stage": "clinical"}
        for i in check_clinical_dates(clinical, scans, source=source)
    ]


def unmeasured_baseline_lesions(
    lesions: pd.DataFrame,
    baseline_dates: Mapping[str, Any],
    faulty_baseline: Iterable[str] = (),
) -> list[Row]:
    """Error rows for baseline lesions without a usable measurement.

    A lesion whose baseline mask (``label`` set) has 0 voxels or no positive longest diameter has no
    baseline size: measuring it as 0 would drop it from the targets and compute every label on the wrong
    sum. Its patient's labels are then withheld (the caller removes the patient from the response input).
    A lesion seen earlier and *not found* at baseline (no mask there, ``label`` empty) is a real 0, unless
    its patient is in ``faulty_baseline`` (a segmentation of the baseline exam was refused or partly
    skipped by its loader: the lesion may be missing because its structure was unusable, not because it
    vanished).
    """
    faulty = set(faulty_baseline)
    needed = {"voxel_count", "label", "longest_axial_diameter_mm"}
    if not len(lesions) or not needed <= set(lesions.columns):
        return []
    rows = []
    for pid, group in lesions.groupby(lesions["patient_id"].astype(str), sort=True):
        base = baseline_dates.get(pid)
        if base is None:
            continue
        at_base = group[group["scan_date"].astype(str) == str(base)]
        annotated = at_base["label"].fillna("").astype(str).str.strip() != ""
        if pid in faulty:  # a loader fault at baseline: a lesion measured 0 there is not evidence of absence
            annotated = annotated | True
        # a ruler measurement has no voxels (voxel_count blank) but a diameter: measured, not "0 voxels"
        voxels = pd.to_numeric(at_base["voxel_count"], errors="coerce")
        diameter = pd.to_numeric(at_base["longest_axial_diameter_mm"], errors="coerce")
        for _, r in at_base[annotated & ((voxels.notna() & (voxels <= 0)) | ~(diameter > 0))].iterrows():
            message = (
                f"baseline lesion {r['lesion_id']} (mask {r['label'] or 'none'!r}, exam {base}): expected a "
                f"measurable mask, got {r['voxel_count']} voxel(s) and longest diameter "
                f"{r['longest_axial_diameter_mm']} mm: no usable baseline measurement, so the patient's "
                "kinetics and HPD labels are withheld (never computed with this lesion measured 0); fix or "
                "remove the segmentation"
            )
            row = _row(pid, "", message, "baseline_lesion_unmeasured", str(r["lesion_id"]))
            rows.append({**row, "stage": "measure"})
    return rows
