"""Header extraction: one file -> one small JSON-able record (no pixel data is ever read).

The record, not the pydicom dataset, is what the header-index cache stores, so it holds only the fields the
grouping, splitting, choice and pairing rules use. Image files are read only up to group 0x0028 (image pixel
module), which skips big private blocks (Siemens CSA in 0x0029) and the pixels; segmentations are read in full
(without pixels) because their references live in sequences further down.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

logger = logging.getLogger(__name__)

# Bump when the record layout or the extraction rules change: the cache drops records of other versions.
RECORD_VERSION = 6

SEG_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
}
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
}


def _stop_after_image_pixel_module(tag: BaseTag, vr: str | None, length: int) -> bool:
    """Stop once past group 0x0028: everything the image rules need is in groups 0x0008-0x0028."""
    return tag.group > 0x0028


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, None)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _floats(ds: Dataset, keyword: str) -> list[float] | None:
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, pydicom.multival.MultiValue | list | tuple):
            values = [float(v) for v in value]
        else:
            values = [float(value)]
    except (TypeError, ValueError, OverflowError):
        return None
    # NaN/inf (damaged or hostile files) count as missing: the grouping rules round and compare positions
    return values if all(math.isfinite(v) for v in values) else None


def _float(ds: Dataset, keyword: str) -> float | None:
    values = _floats(ds, keyword)
    return values[0] if values else None


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _looks_like_dicom(path: Path) -> tuple[bool, bool]:
    """(is DICOM with a Part 10 preamble, might be a preamble-less ACR-NEMA/raw DICOM stream)."""
    with open(path, "rb") as fp:
        head = fp.read(132)
    if len(head) == 132 and head[128:132] == b"DICM":
        return True, False
    # raw (no preamble) streams start with a group 0x0002 or 0x0008 element in little endian
    return False, len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")


def _common(ds: Dataset) -> dict[str, Any]:
    return {
        "sop_class_uid": _text(ds, "SOPClassUID"),
        "sop_instance_uid": _text(ds, "SOPInstanceUID"),
        "modality": _text(ds, "Modality").upper(),
        "patient_id": _text(ds, "PatientID"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "for_uid": _text(ds, "FrameOfReferenceUID"),
        "study_date": _text(ds, "StudyDate"),
        "series_date": _text(ds, "SeriesDate"),
        "acquisition_date": _text(ds, "AcquisitionDate"),
        "content_date": _text(ds, "ContentDate"),
        "series_number": _int(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription"),
    }


def _image_fields(ds: Dataset) -> dict[str, Any]:
    image_type = ds.get("ImageType", None)
    if image_type is None:
        types: list[str] = []
    elif isinstance(image_type, str):
        types = [t.strip().upper() for t in image_type.split("\\")]
    else:
        types = [str(t).strip().upper() for t in image_type]
    return {
        "image_type": types,
        "iop": _floats(ds, "ImageOrientationPatient"),
        "ipp": _floats(ds, "ImagePositionPatient"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "pixel_spacing": _floats(ds, "PixelSpacing"),
        "slice_thickness": _float(ds, "SliceThickness"),
        "kernel": _text(ds, "ConvolutionKernel"),
        "acquisition_number": _int(ds, "AcquisitionNumber"),
        "temporal_position_index": _int(ds, "TemporalPositionIndex"),
        "acquisition_time": _text(ds, "AcquisitionTime"),
        "instance_number": _int(ds, "InstanceNumber"),
        "n_frames": _int(ds, "NumberOfFrames") or 1,
    }


def _functional_group_geometry(ds: Dataset) -> dict[str, Any]:
    """IOP, pixel spacing and per-frame positions of a multi-frame object (Enhanced CT, SEG)."""
    out: dict[str, Any] = {}
    shared = ds.get("SharedFunctionalGroupsSequence", None)
    shared_item = shared[0] if shared else Dataset()
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", None) or []

    def pick(item: Dataset, seq: str, keyword: str) -> list[float] | None:
        s = item.get(seq, None)
        return _floats(s[0], keyword) if s else None

    first = per_frame[0] if per_frame else Dataset()
    out["iop"] = pick(shared_item, "PlaneOrientationSequence", "ImageOrientationPatient") or pick(
        first, "PlaneOrientationSequence", "ImageOrientationPatient"
    )
    out["pixel_spacing"] = pick(shared_item, "PixelMeasuresSequence", "PixelSpacing") or pick(
        first, "PixelMeasuresSequence", "PixelSpacing"
    )
    thickness = pick(shared_item, "PixelMeasuresSequence", "SliceThickness") or pick(
        first, "PixelMeasuresSequence", "SliceThickness"
    )
    out["slice_thickness"] = thickness[0] if thickness else None
    positions = []
    source_instances: set[str] = set()
    for item in per_frame:
        pos = pick(item, "PlanePositionSequence", "ImagePositionPatient")
        if pos is not None:
            positions.append(pos)
        for deriv in item.get("DerivationImageSequence", None) or []:
            for src in deriv.get("SourceImageSequence", None) or []:
                uid = _text(src, "ReferencedSOPInstanceUID")
                if uid:
                    source_instances.add(uid)
    out["frame_positions"] = positions
    out["frame_source_instances"] = sorted(source_instances)
    return out


def _seg_fields(ds: Dataset) -> dict[str, Any]:
    ref_series: list[str] = []
    ref_instances: set[str] = set()
    for item in ds.get("ReferencedSeriesSequence", None) or []:
        uid = _text(item, "SeriesInstanceUID")
        if uid:
            ref_series.append(uid)
        for inst in item.get("ReferencedInstanceSequence", None) or []:
            sop = _text(inst, "ReferencedSOPInstanceUID")
            if sop:
                ref_instances.add(sop)
    for item in ds.get("SourceImageSequence", None) or []:
        sop = _text(item, "ReferencedSOPInstanceUID")
        if sop:
            ref_instances.add(sop)
    geo = _functional_group_geometry(ds)
    ref_instances.update(geo.pop("frame_source_instances"))
    segments = [
        _text(s, "SegmentLabel") or str(_int(s, "SegmentNumber"))
        for s in ds.get("SegmentSequence", None) or []
    ]
    # (label, category code, category meaning, property type meaning): the lesion rules' evidence
    segment_codes = []
    for s in ds.get("SegmentSequence", None) or []:
        category = (s.get("SegmentedPropertyCategoryCodeSequence", None) or [Dataset()])[0]
        prop = (s.get("SegmentedPropertyTypeCodeSequence", None) or [Dataset()])[0]
        segment_codes.append(
            [
                _text(s, "SegmentLabel") or str(_int(s, "SegmentNumber")),
                _text(category, "CodeValue"),
                _text(category, "CodeMeaning"),
                _text(prop, "CodeMeaning"),
                _int(s, "SegmentNumber"),
                _text(prop, "CodeValue"),
            ]
        )
    return {
        "ref_series": ref_series,
        "ref_instances": sorted(ref_instances),
        "ref_for": [_text(ds, "FrameOfReferenceUID")] if _text(ds, "FrameOfReferenceUID") else [],
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "segments": segments,
        "segment_codes": segment_codes,
        "seg_type": _text(ds, "SegmentationType").upper(),
        **geo,
    }


def _contour_values(contour: Dataset) -> np.ndarray | None:
    """Finite ContourData values parsed from the raw bytes with numpy (None when absent or unparsable).

    Why not ``contour.ContourData``: pydicom makes one Python object per value; a contour of a million points
    (hostile or just huge) took seconds and hundreds of MB per file (docs/robustness.md).
    """
    tag = 0x30060050
    if tag not in contour:
        return None
    elem = contour.get_item(tag)
    if isinstance(elem, RawDataElement):
        text = bytes(elem.value or b"").decode("ascii", errors="replace")
    else:
        value = contour[tag].value
        text = "\\".join(str(v) for v in (value if isinstance(value, MultiValue | list | tuple) else [value]))
    text = text.strip(" \x00")
    if not text:
        return None
    try:
        values = np.loadtxt(io.StringIO(text.replace("\\", "\n")), dtype=np.float64, ndmin=1, comments=None)
    except ValueError:
        return None
    values = values[: values.size - values.size % 3]
    return values if values.size and np.all(np.isfinite(values)) else None  # the loader reports bad ones


def _rtstruct_fields(ds: Dataset) -> dict[str, Any]:
    ref_series: list[str] = []
    ref_instances: set[str] = set()
    ref_for: list[str] = []
    for fr in ds.get("ReferencedFrameOfReferenceSequence", None) or []:
        uid = _text(fr, "FrameOfReferenceUID")
        if uid:
            ref_for.append(uid)
        for study in fr.get("RTReferencedStudySequence", None) or []:
            for series in study.get("RTReferencedSeriesSequence", None) or []:
                suid = _text(series, "SeriesInstanceUID")
                if suid:
                    ref_series.append(suid)
                for img in series.get("ContourImageSequence", None) or []:
                    sop = _text(img, "ReferencedSOPInstanceUID")
                    if sop:
                        ref_instances.add(sop)
    rois = []
    types_by_number = {
        _int(obs, "ReferencedROINumber"): _text(obs, "RTROIInterpretedType")
        for obs in ds.get("RTROIObservationsSequence", None) or []
    }
    roi_types = []
    for roi in ds.get("StructureSetROISequence", None) or []:
        rois.append(_text(roi, "ROIName"))
        roi_types.append(types_by_number.get(_int(roi, "ROINumber"), ""))
        uid = _text(roi, "ReferencedFrameOfReferenceUID")
        if uid and uid not in ref_for:
            ref_for.append(uid)
    # bounding box of all contour points (LPS mm): the geometry fallback when references are stale
    lo = [float("inf")] * 3
    hi = [float("-inf")] * 3
    n_contours = 0
    contour_refs: set[str] = set()
    for rc in ds.get("ROIContourSequence", None) or []:
        for contour in rc.get("ContourSequence", None) or []:
            n_contours += 1
            for img in contour.get("ContourImageSequence", None) or []:
                sop = _text(img, "ReferencedSOPInstanceUID")
                if sop:
                    contour_refs.add(sop)
            pts = _contour_values(contour)
            if pts is None or pts.size < 3:
                continue
            for axis in range(3):
                axis_values = pts[axis::3]
                lo[axis] = min(lo[axis], float(axis_values.min()))
                hi[axis] = max(hi[axis], float(axis_values.max()))
    ref_instances.update(contour_refs)
    return {
        "ref_series": ref_series,
        "ref_instances": sorted(ref_instances),
        "ref_for": ref_for,
        "rois": rois,
        "roi_types": roi_types,
        "n_contours": n_contours,
        "contour_bbox": [lo, hi] if n_contours and lo[0] != float("inf") else None,
    }


def read_header(path: Path) -> dict[str, Any]:
    """Describe one file from its header. Never raises: unreadable files become ``kind == "error"``.

    Kinds: ``image`` (anything with pixels: CT, MR, PT, ...), ``seg``, ``rtstruct``, ``dicomdir``,
    ``other_dicom`` (SR, presentation states, ...), ``non_dicom`` and ``error``.
    """
    try:
        part10, maybe_raw = _looks_like_dicom(path)
    except OSError as exc:
        return {"kind": "error", "message": f"cannot open: {exc}"}
    if not part10 and not maybe_raw:
        return {"kind": "non_dicom"}
    try:
        with open(path, "rb") as fp:
            ds = read_partial(fp, stop_when=_stop_after_image_pixel_module, force=not part10)
        record = _common(ds)
        media_class = _text(ds.file_meta, "MediaStorageSOPClassUID") if hasattr(ds, "file_meta") else ""
        sop_class = record["sop_class_uid"] or media_class
        modality = record["modality"]
        if media_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
            return {"kind": "dicomdir"}
        if sop_class in SEG_SOP_CLASSES or modality == "SEG":
            full = pydicom.dcmread(path, stop_before_pixels=True, force=not part10)
            return {"kind": "seg", **_common(full), **_seg_fields(full)}
        if sop_class == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
            full = pydicom.dcmread(path, stop_before_pixels=True, force=not part10)
            return {"kind": "rtstruct", **_common(full), **_rtstruct_fields(full)}
        if not record["sop_class_uid"] and not modality:
            if not part10:
                return {"kind": "non_dicom"}  # forced parse of something that only looked like DICOM
            return {
                "kind": "error",
                "message": "DICOM file without SOPClassUID or Modality (damaged/truncated?)",
            }
        if _int(ds, "Rows") is None:
            if sop_class in _IMAGE_SOP_CLASSES or modality in ("CT", "MR", "PT"):
                return {"kind": "error", "message": "image header without Rows (damaged or truncated file?)"}
            return {"kind": "other_dicom", **record}
        fields = _image_fields(ds)
        if fields["n_frames"] > 1 or fields["ipp"] is None:
            # Enhanced (multi-frame) images keep their geometry in the functional groups further down
            full = pydicom.dcmread(path, stop_before_pixels=True, force=not part10)
            geo = _functional_group_geometry(full)
            geo.pop("frame_source_instances")
            for key in ("iop", "pixel_spacing", "slice_thickness"):
                if fields.get(key) is None:
                    fields[key] = geo[key]
            fields["frame_positions"] = geo["frame_positions"]
            if fields["ipp"] is None and geo["frame_positions"]:
                fields["ipp"] = geo["frame_positions"][0]
            if not fields["kernel"]:
                fields["kernel"] = _functional_kernel(full)
        return {"kind": "image", **record, **fields}
    except InvalidDicomError as exc:
        if not part10:
            return {"kind": "non_dicom"}
        return {"kind": "error", "message": f"invalid DICOM: {exc}"}
    except Exception as exc:  # noqa: BLE001 - a damaged file must become an issue, never end the scan
        return {"kind": "error", "message": f"cannot parse DICOM header: {type(exc).__name__}: {exc}"}


def _functional_kernel(ds: Dataset) -> str:
    shared = ds.get("SharedFunctionalGroupsSequence", None)
    if shared:
        recon = shared[0].get("CTReconstructionSequence", None)
        if recon:
            return _text(recon[0], "ConvolutionKernel")
    return ""


#: a NIfTI/NRRD volume is a label map when its values are non-negative integers with at most this many
#: distinct values (TotalSegmentator's full map has 117 labels; a CT has thousands of distinct HU values)
LABELMAP_MAX_DISTINCT = 1000
#: volumes larger than this (voxels x components) are not read at scan time; the name rule decides
CONTENT_CHECK_MAX_VOXELS = 400_000_000


def volume_content(array: np.ndarray) -> dict[str, Any]:
    """``content`` ("labelmap" or "image") of a volume's voxels, with the evidence (range, distinct values).

    Why by content: an archive of NIfTI CTs and label maps (nnU-Net, TotalSegmentator) names them freely;
    ``ct.nii.gz`` next to ``seg.nii.gz`` was classified by name and the CT became a label map. Intensities
    decide: negative or non-integer values, or more distinct values than a label map has, make an image.
    """
    if array.size == 0:
        return {"content": "image", "content_reason": "no voxels"}
    lo, hi = float(array.min()), float(array.max())
    evidence: dict[str, Any] = {"value_min": lo, "value_max": hi}
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        return {**evidence, "content": "image", "content_reason": "non-integer intensities"}
    if lo < 0:
        return {**evidence, "content": "image", "content_reason": f"negative values (min {lo:g})"}
    if hi > 65535:
        return {**evidence, "content": "image", "content_reason": f"values up to {hi:g}"}
    counts = np.bincount(array.astype(np.int64, copy=False).ravel(), minlength=1)
    distinct = int(np.count_nonzero(counts))
    evidence["n_distinct"] = distinct
    if hi == 0:  # all zero: an empty label map or a blank image, the voxels cannot tell; the name decides
        return {**evidence, "content_reason": "every voxel is 0"}
    if distinct > LABELMAP_MAX_DISTINCT:
        return {**evidence, "content": "image", "content_reason": f"{distinct} distinct values"}
    return {**evidence, "content": "labelmap", "content_reason": f"{distinct} non-negative integer values"}


def read_labelmap_header(path: Path) -> dict[str, Any]:
    """Grid of a NIfTI/NRRD/MetaImage volume from its header, and whether its voxels are a label map.

    The voxels are read once at scan time (the record is cached) to tell a CT from a label map by content
    (:func:`volume_content`); volumes over ``CONTENT_CHECK_MAX_VOXELS`` keep the name rule.
    """
    import math as _math

    import SimpleITK as sitk  # noqa: N813 - the conventional alias

    from hpd_imaging.io.filetype import sitk_reader

    try:
        from hpd_imaging.io._niftiguard import nifti_header_problem

        if (problem := nifti_header_problem(path)) is not None:  # ITK hangs on such headers (issue 16)
            return {"kind": "error", "message": problem}
        reader = sitk_reader(path)
        reader.ReadImageInformation()
        record: dict[str, Any] = {
            "kind": "labelmap",
            "size": list(reader.GetSize()),
            "spacing": list(reader.GetSpacing()),
            "origin": list(reader.GetOrigin()),
            "direction": list(reader.GetDirection()),
            "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID()),
            "components": int(reader.GetNumberOfComponents()),
        }
    except Exception as exc:  # noqa: BLE001 - reported as an issue by the scanner
        return {"kind": "error", "message": f"cannot read label-map header: {exc}"}
    n_voxels = _math.prod(int(n) for n in record["size"]) * max(record["components"], 1)
    if n_voxels <= CONTENT_CHECK_MAX_VOXELS:
        try:
            image = reader.Execute()  # keep a reference: a view of a temporary image reads freed memory
            record.update(volume_content(sitk.GetArrayViewFromImage(image)))
            del image
        except Exception as exc:  # noqa: BLE001 - header known, voxels unreadable: the loader will say so
            record["content_reason"] = f"voxels unreadable at scan time: {type(exc).__name__}: {exc}"
    return record
