"""Write one timepoint's lesions back as DICOM: a BINARY SEG and a TID 1500 measurement report (3D SR).

Why these objects (specs/dicom_io_notes.md section 3 and checklist item 9):

* **SEG**, BINARY, one segment per lesion: the type clinical viewers (OHIF v3, 3D Slicer) open reliably.
  Each segment carries the lesion's ``tracking_id`` (our ``lesion_id``) and ``tracking_uid``, which stay the
  same for the same lesion at every timepoint, so a viewer or a later reader can follow it over time.
* **SR TID 1500** (highdicom ``MeasurementReport`` in a ``Comprehensive3DSR``): per lesion one TID 1411
  volumetric group (volume in mm3, referencing the SEG segment) and two TID 1410 planar groups (RECIST long
  axis and short axis in mm), each with a 2-point POLYLINE SCOORD on the key slice. OHIF does not display
  groups that only reference a SEG segment (OHIF issue #3390); the polylines make the numbers visible there.
  A lesion that has disappeared (0 voxels) gets a TID 1501 group with 0 mm / 0 mm3 under its tracking UID so
  that the report still says "assessed, gone" for it.

Determinism: every UID is derived from the identity of what it names (source series, lesion tracking UID,
object kind) with :func:`pydicom.uid.generate_uid` and ``entropy_srcs``, and all dates/times are fixed from
the scan date, so that writing the same inputs twice gives byte-identical files (the pipeline's resume
test relies on this).

Gotchas handled here: the CT's ``SpecificCharacterSet`` is often empty, which makes highdicom refuse to build
the SR, so we set ``ISO_IR 192`` explicitly; pydicom has no millilitre code, so volumes are reported in mm3
(``codes.UCUM.CubicMillimeter``).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from hpd_imaging import __version__, atomic
from hpd_imaging.dicom_stamps import pin_creation_stamps
from hpd_imaging.domain import CtImage, Lesion, LesionMask, LesionMeasurement
from hpd_imaging.errors import DicomReadError, GeometryError, MaskError, MeasurementError

logger = logging.getLogger(__name__)

SPECIFIC_CHARACTER_SET = "ISO_IR 192"  # UTF-8; see module docstring
MANUFACTURER = "hpd-imaging"
SEG_FILENAME = "seg.dcm"
SR_FILENAME = "sr_tid1500.dcm"
SEG_SERIES_NUMBER = 9001
SR_SERIES_NUMBER = 9002

# Anatomic region per organ (SNOMED CT codes from pydicom's code dictionary, so no code is typed by hand);
# the keys are our lower-case organ names (lesions.csv ``organ``). Unknown organs get no region, not a guess.
ORGAN_CODES: dict[str, hd.sr.CodedConcept] = {
    organ: hd.sr.CodedConcept.from_code(code)
    for organ, code in {
        "lung": codes.SCT.Lung,
        "liver": codes.SCT.Liver,
        "lymph_node": codes.SCT.LymphNode,
        "adrenal": codes.SCT.AdrenalGland,
        "adrenal_gland": codes.SCT.AdrenalGland,
        "bone": codes.SCT.Bone,
        "brain": codes.SCT.Brain,
        "kidney": codes.SCT.Kidney,
        "pleura": codes.SCT.Pleura,
        "spleen": codes.SCT.Spleen,
        "pancreas": codes.SCT.Pancreas,
        "soft_tissue": codes.SCT.SoftTissue,
        "skin": codes.SCT.Skin,
        "breast": codes.SCT.Breast,
        "mediastinum": codes.SCT.Mediastinum,
        "muscle": codes.SCT.SkeletalMuscle,
    }.items()
}

# Tolerances for matching the CT files to the CtImage grid: slice positions in voxels, cosines, spacing in mm.
_INDEX_TOL_VOX = 1e-2
_COSINE_TOL = 1e-4
_SPACING_TOL_MM = 1e-3


@dataclass(frozen=True)
class DicomOutputs:
    """Paths written for one timepoint."""

    seg_path: Path | None
    sr_path: Path

    def as_list(self) -> list[Path]:
        return [p for p in (self.seg_path, self.sr_path) if p is not None]


def _uid(*parts: object) -> str:
    """A deterministic UID derived from ``parts`` (pydicom's root + a SHA-512 hash of the parts).

    (``prefix=None`` would give a random UUID-based UID and ignore the entropy sources.)
    """
    return str(generate_uid(entropy_srcs=["hpd-imaging", *(str(p) for p in parts)]))


def _read_ct_datasets(ct_files: Sequence[Path]) -> list[pydicom.Dataset]:
    datasets: list[pydicom.Dataset] = []
    for path in ct_files:
        try:
            datasets.append(pydicom.dcmread(path))
        except Exception as exc:  # pydicom raises several types; report them uniformly
            raise DicomReadError(
                f"{path}: expected a readable DICOM CT file, got {exc}", path=str(path)
            ) from exc
    if not datasets:
        raise DicomReadError("expected at least one CT file to reference, got none")
    return datasets


def _datasets_by_slice(
    datasets: list[pydicom.Dataset], ct: CtImage, ct_files: Sequence[Path]
) -> list[pydicom.Dataset]:
    """Order the CT datasets by array slice index ``k`` of ``ct``, checking they are exactly its grid.

    SEG frames and SR SCOORDs refer to source pixels directly, so the mask grid must *be* the stored image
    grid (a resampled CtImage, e.g. after gantry-tilt correction, cannot be referenced this way): never
    guess.
    """
    geom = ct.geometry
    direction = geom.direction_matrix
    n_k, n_rows, n_cols = geom.shape
    by_k: dict[int, pydicom.Dataset] = {}
    for ds, path in zip(datasets, ct_files, strict=True):
        try:
            iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
            ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
            row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
            rows, cols = int(ds.Rows), int(ds.Columns)
        except (AttributeError, ValueError, TypeError) as exc:
            raise DicomReadError(
                f"{path}: expected image plane attributes (IOP, IPP, PixelSpacing), got {exc}"
            ) from exc
        if (rows, cols) != (n_rows, n_cols):
            raise GeometryError(
                f"{path}: expected {n_rows}x{n_cols} pixels like the CT grid, got {rows}x{cols}"
            )
        if not (
            np.allclose(iop[:3], direction[:, 0], atol=_COSINE_TOL)
            and np.allclose(iop[3:], direction[:, 1], atol=_COSINE_TOL)
        ):
            raise GeometryError(
                f"{path}: expected ImageOrientationPatient {tuple(np.round(direction[:, :2].T.ravel(), 6))} "
                f"(the CT grid's row/column axes), got {tuple(iop)}; masks on a reoriented or resampled grid "
                "cannot be referenced to the source images"
            )
        if not np.allclose((col_spacing, row_spacing), geom.spacing_mm[:2], atol=_SPACING_TOL_MM):
            raise GeometryError(
                f"{path}: expected PixelSpacing {geom.spacing_mm[1]:.4g}\\{geom.spacing_mm[0]:.4g} mm, "
                f"got {row_spacing:.4g}\\{col_spacing:.4g}"
            )
        ijk = geom.lps_to_index(ipp)
        k = int(round(float(ijk[2])))
        if abs(ijk[0]) > _INDEX_TOL_VOX or abs(ijk[1]) > _INDEX_TOL_VOX or abs(ijk[2] - k) > _INDEX_TOL_VOX:
            raise GeometryError(
                f"{path}: expected ImagePositionPatient on a slice of the CT grid, got index "
                f"({ijk[0]:.3f}, {ijk[1]:.3f}, {ijk[2]:.3f})"
            )
        if not 0 <= k < n_k:
            raise GeometryError(f"{path}: expected a slice index in [0, {n_k}), got {k}")
        if k in by_k:
            raise GeometryError(f"{path}: expected one CT file per slice, got a second file for slice {k}")
        by_k[k] = ds
    missing = sorted(set(range(n_k)) - set(by_k))
    if missing:
        raise GeometryError(
            f"{ct.source or 'CT'}: expected a CT file for every slice of the grid, "
            f"got none for slices {missing[:10]}"
        )
    return [by_k[k] for k in range(n_k)]


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


def _tracking(lesion: Lesion) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=lesion.tracking_uid, identifier=lesion.lesion_id)


def _finding_sites(lesion: Lesion) -> list[hd.sr.FindingSite] | None:
    code = ORGAN_CODES.get("lymph_node" if lesion.is_lymph_node else lesion.organ)
    return [hd.sr.FindingSite(anatomic_location=code)] if code is not None else None


def _axis_region(
    endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]],
    ct: CtImage,
    slices: list[pydicom.Dataset],
    lesion_id: str,
    what: str,
) -> hd.sr.ImageRegion:
    """Map two LPS end points to a POLYLINE SCOORD on their (common) axial slice.

    SCOORD pixel coordinates put (0, 0) at the top-left *corner* of the top-left pixel (PS3.3 C.18.6.1.1), so
    the centre of voxel column i is at x = i + 0.5.
    """
    ijk = ct.geometry.lps_to_index(np.asarray(endpoints_mm, dtype=float))
    ks = np.round(ijk[:, 2]).astype(int)
    if ks[0] != ks[1] or np.any(np.abs(ijk[:, 2] - ks) > 0.05) or not 0 <= ks[0] < len(slices):
        raise MeasurementError(
            f"lesion {lesion_id}: expected the {what} end points on one slice of the CT grid, "
            "got slice indices "
            f"{tuple(np.round(ijk[:, 2], 3))}"
        )
    graphic = (ijk[:, :2] + 0.5).astype(np.float32)
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=graphic,
        source_image=hd.sr.SourceImageForRegion.from_source_image(slices[int(ks[0])]),
    )


def write_dicom_outputs(
    ct_files: Sequence[Path],
    ct: CtImage,
    masks: Sequence[LesionMask] | Mapping[str, LesionMask],
    measurements: Sequence[LesionMeasurement],
    lesions: Sequence[Lesion],
    out_dir: Path,
    *,
    scan_date: dt.date | None = None,
    time_point: str | None = None,
    patient_attributes: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``seg.dcm`` (BINARY SEG) and ``sr_tid1500.dcm`` (TID 1500 SR) for one timepoint into ``out_dir``.

    ``ct_files`` are the source CT slice files of ``ct`` (the masks must be on exactly that grid);
    ``measurements`` are this timepoint's LesionMeasurements; ``lesions`` give identity (tracking UID, organ)
    and may include lesions not present now. ``masks`` is a list paired to measurements by ``lesion_id`` (else
    by label) or a mapping lesion_id -> mask. ``scan_date`` (default: the measurements' scan_date, else the CT
    StudyDate) fixes ContentDate/Time; ``time_point`` labels the TID 1502 time point context (default: the
    ISO scan date). ``patient_attributes`` overrides Patient-module attributes copied from the CT (e.g.
    ``{"PatientID": pseudonym, "PatientName": "", "PatientBirthDate": ""}``; set by the pipeline for
    pseudonymised and de-identified outputs). Returns the written paths (SEG omitted when no lesion has
    voxels).
    """
    out_dir = Path(out_dir)
    lesion_by_id = {lesion.lesion_id: lesion for lesion in lesions}
    for meas in measurements:
        if meas.lesion_id not in lesion_by_id:
            raise MeasurementError(
                f"lesion {meas.lesion_id}: expected a Lesion with this lesion_id (tracking UID), "
                "got none among "
                f"{sorted(lesion_by_id)}"
            )
    if len({m.lesion_id for m in measurements}) != len(measurements):
        raise MeasurementError(
            "expected one measurement per lesion for a timepoint, got duplicate lesion_ids"
        )

    datasets = _read_ct_datasets(ct_files)
    slices = _datasets_by_slice(datasets, ct, ct_files)
    paired = _pair_masks(masks, measurements)
    for lesion_id, mask in paired.items():
        if not mask.geometry.is_close(ct.geometry):
            raise GeometryError(
                f"{mask.source_path or mask.label}: expected the mask of lesion {lesion_id} on the CT grid, "
                "got "
                f"{ct.geometry.describe_difference(mask.geometry)}"
            )

    first = slices[0]
    if scan_date is None:
        dates = {m.scan_date for m in measurements if m.scan_date is not None}
        if len(dates) > 1:
            raise MeasurementError(f"expected measurements of one timepoint, got scan dates {sorted(dates)}")
        scan_date = dates.pop() if dates else None
    if scan_date is None:
        study_date = str(getattr(first, "StudyDate", "") or "")
        if len(study_date) != 8:
            raise DicomReadError(
                f"{ct_files[0]}: expected a StudyDate (YYYYMMDD) to date the outputs when no scan_date "
                "is given, "
                f"got {study_date!r}"
            )
        scan_date = dt.datetime.strptime(study_date, "%Y%m%d").date()
    content_time = dt.time(0, 0, 0)
    series_key = (first.StudyInstanceUID, first.SeriesInstanceUID, scan_date.isoformat())

    # Segments: lesions with voxels, in the order of ``lesions`` (stable across timepoints).
    present = [m for m in measurements if m.voxel_count > 0]
    order = {lesion.lesion_id: n for n, lesion in enumerate(lesions)}
    present.sort(key=lambda m: order[m.lesion_id])
    for meas in present:
        if meas.lesion_id not in paired:
            raise MaskError(
                f"lesion {meas.lesion_id}: expected a mask for a measurement with {meas.voxel_count} "
                "voxels, got none"
            )
        if paired[meas.lesion_id].voxel_count == 0:
            raise MaskError(
                f"lesion {meas.lesion_id}: expected a non-empty mask ({meas.voxel_count} voxels "
                "measured), got 0"
            )

    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    seg = None
    segment_number: dict[str, int] = {}
    if present:
        descriptions = []
        pixels = np.zeros((*ct.geometry.shape, len(present)), dtype=np.uint8)
        for n, meas in enumerate(present, start=1):
            lesion = lesion_by_id[meas.lesion_id]
            segment_number[meas.lesion_id] = n
            pixels[..., n - 1] = paired[meas.lesion_id].mask
            region = ORGAN_CODES.get("lymph_node" if lesion.is_lymph_node else lesion.organ)
            descriptions.append(
                hd.seg.SegmentDescription(
                    segment_number=n,
                    segment_label=lesion.lesion_id,
                    segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                    segmented_property_type=codes.SCT.Neoplasm,
                    # The masks come from the input archive (reader or annotator unknown to us): we re-encode
                    # them, so MANUAL is the least wrong generic claim; our software is named in the header.
                    algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
                    tracking_uid=lesion.tracking_uid,
                    tracking_id=lesion.lesion_id,
                    anatomic_regions=[region] if region is not None else None,
                )
            )
        seg = hd.seg.Segmentation(
            source_images=slices,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=_uid("seg-series", *series_key),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=_uid("seg-instance", *series_key),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name="hpd-imaging",
            software_versions=__version__,
            device_serial_number="0",
            content_description="Lesions (tracked)",
            content_label="LESIONS",
            specific_character_set=SPECIFIC_CHARACTER_SET,
            content_date=scan_date,
            content_time=content_time,
            series_description="hpd-imaging lesions",
        )
        _enforce_value_lengths(seg, Path(ct_files[0]))
        # highdicom's random DimensionOrganizationUID is derived from the SEG's identity instead
        _pin_stamps(seg, scan_date, content_time, _uid("seg-dimension-organization", *series_key))
        seg_path = out_dir / SEG_FILENAME
        _save(seg, seg_path, patient_attributes)
        written.append(seg_path)
        logger.info("wrote SEG with %d segments to %s", len(present), seg_path)

    sr = _build_sr(
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
        time_point=time_point or scan_date.isoformat(),
    )
    _enforce_value_lengths(sr, Path(ct_files[0]))
    sr_path = out_dir / SR_FILENAME
    _save(sr, sr_path, patient_attributes)
    written.append(sr_path)
    logger.info("wrote TID 1500 SR with %d lesions to %s", len(measurements), sr_path)
    return written


def _save(ds: pydicom.Dataset, path: Path, patient_attributes: Mapping[str, str] | None = None) -> None:
    """Serialise in memory, then write atomically (temporary name + rename): a killed run never leaves a
    half-written DICOM file that a rerun or a viewer would take for a finished one."""
    for keyword, value in (patient_attributes or {}).items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    atomic.write_bytes(path, buffer.getvalue())


# Maximum value lengths of the string VRs that highdicom copies from the source CT (PS3.5 table 6.2-1).
_MAX_LENGTH = {"SH": 16, "LO": 64}


def _enforce_value_lengths(ds: pydicom.Dataset, source: Path) -> None:
    """Truncate over-long SH/LO values copied from the source CT (e.g. a 17-character Study ID).

    Lenient reading, strict writing: real exports carry such values, but our objects must pass dciodvfy.
    Every truncation is logged with the attribute, the source file and the original value.
    """
    for elem in ds:
        limit = _MAX_LENGTH.get(elem.VR)
        if limit is None or elem.value is None or elem.VM != 1:
            continue
        value = str(elem.value)
        if len(value) > limit:
            logger.warning(
                "%s: %s %r is longer than %d characters (VR %s); truncated in the written object",
                source,
                elem.keyword,
                value,
                limit,
                elem.VR,
            )
            elem.value = value[:limit]


def _pin_stamps(
    ds: pydicom.Dataset,
    scan_date: dt.date,
    content_time: dt.time,
    dimension_organization_uid: str | None = None,
) -> None:
    """Creation stamps pinned to the scan date/time for byte-stable reruns (hpd_imaging.dicom_stamps)."""
    pin_creation_stamps(
        ds,
        scan_date.strftime("%Y%m%d"),
        content_time.strftime("%H%M%S"),
        dimension_organization_uid=dimension_organization_uid,
    )


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


def _build_sr(
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
    time_point: str,
) -> hd.sr.Comprehensive3DSR:
    mm = codes.UCUM.Millimeter
    algorithm = hd.sr.AlgorithmIdentification(name="hpd-imaging measure", version=__version__)
    time_ctx = hd.sr.TimePointContext(time_point=time_point)
    groups: list[object] = []
    for meas in sorted(measurements, key=lambda m: order[m.lesion_id]):
        lesion = lesion_by_id[meas.lesion_id]
        common = dict(
            tracking_identifier=_tracking(lesion),
            time_point_context=time_ctx,
            finding_type=codes.SCT.Lesion,
            algorithm_id=algorithm,
            finding_sites=_finding_sites(lesion),
        )
        if meas.voxel_count == 0 or seg is None:
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    **common,  # type: ignore[arg-type]
                    measurements=[
                        hd.sr.Measurement(
                            name=codes.SCT.Volume, value=meas.volume_mm3, unit=codes.UCUM.CubicMillimeter
                        ),
                        hd.sr.Measurement(
                            name=codes.SCT.LongAxis, value=meas.longest_axial_diameter_mm, unit=mm
                        ),
                        hd.sr.Measurement(name=codes.SCT.ShortAxis, value=meas.short_axis_mm, unit=mm),
                    ],
                )
            )
            continue
        volume_measurements = [
            hd.sr.Measurement(name=codes.SCT.Volume, value=meas.volume_mm3, unit=codes.UCUM.CubicMillimeter)
        ]
        planar = []
        for name, value, endpoints in (
            (codes.SCT.LongAxis, meas.longest_axial_diameter_mm, meas.long_axis_endpoints_mm),
            (codes.SCT.ShortAxis, meas.short_axis_mm, meas.short_axis_endpoints_mm),
        ):
            if endpoints is None:
                # e.g. measurements imported from a table: keep the number (in the volumetric group, tied to
                # the SEG segment) rather than fail the timepoint, but it cannot be drawn in OHIF.
                logger.warning(
                    "lesion %s: no %s end points; reported without a polyline", meas.lesion_id, name.meaning
                )
                volume_measurements.append(hd.sr.Measurement(name=name, value=value, unit=mm))
                continue
            planar.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    **common,  # type: ignore[arg-type]
                    referenced_region=_axis_region(
                        endpoints, ct, slices, meas.lesion_id, name.meaning.lower()
                    ),
                    measurements=[hd.sr.Measurement(name=name, value=value, unit=mm)],
                )
            )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                **common,  # type: ignore[arg-type]
                referenced_segment=_referenced_segment(seg, segment_number[meas.lesion_id]),
                measurements=volume_measurements,
            )
        )
        groups.extend(planar)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid("device", "hpd-imaging"), name="hpd-imaging", manufacturer_name=MANUFACTURER
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,  # type: ignore[arg-type]
    )
    evidence: list[pydicom.Dataset] = list(slices) + ([seg] if seg is not None else [])
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=_uid("sr-series", *series_key),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=_uid("sr-instance", *series_key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        specific_character_set=SPECIFIC_CHARACTER_SET,
        content_date=scan_date,
        content_time=content_time,
        series_description="hpd-imaging lesion measurements (TID 1500)",
    )
    _pin_stamps(sr, scan_date, content_time)
    return sr
