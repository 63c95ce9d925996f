"""Writing the synthetic exams as standard DICOM: CT Image Storage series and DICOM SEG (highdicom).

Reproducibility: every UID comes from ``pydicom.uid.generate_uid(entropy_srcs=...)`` fed with the settings
hash and the object's identity (patient, date, kind, index), and every date/time is derived from the scan
date,
so the same seed and settings give byte-identical files. highdicom stamps ContentDate/ContentTime and the
ContributionDateTime with "now" and draws a random DimensionOrganizationUID; we overwrite them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from hpd_imaging import __version__
from hpd_imaging.dicom_stamps import pin_creation_stamps
from hpd_imaging.synth.render import RESCALE_INTERCEPT, ExamGrid

MANUFACTURER = "hpd-imaging"
MODEL_NAME = "hpd-imaging synth"
SCAN_TIME = "093000"
TRANSFER_SYNTAX = {"none": ExplicitVRLittleEndian, "rle": RLELossless, "jpeg2000": JPEG2000Lossless}


def make_uid(*parts: object) -> str:
    """Deterministic DICOM UID (pydicom's root, 2.25-style hash of the parts)."""
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


@dataclass(frozen=True)
class ExamIds:
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    age: int
    scan_date: dt.date
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    accession: str
    uid_salt: str  # settings hash + patient + date: entropy of the per-instance UIDs


def _dicom_date(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _patient_module(ds: Dataset, ids: ExamIds) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = ids.patient_name
    ds.PatientID = ids.patient_id
    ds.PatientBirthDate = ids.birth_date
    ds.PatientSex = ids.sex
    ds.PatientAge = f"{ids.age:03d}Y"
    ds.StudyInstanceUID = ids.study_uid
    ds.StudyDate = _dicom_date(ids.scan_date)
    ds.StudyTime = SCAN_TIME
    ds.StudyID = ids.accession[-8:]
    ds.AccessionNumber = ids.accession
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "CT CHEST ABDOMEN (synthetic)"


def write_ct_series(
    out_dir: Path, stored: np.ndarray, grid: ExamGrid, ids: ExamIds, compression: str = "none"
) -> list[Dataset]:
    """Write one single-frame CT Image Storage file per slice (``<n>.dcm``); return the datasets (headers
    are what SEG/RTSTRUCT reference)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tsyntax = TRANSFER_SYNTAX[compression]
    px = grid.spacing_mm
    datasets: list[Dataset] = []
    date = _dicom_date(ids.scan_date)
    for k in range(stored.shape[0]):
        ds = Dataset()
        sop_uid = make_uid(ids.uid_salt, "ct", k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"HPDIMG_{__version__}"[:16]
        ds.file_meta = meta
        _patient_module(ds, ids)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.InstanceCreationDate = date
        ds.InstanceCreationTime = SCAN_TIME
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Manufacturer = MANUFACTURER
        ds.ManufacturerModelName = MODEL_NAME
        ds.SoftwareVersions = __version__
        ds.SeriesInstanceUID = ids.series_uid
        ds.SeriesNumber = 2
        ds.SeriesDate = date
        ds.SeriesTime = SCAN_TIME
        ds.SeriesDescription = "Portal venous 5mm" if grid.spacing_mm[2] == 5.0 else "Portal venous"
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.AcquisitionDate = date
        ds.AcquisitionTime = SCAN_TIME
        ds.ContentDate = date
        ds.ContentTime = SCAN_TIME
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = ids.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.KVP = 120
        ds.ConvolutionKernel = "STANDARD"
        z = grid.origin_mm[2] + k * px[2]
        ds.ImagePositionPatient = [f"{grid.origin_mm[0]:.4f}", f"{grid.origin_mm[1]:.4f}", f"{z:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = f"{z:.4f}"
        ds.SliceThickness = f"{px[2]:g}"
        ds.SpacingBetweenSlices = f"{px[2]:g}"
        ds.PixelSpacing = [f"{px[1]:.6g}", f"{px[0]:.6g}"]  # row spacing (j), column spacing (i)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = f"{RESCALE_INTERCEPT:g}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        if tsyntax != ExplicitVRLittleEndian:
            ds.compress(tsyntax, np.ascontiguousarray(stored[k]), generate_instance_uid=False)
        ds.save_as(out_dir / f"{k + 1}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return datasets


@dataclass(frozen=True)
class SegmentSpec:
    """One lesion segment of one exam."""

    number: int  # segment number / label value / ROI number
    label: str
    organ: str
    mask: np.ndarray  # bool [k,j,i] on the CT grid
    tracking_id: str | None
    tracking_uid: str | None


def _codes(organ: str):  # noqa: ANN202 - highdicom codes
    from pydicom.sr.codedict import codes

    region = {"lung": codes.SCT.Lung, "liver": codes.SCT.Liver, "lymph_node": codes.SCT.LymphNode}[organ]
    return codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm, region


def write_seg(
    path: Path, ct_datasets: Sequence[Dataset], segments: Sequence[SegmentSpec], ids: ExamIds
) -> None:
    """DICOM SEG (binary, one segment per lesion) referencing the CT slices; deterministic content."""
    import highdicom as hd

    path.parent.mkdir(parents=True, exist_ok=True)
    algo = hd.AlgorithmIdentificationSequence(
        name="hpd-imaging synth",
        version=__version__,
        family=hd.sr.CodedConcept("123109", "DCM", "Manual Processing"),
    )
    descriptions = []
    for seg in segments:
        category, prop, region = _codes(seg.organ)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=seg.number,
                segment_label=seg.label,
                segmented_property_category=category,
                segmented_property_type=prop,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algo,
                tracking_uid=seg.tracking_uid,
                tracking_id=seg.tracking_id,
                anatomic_regions=[region],
            )
        )
    # label map: segments never overlap (lesions are placed apart), 0 = background
    if segments:
        labels = np.zeros(segments[0].mask.shape, np.uint8)
        for seg in segments:
            labels[seg.mask] = seg.number
    else:
        raise ValueError("write_seg: expected at least one segment, got none")
    seg_ds = hd.seg.Segmentation(
        source_images=list(ct_datasets),
        pixel_array=labels,
        segmentation_type="BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=make_uid(ids.uid_salt, "seg-series"),
        series_number=300,
        sop_instance_uid=make_uid(ids.uid_salt, "seg"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="0",
        content_label="LESIONS",
        content_description="synthetic lesion masks",
        series_description="Lesion segmentation",
    )
    date = _dicom_date(ids.scan_date)
    seg_ds.ContentDate = date
    seg_ds.ContentTime = SCAN_TIME
    seg_ds.SeriesDate = date
    seg_ds.SeriesTime = SCAN_TIME
    # highdicom stamps "now" and a random dimension-organization UID: make both deterministic
    pin_creation_stamps(
        seg_ds,
        date,
        SCAN_TIME,
        dimension_organization_uid=make_uid(ids.uid_salt, "seg-dimension-organization"),
    )
    seg_ds.save_as(path, enforce_file_format=True)
