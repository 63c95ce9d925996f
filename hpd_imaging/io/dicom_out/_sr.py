"""The TID 1500 measurement report of one timepoint, laid out so that OHIF and 3D Slicer both read it.

One measurement group per lesion of the timepoint (every lesions.csv row of the exam, 0 mm included):

* **lesion with voxels**: a TID 1411 volumetric group that references the lesion's SEG segment and holds,
  in this
  order, NUM Long Axis and NUM Short Axis (mm), each INFERRED FROM a 2-point POLYLINE SCOORD on the key CT
  slice
  (TID 300 row "INFERRED FROM TID 320"), then NUM Volume (mm3, method "sum of segmented voxels").
* **lesion not measured** (a size or the voxel count is ``None``, e.g. a row of an imported table without a
  mask): no group. A TID 1500 NUM must carry a number, 0 would say "absent" (see below), and dropping one
  NUM of a group would shift 3D Slicer's by-position table; so the lesion is left out of this exam's SR and
  a warning names it and the missing sizes.
* **lesion measured 0** (gone, or an exam without segmentation): a TID 1501 group with the same three NUMs
  at 0
  and the qualitative evaluation "Presence of property = Absent": assessed, not present. On an exam that had
  no segmentation at all the absence is assumed (``run.follow_up_without_mask: no_lesions``), not seen: the
  group then carries a TEXT "Comment" saying so (:data:`.codes.NOT_SEGMENTED_COMMENT`), so that a reader does
  not take it for a confirmed disappearance.

Why this layout, read from the viewers' own code:

* OHIF rehydrates a group through ``MeasurementReport.generateToolState`` (@cornerstonejs/adapters): the
  tracking
  identifier ``Cornerstone3DTools@^0.1.0:Bidirectional…`` selects the Bidirectional adapter, which takes the
  first NUM's SCOORD as the spatial reference and the NUMs named "Long Axis"/"Short Axis" with their
  SCOORDs as
  the two axes. So Long Axis is the first NUM, and each axis NUM has exactly its SCOORD as child.
* OHIF's SR display (extensions/cornerstone-dicom-sr ``_getMeasurements``) merges groups by tracking UID and
  reads ``NUM.ContentSequence.ValueType`` of every NUM without a guard: a NUM without children (a plain TID
  1411
  volume) throws "Cannot read properties of undefined (reading 'ValueType')" and the whole SR fails to
  load. So
  every NUM here has a child: the axis SCOORD, the volume's method, the 0 mm values' algorithm identification.
  A single-child ContentSequence matters for the axes: dcmjs adds ``.ValueType``-style accessors to one-item
  sequences only, and OHIF reads the SCOORD through them. No top-level SCOORD anywhere, or OHIF draws only the
  first line of a lesion.
* 3D Slicer's QuantitativeReporting uses dcmqi's ``tid1500reader`` table unless some TID 1410 group has an
  "Image Region" (then it shows bare line markups without values), so there are no TID 1410 groups. Its table
  takes the column names from the first group's NUMs and fills every row by position, so every group has the
  same NUMs in the same order; no NUM carries a Derivation modifier (which would rename the column).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from hpd_imaging import __version__
from hpd_imaging.domain import CtImage, Lesion, LesionMeasurement
from hpd_imaging.errors import MaskError, MeasurementError

from . import codes as sr_codes
from ._common import uid_for
from ._seg import MANUFACTURER

logger = logging.getLogger(__name__)

SR_SERIES_NUMBER = 9002
_MM = codes.UCUM.Millimeter
_MM3 = codes.UCUM.CubicMillimeter


def _referenced_segment(seg: hd.seg.Segmentation, number: int) -> hd.sr.ReferencedSegment:
    """Reference one SEG segment with its frames and source CT instances.

    Hand-written because ``ReferencedSegment.from_segmentation`` (highdicom 0.28.2) reads the segment number
    only from the per-frame functional groups, but highdicom itself moves it to the *shared* groups when the
    SEG has a single segment, so that call fails for a timepoint with one lesion.
    """
    shared = seg.SharedFunctionalGroupsSequence[0]
    frames: list[int] = []
    sources: dict[str, hd.sr.SourceImageForSegmentation] = {}
    for n, item in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        ident = (
            item.SegmentIdentificationSequence
            if "SegmentIdentificationSequence" in item
            else (shared.SegmentIdentificationSequence)
        )
        if int(ident[0].ReferencedSegmentNumber) != number:
            continue
        frames.append(n)
        for derivation in getattr(item, "DerivationImageSequence", []):
            for src in getattr(derivation, "SourceImageSequence", []):
                sources.setdefault(
                    src.ReferencedSOPInstanceUID,
                    hd.sr.SourceImageForSegmentation(src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID),
                )
    if not frames:
        raise MaskError(f"SEG {seg.SOPInstanceUID}: expected frames for segment {number}, got none")
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=number,
        # no frame_numbers: ReferencedFrameNumber and ReferencedSegmentNumber together are an IOD error
        # (dciodvfy: "Shall not be present when ReferencedFrameNumber is present")
        source_images=list(sources.values()),
    )


def _axis_coordinates(
    endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]],
    ct: CtImage,
    slices: list[pydicom.Dataset],
    lesion_id: str,
    what: str,
) -> hd.sr.CoordinatesForMeasurement:
    """Map two LPS end points to a POLYLINE SCOORD on their (common) axial slice.

    SCOORD pixel coordinates put (0, 0) at the top-left *corner* of the top-left pixel (PS3.3 C.18.6.1.1), so
    the centre of voxel column i is at x = i + 0.5 (OHIF's imageToWorldCoords subtracts the same 0.5).
    """
    ijk = ct.geometry.lps_to_index(np.asarray(endpoints_mm, dtype=float))
    ks = np.round(ijk[:, 2]).astype(int)
    if ks[0] != ks[1] or np.any(np.abs(ijk[:, 2] - ks) > 0.05) or not 0 <= ks[0] < len(slices):
        raise MeasurementError(
            f"lesion {lesion_id}: expected the {what} end points on one slice of the CT grid, got slice "
            f"indices {tuple(np.round(ijk[:, 2], 3))}"
        )
    return hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=(ijk[:, :2] + 0.5).astype(np.float32),
        source_image=hd.sr.SourceImageForRegion.from_source_image(slices[int(ks[0])]),
    )


def _missing_sizes(meas: LesionMeasurement) -> list[str]:
    """Names of the sizes the SR group needs that are ``None`` (not measured)."""
    needed = {
        "voxel_count": meas.voxel_count,
        "longest_axial_diameter_mm": meas.longest_axial_diameter_mm,
        "short_axis_mm": meas.short_axis_mm,
        "volume_mm3": meas.volume_mm3,
    }
    return [name for name, value in needed.items() if value is None]


def _axis_measurements(
    meas: LesionMeasurement,
    axes_mm: tuple[float, float],
    voxel_count: int,
    ct: CtImage,
    slices: list[pydicom.Dataset] | None,
    algorithm: hd.sr.AlgorithmIdentification,
) -> list[hd.sr.Measurement]:
    """Long and short axis NUMs; ``axes_mm`` and ``voxel_count`` are the measurement's, checked not None."""
    out = []
    for name, value, endpoints in (
        (sr_codes.LONG_AXIS, axes_mm[0], meas.long_axis_endpoints_mm),
        (sr_codes.SHORT_AXIS, axes_mm[1], meas.short_axis_endpoints_mm),
    ):
        if endpoints is not None and slices is not None and voxel_count > 0:
            coords = _axis_coordinates(endpoints, ct, slices, meas.lesion_id, name.meaning.lower())
            out.append(hd.sr.Measurement(name=name, value=value, unit=_MM, referenced_coordinates=[coords]))
        else:
            if voxel_count > 0:
                # e.g. measurements imported from a table: keep the number; it cannot be drawn in OHIF
                logger.warning(
                    "lesion %s: no %s end points; reported without a polyline", meas.lesion_id, name.meaning
                )
            out.append(hd.sr.Measurement(name=name, value=value, unit=_MM, algorithm_id=algorithm))
    return out


def _detach_children(measurement: hd.sr.Measurement) -> hd.sr.ContentSequence | None:
    """Remove and return the child items of a Measurement's NUM (``None`` when it has none)."""
    num = measurement[0]
    if "ContentSequence" not in num:
        return None
    children = num.ContentSequence
    del num.ContentSequence
    return children


def build_report(
    *,
    measurements: Sequence[LesionMeasurement],
    lesion_by_id: dict[str, Lesion],
    order: dict[str, int],
    ct: CtImage,
    slices: list[pydicom.Dataset],
    seg: hd.seg.Segmentation | None,
    segment_number: dict[str, int],
    series_key: tuple[str, ...],
    scan_date: dt.date,
    content_time: dt.time,
    time_point: sr_codes.TimePointInfo,
    segmented: bool = True,
) -> hd.sr.Comprehensive3DSR | None:
    """The exam's TID 1500 SR, or ``None`` when no lesion has a group to write (none, or none measured):
    TID 1500 needs at least one measurement group (highdicom refuses an empty Imaging Measurements)."""
    algorithm = hd.sr.AlgorithmIdentification(name="hpd-imaging measure", version=__version__)
    time_ctx = time_point.context(scan_date)
    groups: list[object] = []
    for meas in sorted(measurements, key=lambda m: order[m.lesion_id]):
        voxel_count, volume_mm3 = meas.voxel_count, meas.volume_mm3
        long_mm, short_mm = meas.longest_axial_diameter_mm, meas.short_axis_mm
        if voxel_count is None or volume_mm3 is None or long_mm is None or short_mm is None:
            logger.warning(
                "lesion %s on %s: %s not measured; no measurement group written (a NUM needs a number, "
                "and 0 would mean absent)",
                meas.lesion_id,
                scan_date.isoformat(),
                ", ".join(_missing_sizes(meas)),
            )
            continue
        lesion = lesion_by_id[meas.lesion_id]
        site = sr_codes.organ_code(lesion)
        common = dict(
            tracking_identifier=sr_codes.tracking_identifier(lesion),
            time_point_context=time_ctx,
            finding_category=sr_codes.FINDING_CATEGORY,
            finding_type=sr_codes.FINDING_TYPE,
            algorithm_id=algorithm,
            finding_sites=[hd.sr.FindingSite(anatomic_location=site)] if site is not None else None,
        )
        present = voxel_count > 0 and seg is not None and meas.lesion_id in segment_number
        axes = _axis_measurements(
            meas, (long_mm, short_mm), voxel_count, ct, slices if present else None, algorithm
        )
        if present:
            assert seg is not None
            volume = hd.sr.Measurement(
                name=codes.SCT.Volume,
                value=volume_mm3,
                unit=_MM3,
                method=codes.DCM.SumOfSegmentedVoxelMethodForVolume,
            )
            # highdicom refuses INFERRED FROM SCOORD under a TID 1419 NUM; TID 1419 is extensible, the SR
            # IOD allows NUM INFERRED FROM SCOORD, and OHIF needs exactly this: so the SCOORDs are detached
            # while highdicom builds the group and put back on the same NUM items after.
            detached = [_detach_children(m) for m in axes]
            group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                **common,  # type: ignore[arg-type]
                referenced_segment=_referenced_segment(seg, segment_number[meas.lesion_id]),
                measurements=[*axes, volume],
            )
            for measurement, children in zip(axes, detached, strict=True):
                if children is not None:
                    measurement[0].ContentSequence = children
            groups.append(group)
            continue
        if voxel_count > 0:
            raise MaskError(
                f"lesion {meas.lesion_id}: expected a SEG segment for a measurement with {voxel_count} "
                "voxels, got none"
            )
        volume = hd.sr.Measurement(name=codes.SCT.Volume, value=volume_mm3, unit=_MM3, algorithm_id=algorithm)
        absent_group = hd.sr.MeasurementsAndQualitativeEvaluations(
            **common,  # type: ignore[arg-type]
            measurements=[*axes, volume],
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(name=codes.DCM.PresenceOfProperty, value=codes.DCM.Absent)
            ],
        )
        if not segmented:
            # highdicom's TID 1501 takes coded evaluations only; the comment is appended to the container
            absent_group[0].ContentSequence.append(
                hd.sr.TextContentItem(
                    name=codes.DCM.Comment,
                    value=sr_codes.NOT_SEGMENTED_COMMENT,
                    relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
                )
            )
        groups.append(absent_group)
    if not groups:
        return None
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=uid_for("device", "hpd-imaging"), name="hpd-imaging", manufacturer_name=MANUFACTURER
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,  # type: ignore[arg-type]
    )
    evidence: list[pydicom.Dataset] = list(slices) + ([seg] if seg is not None else [])
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=uid_for("sr-series", *series_key),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=uid_for("sr-instance", *series_key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        specific_character_set="ISO_IR 192",
        content_date=scan_date,
        content_time=content_time,
        series_description="hpd-imaging lesion measurements (TID 1500)",
    )
