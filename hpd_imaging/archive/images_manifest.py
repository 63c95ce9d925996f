"""``images.csv``: an archive without DICOM (NIfTI/NRRD CTs + label maps), described by a manifest.

What nnU-Net, TotalSegmentator and most research data sets are: image files and label maps with no patient,
date or reference inside them. The manifest at the archive root supplies what the files cannot:

======================  ===========================================================================
column                  meaning
======================  ===========================================================================
``patient_id``          the patient (required)
``scan_date``           exam date, ``YYYY-MM-DD`` or ``YYYYMMDD`` (required)
``image_path``          the CT, NIfTI/NRRD/MetaImage, relative to the archive root (required)
``mask_path``           a label map (or Slicer ``.seg.nrrd``) on that CT (optional: a CT without a mask)
``label``               a label value of the mask; ``lesion_id``, ``organ``, ``is_lymph_node`` describe it
======================  ===========================================================================

Several rows of one (patient, date, image) list several masks and/or several labels of one mask: the rows of
one mask become its label table (as in ``masks.csv``), and a mask with a label table keeps only the listed
labels as lesions (TotalSegmentator's 40-label map with the liver declared as the lesion gives one lesion).
File types are read from the content; an ``image_path`` whose voxels look like a label map, or a
``mask_path`` whose voxels look like an image, is reported. Paths that leave the archive are refused. Every
bad row is one issue naming the line, the column and the value; the scan goes on.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.archive.manifest import _label_entry
from hpd_imaging.archive.stacks import IssueSink
from hpd_imaging.domain import MaskRef, MaskSource, SeriesRef, Timepoint

REQUIRED = ("patient_id", "scan_date", "image_path")


def parse_date(text: str) -> dt.date | None:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _inside(study_dir: Path, rel: str) -> Path | None:
    root = os.path.normpath(study_dir)
    target = Path(os.path.normpath(study_dir / rel))
    if not rel or Path(rel).is_absolute() or os.path.commonpath([root, target]) != root:
        return None
    return target


def read_images_manifest(
    manifest: Path,
    study_dir: Path,
    volume_headers: dict[Path, dict[str, Any]],
    issue: IssueSink,
) -> tuple[list[Timepoint], set[Path], list[dict[str, Any]]]:
    """Timepoints described by ``images.csv``, every path it lists, and series-table rows for its images."""
    name = manifest.name
    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - reported, scan goes on
        issue("", manifest, f"{name}: cannot be read as CSV: {exc}")
        return [], set(), []
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        issue("", manifest, f"{name}: missing required column(s) {missing}; found {list(table.columns)}")
        return [], set(), []
    listed: set[Path] = set()
    # (patient, date) -> image path -> mask path (or None) -> [(line, row)]
    exams: dict[tuple[str, dt.date], dict[Path, dict[Path | None, list[tuple[int, dict[str, str]]]]]] = (
        defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    )
    for i, row in enumerate(table.to_dict("records")):
        line = i + 2
        pid = row["patient_id"].strip()
        date = parse_date(row["scan_date"])
        if not pid:
            issue("", manifest, f"{name} line {line}, column patient_id: expected a patient id, got ''")
            continue
        if date is None:
            issue(
                pid,
                manifest,
                f"{name} line {line}, column scan_date: expected YYYY-MM-DD, got '{row['scan_date']}'",
            )
            continue
        image = _inside(study_dir, row["image_path"].strip())
        if image is None:
            issue(
                pid,
                manifest,
                f"{name} line {line}: image_path '{row['image_path']}' escapes the archive; refused",
            )
            continue
        listed.add(image)
        if image not in volume_headers:
            what = "does not exist" if not image.is_file() else "is not a NIfTI/NRRD/MetaImage volume"
            issue(pid, manifest, f"{name} line {line}: image_path '{row['image_path']}' {what}")
            continue
        mask: Path | None = None
        mask_text = (row.get("mask_path") or "").strip()
        if mask_text:
            mask = _inside(study_dir, mask_text)
            if mask is None:
                issue(
                    pid, manifest, f"{name} line {line}: mask_path '{mask_text}' escapes the archive; refused"
                )
                continue
            listed.add(mask)
            if not mask.is_file():
                issue(pid, manifest, f"{name} line {line}: mask_path '{mask_text}' does not exist")
                continue
        exams[(pid, date)][image][mask].append((line, row))

    timepoints: list[Timepoint] = []
    rows: list[dict[str, Any]] = []
    for (pid, date), images in sorted(exams.items(), key=lambda kv: kv[0]):
        chosen = next(iter(images))
        if len(images) > 1:
            issue(
                pid,
                manifest,
                f"{name}: exam {date} lists {len(images)} images; the first listed "
                f"({chosen.relative_to(study_dir).as_posix()}) is used",
            )
        header = volume_headers[chosen]
        if header.get("content") == "labelmap":
            issue(
                pid,
                chosen,
                f"{name}: image_path of exam {date} holds a label map by its voxels "
                f"({header.get('content_reason')}); expected a CT image",
            )
            continue
        mask_refs: list[MaskRef] = []
        for mask, entries in images[chosen].items():
            if mask is None:
                continue
            mheader = volume_headers.get(mask, {})
            if mheader.get("content") == "image":
                issue(
                    pid,
                    mask,
                    f"{name}: mask_path holds an image by its voxels ({mheader.get('content_reason')}); "
                    "expected a label map; the loader will refuse it",
                )
            label_rows = []
            for line, row in entries:
                entry = _label_entry(row, line, name, pid, mask, issue)
                if entry is not None:
                    label_rows.append(entry)
            source = MaskSource.LABELMAP if mask in volume_headers else _dicom_mask_source(mask)
            mask_refs.append(
                MaskRef(
                    path=mask,
                    source=source,
                    patient_id=pid,
                    label_table=tuple(label_rows),
                    pairing="manifest",
                )
            )
        size = header.get("size") or [0, 0, 0]
        spacing = header.get("spacing") or []
        ref = SeriesRef(
            patient_id=pid,
            study_instance_uid="",
            series_instance_uid=f"file:{chosen.relative_to(study_dir).as_posix()}",
            frame_of_reference_uid="",
            modality="CT",
            files=(chosen,),
            study_date=date,
            series_description=chosen.name,
            rows=int(size[1]) if len(size) > 1 else 0,
            columns=int(size[0]) if size else 0,
            pixel_spacing_mm=(float(spacing[1]), float(spacing[0])) if len(spacing) >= 2 else None,
            slice_thickness_mm=float(spacing[2]) if len(spacing) >= 3 else None,
        )
        timepoints.append(
            Timepoint(
                patient_id=pid,
                scan_date=date,
                ct=ref,
                masks=tuple(mask_refs),
                choice_reason=f"listed in {name}",
            )
        )
        rows.append(_series_row(ref, size, spacing, mask_refs, study_dir, name))
    return timepoints, listed, rows


def _dicom_mask_source(path: Path) -> MaskSource:
    from hpd_imaging.io import detect_mask_source

    try:
        return detect_mask_source(path)
    except Exception:  # noqa: BLE001 - the loader reports the unreadable file when it is read
        return MaskSource.LABELMAP


def _series_row(
    ref: SeriesRef, size: list, spacing: list, masks: list[MaskRef], root: Path, name: str
) -> dict[str, Any]:
    rel = ref.files[0].relative_to(root).as_posix()
    return {
        "patient_id": ref.patient_id,
        "scan_date": ref.study_date.isoformat() if ref.study_date else "",
        "study_uid": "",
        "series_uid": ref.series_instance_uid,
        "stack_key": "",
        "modality": "CT",
        "n_slices": int(size[2]) if len(size) > 2 else 0,
        "rows": ref.rows,
        "columns": ref.columns,
        "pixel_spacing_mm": "x".join(f"{v:g}" for v in ref.pixel_spacing_mm) if ref.pixel_spacing_mm else "",
        "slice_thickness_mm": ref.slice_thickness_mm,
        "series_description": ref.series_description,
        "series_number": None,
        "convolution_kernel": "",
        "image_type": "",
        "chosen": True,
        "choice_reason": f"listed in {name}",
        "mask_files": ";".join(m.path.relative_to(root).as_posix() for m in masks),
        "mask_pairing": ";".join(m.pairing for m in masks),
        "structures": "",
        "folder": str(Path(rel).parent.as_posix()),
    }
