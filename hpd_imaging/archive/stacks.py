"""Grouping image headers into series and splitting series into stacks (one candidate volume each).

Rules (dicom_io_notes.md §1.6 and checklist §6.1-6.2):

* A series is (PatientID, StudyInstanceUID, SeriesInstanceUID). De-identified exports may blank the UIDs
  (TotalSegmentator example); then files are grouped by (PatientID, FrameOfReferenceUID, normalised
  orientation, matrix, exam date) and the series gets a UID derived deterministically from that key.
* Inside a series, stacks are split by normalised ImageOrientationPatient, Rows x Columns, PixelSpacing and
  ImageType LOCALIZER, so a scout that shares the SeriesInstanceUID never ends up in a volume; every
  multi-frame (Enhanced) file is a stack of its own.
* AcquisitionNumber and TemporalPositionIndex split a stack only when positions repeat (multi-phase
  acquisitions). Axial step-and-shoot scanners number every rotation as a new acquisition (pydicom's
  77654033/CT2: acquisitions 4, 44, 45, 45 at distinct positions), so splitting on them unconditionally would
  tear real volumes apart. Spacing regularity is the loader's job; the scanner splits by header keys only.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpd_imaging.domain import SeriesRef
from hpd_imaging.settings.archive import ArchiveSettings

logger = logging.getLogger(__name__)

IssueSink = Callable[[str, Path | str, str], None]  # (patient_id, path, message)

CT_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
}


def parse_da(value: str) -> dt.date | None:
    """DICOM DA (YYYYMMDD) -> date; None when blank or invalid."""
    value = (value or "").strip().replace("-", "").replace(".", "")
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def exam_date(record: dict[str, Any]) -> dt.date | None:
    """StudyDate, else SeriesDate, AcquisitionDate, ContentDate (the first valid one)."""
    for key in ("study_date", "series_date", "acquisition_date", "content_date"):
        date = parse_da(record.get(key, ""))
        if date is not None:
            return date
    return None


def normalised_orientation(iop: list[float] | None) -> tuple[float, ...] | None:
    """Row and column cosines normalised to unit length and rounded to 1e-3 (-0.0 folded into 0.0)."""
    return _normalised_orientation(tuple(iop)) if iop is not None else None


@functools.lru_cache(maxsize=4096)  # a whole archive has few distinct orientations; called once per file
def _normalised_orientation(iop: tuple[float, ...]) -> tuple[float, ...] | None:
    if len(iop) != 6 or not all(math.isfinite(v) for v in iop):
        return None
    out: list[float] = []
    for vec in (iop[:3], iop[3:]):
        norm = math.sqrt(sum(v * v for v in vec))
        if norm == 0:
            return None
        out.extend(round(v / norm, 3) + 0.0 for v in vec)
    return tuple(out)


def slice_normal(orientation: tuple[float, ...]) -> tuple[float, float, float]:
    r, c = orientation[:3], orientation[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    norm = math.sqrt(sum(v * v for v in n)) or 1.0
    return (n[0] / norm, n[1] / norm, n[2] / norm)


@dataclass
class Stack:
    """One candidate volume: files of one series sharing orientation, matrix, spacing and image kind."""

    patient_id: str
    study_uid: str
    series_uid: str
    for_uid: str
    modality: str
    sop_class_uid: str
    study_date: dt.date | None
    series_description: str
    series_number: int | None
    rows: int
    columns: int
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    kernel: str
    image_type: tuple[str, ...]
    is_localizer: bool
    uid_derived: bool = False
    stack_key: str = ""
    files: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a stack loaded from the whole-index cache keeps its records
        # as a pickle until they are first used (index_cache.py says why).
        if name == "records" and "_records_from" in self.__dict__:
            # the source (index_cache.RecordsSource) is duck-typed here so that stacks does not import
            # index_cache, which imports stacks (no import cycle)
            source = self.__dict__.pop("_records_from")
            records: list[dict[str, Any]] = source.get(self.__dict__.pop("_records_at"))
            self.__dict__["records"] = records
            return records
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def stack_id(self) -> str:
        return f"{self.series_uid}#{self.stack_key}" if self.stack_key else self.series_uid

    @property
    def n_slices(self) -> int:
        """Number of image planes (frames of multi-frame files count one each)."""
        return sum(int(r.get("n_frames") or 1) for r in self.records)

    @property
    def sop_instances(self) -> set[str]:
        return {r["sop_instance_uid"] for r in self.records if r.get("sop_instance_uid")}

    @property
    def normal(self) -> tuple[float, float, float] | None:
        return slice_normal(self.orientation) if self.orientation else None

    def plane_positions(self) -> list[tuple[float, float, float]]:
        out: list[tuple[float, float, float]] = []
        for r in self.records:
            frames = r.get("frame_positions") or []
            if frames:
                out.extend(tuple(p[:3]) for p in frames if len(p) >= 3)  # type: ignore[misc]
            elif r.get("ipp") and len(r["ipp"]) >= 3:
                out.append(tuple(r["ipp"][:3]))  # type: ignore[arg-type]
        return out

    def extent_along_normal(self) -> tuple[float, float] | None:
        """(min, max) of plane positions projected on the slice normal (mm)."""
        n = self.normal
        pos = self.plane_positions()
        if n is None or not pos:
            return None
        d = [p[0] * n[0] + p[1] * n[1] + p[2] * n[2] for p in pos]
        return (min(d), max(d))

    def is_axial(self, tolerance_deg: float) -> bool:
        n = self.normal
        if n is None:
            return False
        return abs(n[2]) >= math.cos(math.radians(tolerance_deg))

    @property
    def is_ct(self) -> bool:
        return self.modality == "CT" or self.sop_class_uid in CT_IMAGE_SOP_CLASSES

    def to_series_ref(self) -> SeriesRef:
        return SeriesRef(
            patient_id=self.patient_id,
            study_instance_uid=self.study_uid,
            series_instance_uid=self.series_uid,
            frame_of_reference_uid=self.for_uid,
            modality=self.modality,
            files=tuple(self.files),
            study_date=self.study_date,
            series_description=self.series_description,
            rows=self.rows,
            columns=self.columns,
            image_orientation_patient=tuple(self.orientation or ()),
            pixel_spacing_mm=self.pixel_spacing,
            slice_thickness_mm=self.slice_thickness,
            convolution_kernel=self.kernel,
            image_type=self.image_type,
            stack_key=self.stack_key,
        )


def _patient_id(record: dict[str, Any], path: Path, study_dir: Path) -> str:
    pid = (record.get("patient_id") or "").strip()
    if pid:
        return pid
    rel = path.relative_to(study_dir)
    return rel.parts[0] if len(rel.parts) > 1 else ""


def _split_key(record: dict[str, Any], path: Path) -> tuple[Any, ...]:
    spacing = record.get("pixel_spacing") or []
    return (
        normalised_orientation(record.get("iop")),
        record.get("rows"),
        record.get("columns"),
        tuple(round(float(s), 3) for s in spacing[:2]) if len(spacing) >= 2 else None,
        "LOCALIZER" in (record.get("image_type") or []),
        str(path) if int(record.get("n_frames") or 1) > 1 else "",
    )


def _describe_split(key: tuple[Any, ...], varying: list[int]) -> str:
    names = ["orientation", "matrix", "matrix", "spacing", "localizer", "file"]
    parts: list[str] = []
    for i in varying:
        value = key[i]
        if i == 0:
            parts.append("orientation=" + (",".join(f"{v:g}" for v in value) if value else "none"))
        elif i in (1, 2):
            if "matrix" not in "".join(parts):
                parts.append(f"matrix={key[1]}x{key[2]}")
        elif i == 3:
            parts.append("spacing=" + ("x".join(f"{v:g}" for v in value) if value else "none"))
        elif i == 4:
            parts.append("localizer" if value else "image")
        elif i == 5 and value:
            parts.append(f"{names[i]}={Path(value).name}")
    return ";".join(parts)


def _duplicate_free(items: list[tuple[Path, dict[str, Any]]], tol: float) -> bool:
    orientation = normalised_orientation(items[0][1].get("iop"))
    if orientation is None:
        return True
    n = slice_normal(orientation)
    seen: set[int] = set()
    for _, r in items:
        ipp = r.get("ipp")
        if not ipp or len(ipp) < 3:
            continue
        scaled = (ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2]) / tol
        if not math.isfinite(scaled):  # absurd positions (1e308 mm): the loader refuses them
            continue
        q = round(scaled)
        if q in seen:
            return False
        seen.add(q)
    return True


def _split_duplicates(
    items: list[tuple[Path, dict[str, Any]]], tol: float, issue: IssueSink, pid: str
) -> list[tuple[str, list[tuple[Path, dict[str, Any]]]]]:
    """Split a stack with repeated positions by temporal position, acquisition number or time (in order)."""
    if len(items) < 2 or int(items[0][1].get("n_frames") or 1) > 1 or _duplicate_free(items, tol):
        return [("", items)]
    for field_name, label in (
        ("temporal_position_index", "temporal"),
        ("acquisition_number", "acquisition"),
        ("acquisition_time", "time"),
    ):
        groups: dict[Any, list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
        for path, r in items:
            groups[r.get(field_name)].append((path, r))
        if len(groups) > 1 and all(_duplicate_free(g, tol) for g in groups.values()):
            return [(f"{label}={k}", g) for k, g in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    # exact copies of the same instance (same SOPInstanceUID) are dropped, keeping the first path
    by_uid: dict[str, tuple[Path, dict[str, Any]]] = {}
    kept: list[tuple[Path, dict[str, Any]]] = []
    for path, r in sorted(items, key=lambda pr: str(pr[0])):
        uid = r.get("sop_instance_uid") or ""
        if uid and uid in by_uid:
            issue(pid, path, f"duplicate copy of SOP instance {uid} (same as {by_uid[uid][0].name}); ignored")
            continue
        if uid:
            by_uid[uid] = (path, r)
        kept.append((path, r))
    if not _duplicate_free(kept, tol):
        issue(
            pid,
            kept[0][0].parent,
            f"series {kept[0][1].get('series_uid') or '(blank UID)'}: repeated slice positions that no "
            "header (TemporalPositionIndex, AcquisitionNumber, AcquisitionTime) separates; "
            "the loader will refuse it",
        )
    return [("", kept)]


def build_stacks(
    images: list[tuple[Path, dict[str, Any]]], study_dir: Path, settings: ArchiveSettings, issue: IssueSink
) -> list[Stack]:
    """Group image records into series, then split each series into stacks."""
    series: dict[tuple[Any, ...], list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    derived_uid: dict[tuple[Any, ...], str] = {}
    warned_pid: set[str] = set()
    for path, r in images:
        pid = _patient_id(r, path, study_dir)
        if not (r.get("patient_id") or "").strip():
            if settings.missing_patient_id == "skip" or not pid:
                issue("", path, "image without PatientID; left out of the index")
                continue
            if pid not in warned_pid:
                warned_pid.add(pid)
                issue(
                    pid, path.parent, f"images without PatientID; patient id taken from folder name '{pid}'"
                )
        r = {**r, "patient_id": pid}
        suid = r.get("series_uid") or ""
        if suid:
            # SeriesInstanceUID is globally unique; the study UID is left out of the key on purpose because
            # some writers (SimpleITK examples in rt-utils' test data) give every slice its own study UID
            key: tuple[Any, ...] = (pid, suid)
        else:
            date = exam_date(r)
            key = (
                pid,
                "blank-uid",
                r.get("for_uid") or "",
                normalised_orientation(r.get("iop")),
                r.get("rows"),
                r.get("columns"),
                date.isoformat() if date else "",
                r.get("modality") or "",
            )
            if key not in derived_uid:
                # deterministic: the same files give the same UID on every scan (uuid5 of the grouping key;
                # pydicom's generate_uid(prefix=None) ignores its entropy sources and would be random)
                derived_uid[key] = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, repr(key)).int}"
                issue(
                    pid,
                    path.parent,
                    "images with blank SeriesInstanceUID grouped by Frame of Reference + orientation + "
                    f"matrix + date; derived series UID {derived_uid[key]}",
                )
        series[key].append((path, r))

    stacks: list[Stack] = []
    for key, items in series.items():
        sub: dict[tuple[Any, ...], list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
        for path, r in items:
            sub[_split_key(r, path)].append((path, r))
        keys = list(sub)
        varying = [i for i in range(6) if len({k[i] for k in keys}) > 1]
        for skey, sitems in sub.items():
            base = _describe_split(skey, varying) if len(keys) > 1 else ""
            pid = sitems[0][1]["patient_id"]
            for extra, part in _split_duplicates(sitems, settings.position_tolerance_mm, issue, pid):
                stack_key = ";".join(p for p in (base, extra) if p)
                stacks.append(_make_stack(part, derived_uid.get(key, ""), stack_key))
    stacks.sort(key=lambda s: (s.patient_id, s.study_date or dt.date.min, s.series_number or 0, s.stack_id))
    return stacks


def _make_stack(items: list[tuple[Path, dict[str, Any]]], derived: str, stack_key: str) -> Stack:
    items = sorted(items, key=lambda pr: str(pr[0]))
    first = items[0][1]
    spacing = first.get("pixel_spacing") or []
    thickness = first.get("slice_thickness")
    return Stack(
        patient_id=first["patient_id"],
        study_uid=first.get("study_uid") or "",
        series_uid=derived or first.get("series_uid") or "",
        for_uid=first.get("for_uid") or "",
        modality=first.get("modality") or "",
        sop_class_uid=first.get("sop_class_uid") or "",
        study_date=exam_date(first),
        series_description=first.get("series_description") or "",
        series_number=first.get("series_number"),
        rows=int(first.get("rows") or 0),
        columns=int(first.get("columns") or 0),
        orientation=normalised_orientation(first.get("iop")),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if len(spacing) >= 2 else None,
        slice_thickness=float(thickness) if thickness is not None else None,
        kernel=first.get("kernel") or "",
        image_type=tuple(first.get("image_type") or ()),
        is_localizer="LOCALIZER" in (first.get("image_type") or []),
        uid_derived=bool(derived),
        stack_key=stack_key,
        files=[p for p, _ in items],
        records=[r for _, r in items],
    )
