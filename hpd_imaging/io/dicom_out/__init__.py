"""Write one timepoint's lesions back as DICOM: a BINARY SEG and a TID 1500 measurement report (3D SR).

The layout is chosen so that the viewers' own reading code shows every number (details in :mod:`._sr`):
OHIF (dcmjs + @cornerstonejs/adapters) rehydrates each measured lesion as one Bidirectional (long and short
axis on the key slice), and 3D Slicer's QuantitativeReporting (dcmqi ``tid1500reader``) lists one row per
lesion
with its long axis, short axis and volume next to the SEG. Every lesion of the timepoint gets a group, those
measured 0 too, and an exam without segmentation still gets an SR ("assessed, not present"). Tracking
identifier, tracking UID and colour of a lesion are the same at every timepoint (:mod:`.codes`).

Determinism: every UID is derived from the identity of what it names (source series, lesion tracking UID,
object kind) with :func:`pydicom.uid.generate_uid` and ``entropy_srcs``, and all dates/times are fixed from
the
scan date, so that writing the same inputs twice gives byte-identical files (the pipeline's resume test relies
on this).

Gotchas handled here: the CT's ``SpecificCharacterSet`` is often empty, which makes highdicom refuse to build
the SR, so we set ``ISO_IR 192`` explicitly; pydicom has no millilitre code, so volumes are reported in mm3
(``codes.UCUM.CubicMillimeter``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpd_imaging.domain import CtImage, Lesion, LesionMask, LesionMeasurement
from hpd_imaging.errors import DicomReadError, GeometryError, MaskError, MeasurementError

from ._common import (
    datasets_by_slice,
    enforce_value_lengths,
    pin_stamps,
    read_ct_datasets,
    save_dataset,
    uid_for,
)
from ._seg import MANUFACTURER, SEG_SERIES_NUMBER, build_segmentation
from ._sr import SR_SERIES_NUMBER, build_report
from .codes import (
    BIDIRECTIONAL_TRACKING_PREFIX,
    ORGAN_CODES,
    PALETTE_RGB,
    TimePointInfo,
    lesion_colour,
    tracking_identifier_text,
)

__all__ = [
    "BIDIRECTIONAL_TRACKING_PREFIX",
    "CONTENT_CREATOR_NAME",
    "MANUFACTURER",
    "ORGAN_CODES",
    "PALETTE_RGB",
    "SEG_FILENAME",
    "SEG_SERIES_NUMBER",
    "SR_FILENAME",
    "SR_SERIES_NUMBER",
    "DicomOutputs",
    "TimePointInfo",
    "lesion_colour",
    "tracking_identifier_text",
    "write_dicom_outputs",
]

logger = logging.getLogger(__name__)

SEG_FILENAME = "seg.dcm"
SR_FILENAME = "sr_tid1500.dcm"
#: ContentCreatorName of the SEG (PN, family-name component only): the software that wrote it
CONTENT_CREATOR_NAME = "hpd-imaging^"


@dataclass(frozen=True)
class DicomOutputs:
    """Paths written for one timepoint."""

    seg_path: Path | None
    sr_path: Path

    def as_list(self) -> list[Path]:
        return [p for p in (self.seg_path, self.sr_path) if p is not None]


def _pair_masks(
    masks: Sequence[LesionMask] | Mapping[str, LesionMask], measurements: Sequence[LesionMeasurement]
) -> dict[str, LesionMask]:
    """lesion_id -> mask. A mapping is taken as is; a list is paired by ``mask.lesion_id``, else by label."""
    if isinstance(masks, Mapping):
        return dict(masks)
    by_id = {m.lesion_id: m for m in masks if m.lesion_id}
    by_label: dict[str, list[LesionMask]] = {}
    for m in masks:
        by_label.setdefault(m.label, []).append(m)
    paired: dict[str, LesionMask] = {}
    for meas in measurements:
        mask = by_id.get(meas.lesion_id)
        if mask is None and meas.label and len(by_label.get(meas.label, [])) == 1:
            mask = by_label[meas.label][0]
        if mask is not None:
            paired[meas.lesion_id] = mask
    unused = [m.label for m in masks if all(m is not p for p in paired.values())]
    if unused:
        raise MaskError(
            "expected every mask to belong to a measured lesion (by lesion_id or label), "
            f"got unmatched masks {unused}"
        )
    return paired


def _scan_date(
    scan_date: dt.date | None, measurements: Sequence[LesionMeasurement], first_ct: object, ct_file: Path
) -> dt.date:
    if scan_date is not None:
        return scan_date
    dates = {m.scan_date for m in measurements if m.scan_date is not None}
    if len(dates) > 1:
        raise MeasurementError(f"expected measurements of one timepoint, got scan dates {sorted(dates)}")
    if dates:
        return dates.pop()
    study_date = str(getattr(first_ct, "StudyDate", "") or "")
    if len(study_date) != 8:
        raise DicomReadError(
            f"{ct_file}: expected a StudyDate (YYYYMMDD) to date the outputs when no scan_date is given, "
            f"got {study_date!r}"
        )
    return dt.datetime.strptime(study_date, "%Y%m%d").date()


def write_dicom_outputs(
    ct_files: Sequence[Path],
    ct: CtImage,
    masks: Sequence[LesionMask] | Mapping[str, LesionMask],
    measurements: Sequence[LesionMeasurement],
    lesions: Sequence[Lesion],
    out_dir: Path,
    *,
    scan_date: dt.date | None = None,
    time_point: TimePointInfo | None = None,
    patient_attributes: Mapping[str, str] | None = None,
    content_creator_name: str = CONTENT_CREATOR_NAME,
    segmented: bool | None = None,
) -> list[Path]:
    """Write ``seg.dcm`` (BINARY SEG) and ``sr_tid1500.dcm`` (TID 1500 SR) for one timepoint into ``out_dir``.

    ``ct_files`` are the source CT slice files of ``ct`` (the masks must be on exactly that grid);
    ``measurements`` are this timepoint's LesionMeasurements, every one of them (a lesion measured 0 gets an
    "assessed, not present" group; a lesion not measured, sizes None, gets none; with no group to write, e.g.
    no measurement at all, no SR is written, since TID 1500 needs at least one measurement group).
    ``lesions`` give identity (tracking UID, organ) and colour (position in the list), so pass the patient's
    whole lesion list, in the same order, at every timepoint. ``masks`` is a list paired to measurements by
    ``lesion_id`` (else by label) or a mapping lesion_id -> mask; an exam without segmentation passes none.
    ``scan_date`` (default: the measurements' scan_date, else the CT StudyDate) fixes ContentDate/Time;
    ``time_point`` gives the TID 1502 context (role, order). ``patient_attributes`` overrides Patient-module
    attributes copied from the CT (e.g. ``{"PatientID": pseudonym, "PatientName": "", ...}`` for pseudonymised
    outputs). ``segmented``: whether the exam had a segmentation; None reads it from ``masks`` (none given:
    not segmented, so lesions measured 0 are marked as assumed absent rather than seen gone, see ``_sr``).
    Returns the written paths (no SEG when no lesion has voxels).
    """
    out_dir = Path(out_dir)
    lesion_by_id = {lesion.lesion_id: lesion for lesion in lesions}
    for meas in measurements:
        if meas.lesion_id not in lesion_by_id:
            raise MeasurementError(
                f"lesion {meas.lesion_id}: expected a Lesion with this lesion_id (tracking UID), "
                f"got none among {sorted(lesion_by_id)}"
            )
    if len({m.lesion_id for m in measurements}) != len(measurements):
        raise MeasurementError(
            "expected one measurement per lesion for a timepoint, got duplicate lesion_ids"
        )

    datasets = read_ct_datasets(ct_files)
    slices = datasets_by_slice(datasets, ct, ct_files)
    paired = _pair_masks(masks, measurements)
    for lesion_id, mask in paired.items():
        if not mask.geometry.is_close(ct.geometry):
            raise GeometryError(
                f"{mask.source_path or mask.label}: expected the mask of lesion {lesion_id} on the CT "
                f"grid, got {ct.geometry.describe_difference(mask.geometry)}"
            )
    scan_date = _scan_date(scan_date, measurements, slices[0], Path(ct_files[0]))
    content_time = dt.time(0, 0, 0)
    series_key = (slices[0].StudyInstanceUID, slices[0].SeriesInstanceUID, scan_date.isoformat())

    # Segments: lesions with voxels, in the order of ``lesions`` (stable across timepoints).
    order = {lesion.lesion_id: n for n, lesion in enumerate(lesions)}
    # a measurement with voxel_count None was not measured from a mask: no segment (and no SR group, see _sr)
    present = sorted(
        (m for m in measurements if m.voxel_count is not None and m.voxel_count > 0),
        key=lambda m: order[m.lesion_id],
    )
    for meas in present:
        if meas.lesion_id not in paired:
            raise MaskError(
                f"lesion {meas.lesion_id}: expected a mask for a measurement with {meas.voxel_count} voxels, "
                "got none"
            )
        if paired[meas.lesion_id].voxel_count == 0:
            raise MaskError(
                f"lesion {meas.lesion_id}: expected a non-empty mask ({meas.voxel_count} voxels "
                "measured), got 0"
            )

    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    seg = None
    segment_number = {m.lesion_id: n for n, m in enumerate(present, start=1)}
    if present:
        seg = build_segmentation(
            slices=slices,
            ct=ct,
            segments=[(lesion_by_id[m.lesion_id], paired[m.lesion_id], order[m.lesion_id]) for m in present],
            series_key=series_key,
            scan_date=scan_date,
            content_time=content_time,
            content_creator_name=content_creator_name,
        )
        enforce_value_lengths(seg, Path(ct_files[0]))
        # highdicom's random DimensionOrganizationUID is derived from the SEG's identity instead
        pin_stamps(seg, scan_date, content_time, uid_for("seg-dimension-organization", *series_key))
        seg_path = out_dir / SEG_FILENAME
        save_dataset(seg, seg_path, patient_attributes)
        written.append(seg_path)
        logger.info("wrote SEG with %d segments to %s", len(present), seg_path)

    sr = build_report(
        measurements=measurements,
        lesion_by_id=lesion_by_id,
        order=order,
        ct=ct,
        slices=slices,
        seg=seg,
        segment_number=segment_number,
        series_key=series_key,
        scan_date=scan_date,
        content_time=content_time,
        time_point=time_point or TimePointInfo(),
        segmented=bool(paired) if segmented is None else segmented,
    )
    if sr is None:
        logger.warning("%s: no lesion measured on this exam; no TID 1500 SR written", out_dir)
        return written
    enforce_value_lengths(sr, Path(ct_files[0]))
    pin_stamps(sr, scan_date, content_time)
    sr_path = out_dir / SR_FILENAME
    save_dataset(sr, sr_path, patient_attributes)
    written.append(sr_path)
    logger.info("wrote TID 1500 SR with %d lesion groups to %s", len(measurements), sr_path)
    return written
