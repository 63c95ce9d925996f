"""RECIST rulers as input: DICOM SR TID 1500 linear measurements -> lesion measurement rows without a mask.

Radiologists measure on rulers: OHIF's Length/Bidirectional tools and 3D Slicer's line markups save a TID 1500
Measurement Report whose measurement groups (TID 1410/1501) carry a Tracking Identifier (112039), a Tracking
Unique Identifier (112040), a Finding Site and NUM items: Long Axis (SCT 103339001), Short Axis (SCT
103340004), Length (SCT 410668003) or Diameter (SCT 81827009), in mm or cm. Each group becomes one row of
the measurement schema that ``hpd-imaging kinetics`` reads (response/tables.MEASUREMENT_REQUIRED): the
patient and exam date from the SR header, the lesion from the tracking identifier (the same lesion keeps its
identifier across exams, as the TID 1500 tracking UID is meant to), LD from Long Axis / Length / Diameter,
SA from Short Axis (blank when not measured: RECIST needs it only for lymph nodes). OHIF writes the same
tool-adapter text as every group's tracking identifier; the user's label (a free-text Finding) or the
tracking UID is the lesion id then.

Why a hand-written tree walk rather than ``highdicom.sr.srread``: OHIF/dcmjs-written SRs fail highdicom's
(and dciodvfy's) validation on several points (cornerstone3D #2058, dcmjs #432), yet their content tree is
readable. The walk reads only the items named above and ignores everything else.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydicom.dataset import Dataset

from hpd_imaging.errors import DicomReadError, MaskError

log = logging.getLogger(__name__)

LONG_AXIS = {"103339001", "G-A185"}  # SCT Long axis (and its SRT code)
SHORT_AXIS = {"103340004", "G-A186"}  # SCT Short axis
LENGTH = {"410668003", "G-D7FE", "81827009", "M-02550"}  # SCT Length, Diameter
TRACKING_ID = "112039"
TRACKING_UID = "112040"
FINDING_SITE = {"363698007", "G-C0E3"}
FINDING = "121071"
_LYMPH_NODE = ("59441001", "lymph node")
_FREE_TEXT = "CORNERSTONEFREETEXT"
_TOOL_IDENTIFIER = re.compile(r"[\w.-]+@[^:]*:\w+")  # e.g. Cornerstone3DTools@^0.1.0:Bidirectional
_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}

#: the kinetics input columns this module fills (response/tables.py), plus where each row came from
RULER_COLUMNS = (
    "patient_id",
    "scan_date",
    "lesion_id",
    "organ",
    "is_lymph_node",
    "longest_axial_diameter_mm",
    "short_axis_mm",
    "volume_mm3",
    "tracking_uid",
    "mask_source",
    "source_file",
)


@dataclass(frozen=True)
class RulerMeasurement:
    """One lesion's ruler measurement at one exam (no mask: no volume, no 3D diameter)."""

    patient_id: str
    scan_date: dt.date
    lesion_id: str
    longest_axial_diameter_mm: float | None
    short_axis_mm: float | None
    organ: str = ""
    is_lymph_node: bool = False
    tracking_uid: str = ""
    source_file: str = ""


def _code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str]:
    seq = item.get(keyword, None)
    if not seq:
        return "", ""
    code = seq[0]
    value = str(
        code.get("CodeValue", "") or code.get("LongCodeValue", "") or code.get("URNCodeValue", "") or ""
    )
    return value, str(code.get("CodeMeaning", "") or "")


def _value_mm(item: Dataset, where: str) -> float | None:
    measured = item.get("MeasuredValueSequence", None)
    if not measured:
        return None
    mv = measured[0]
    unit, meaning = _code(mv, "MeasurementUnitsCodeSequence")
    factor = _TO_MM.get(unit) or {"millimeter": 1.0, "centimeter": 10.0}.get(meaning.lower().rstrip("s"))
    if factor is None:
        raise MaskError(f"{where}: expected a length in mm or cm, got unit {unit!r} ({meaning})", path=where)
    value = float(mv.NumericValue) * factor
    if not value >= 0:
        raise MaskError(f"{where}: expected a non-negative length, got {value} mm", path=where)
    return value


def _groups(items: Iterable[Dataset]) -> Iterable[Dataset]:
    """Every CONTAINER whose direct children include a NUM item (a measurement group), depth first."""
    for item in items:
        if str(item.get("ValueType", "")) != "CONTAINER":
            continue
        children = item.get("ContentSequence", None) or []
        if any(str(c.get("ValueType", "")) == "NUM" for c in children):
            yield item
        yield from _groups(children)


def _exam_date(ds: Dataset, where: str) -> dt.date:
    for keyword in ("StudyDate", "SeriesDate", "ContentDate"):
        text = str(ds.get(keyword, "") or "").strip()
        if text:
            try:
                return dt.datetime.strptime(text[:8], "%Y%m%d").date()
            except ValueError:
                continue
    raise MaskError(f"{where}: expected a StudyDate (the measured exam's date), got none", path=where)


def read_ruler_sr(path: Path | str) -> list[RulerMeasurement]:
    """The linear measurements of one TID 1500 SR, one per measurement group (module docstring).

    Raises :class:`MaskError` when the file holds no linear measurement (e.g. only a volume), naming what it
    holds instead, and :class:`DicomReadError` when it is not a readable SR.
    """
    import pydicom

    path = Path(path)
    where = str(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is one clear error
        raise DicomReadError(
            f"{where}: cannot read as DICOM SR: {type(exc).__name__}: {exc}", path=where
        ) from exc
    if str(ds.get("Modality", "")) != "SR" or "ContentSequence" not in ds:
        raise DicomReadError(
            f"{where}: expected a DICOM SR with a content tree, got Modality "
            f"{ds.get('Modality', '(none)')!r}",
            path=where,
        )
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if not patient_id:
        raise MaskError(f"{where}: expected a PatientID, got an empty one", path=where)
    scan_date = _exam_date(ds, where)
    out: list[RulerMeasurement] = []
    other: set[str] = set()
    for n, group in enumerate(_groups(ds.ContentSequence), start=1):
        lesion_id = tracking_uid = organ = free_text = ""
        is_ln = False
        long_mm: float | None = None
        short_mm: float | None = None
        length_mm: float | None = None
        for item in group.get("ContentSequence", None) or []:
            code, meaning = _code(item)
            kind = str(item.get("ValueType", ""))
            if code == TRACKING_ID and kind == "TEXT":
                lesion_id = str(item.get("TextValue", "") or "").strip()
            elif code == TRACKING_UID and kind == "UIDREF":
                tracking_uid = str(item.get("UID", "") or "")
            elif code in FINDING_SITE or code == FINDING:
                site_code, site = _code(item, "ConceptCodeSequence")
                if code == FINDING and site_code == _FREE_TEXT:
                    free_text = site.strip()  # OHIF keeps the user's label as a free-text finding
                if site_code == _LYMPH_NODE[0] or _LYMPH_NODE[1] in site.lower():
                    is_ln = True
                if code in FINDING_SITE and site:
                    organ = "_".join(site.lower().removesuffix(" structure").split())
            elif kind == "NUM":
                value = (
                    _value_mm(item, f"{where}: group {n}: {meaning}")
                    if code in LONG_AXIS | SHORT_AXIS | LENGTH
                    else None
                )
                if code in LONG_AXIS:
                    long_mm = value
                elif code in SHORT_AXIS:
                    short_mm = value
                elif code in LENGTH:
                    length_mm = value if length_mm is None else max(length_mm, value or 0.0)
                else:
                    other.add(meaning or code)
        longest = long_mm if long_mm is not None else length_mm
        if longest is None and short_mm is None:
            continue
        if _TOOL_IDENTIFIER.fullmatch(lesion_id):
            # OHIF writes its tool adapter ("Cornerstone3DTools@^0.1.0:Length") as every group's tracking
            # identifier: the lesion is the user's label, else the tracking UID
            lesion_id = free_text or tracking_uid
        if is_ln and organ in ("", "lymph_node"):
            organ = "lymph_node"
        out.append(
            RulerMeasurement(
                patient_id=patient_id,
                scan_date=scan_date,
                lesion_id=lesion_id or tracking_uid or f"ruler{n}",
                longest_axial_diameter_mm=longest,
                short_axis_mm=short_mm,
                organ=organ,
                is_lymph_node=is_ln,
                tracking_uid=tracking_uid,
                source_file=where,
            )
        )
    if not out:
        held = f"only {', '.join(sorted(other))}" if other else "no measurement group"
        raise MaskError(
            f"{where}: expected linear measurements (Long axis, Short axis, Length or Diameter), got {held}",
            path=where,
        )
    seen: dict[str, int] = {}
    for m in out:
        seen[m.lesion_id] = seen.get(m.lesion_id, 0) + 1
    duplicated = sorted(k for k, v in seen.items() if v > 1)
    if duplicated:
        raise MaskError(
            f"{where}: expected one measurement group per lesion, got several for {duplicated} "
            "(give each ruler its own tracking identifier)",
            path=where,
        )
    return out


def rulers_table(measurements: Iterable[RulerMeasurement]) -> pd.DataFrame:
    """The kinetics-input table (one row per lesion per exam) of ruler measurements; blanks are None."""
    rows = [
        {
            "patient_id": m.patient_id,
            "scan_date": m.scan_date.isoformat(),
            "lesion_id": m.lesion_id,
            "organ": m.organ,
            "is_lymph_node": m.is_lymph_node,
            "longest_axial_diameter_mm": m.longest_axial_diameter_mm,
            "short_axis_mm": m.short_axis_mm,
            "volume_mm3": None,  # a ruler has no volume
            "tracking_uid": m.tracking_uid,
            "mask_source": "ruler_sr",
            "source_file": m.source_file,
        }
        for m in measurements
    ]
    table = pd.DataFrame(rows, columns=list(RULER_COLUMNS)).astype(object)
    return table.sort_values(["patient_id", "scan_date", "lesion_id"], kind="stable").reset_index(drop=True)


def read_ruler_folder(folder: Path | str) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Every ruler SR under ``folder`` as one table, plus (file, message) for each SR that could not be used.

    Files are recognised by content (DICOM with Modality SR); one bad SR is one error, the others go on.
    """
    import pydicom

    from hpd_imaging.io.filetype import FileKind, sniff

    rows: list[RulerMeasurement] = []
    problems: list[tuple[str, str]] = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if sniff(path) is not FileKind.DICOM:
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # noqa: BLE001 - not ours to judge here; only SRs are read
            continue
        if str(header.get("Modality", "")) != "SR":
            continue
        try:
            rows.extend(read_ruler_sr(path))
        except (MaskError, DicomReadError) as exc:
            log.warning("%s", exc)
            problems.append((str(path), str(exc)))
    return rulers_table(rows), problems
