"""Tiny DICOM files for the archive tests (4x4 CT slices, header-only SEG and RTSTRUCT).

The scanner reads headers only, so SEG/RTSTRUCT here carry the reference and geometry attributes the pairing
rules use and no pixel data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def _base(sop_class: str, sop_uid: str, modality: str, **kw: object) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = kw.get("patient_id", "P1")
    ds.PatientName = "Test^Patient"
    ds.StudyDate = kw.get("study_date", "20240101")
    ds.StudyInstanceUID = kw.get("study_uid", "1.2.3.1")
    ds.SeriesInstanceUID = kw.get("series_uid", "1.2.3.1.1")
    for_uid = kw.get("for_uid", "1.2.3.9")
    if for_uid:
        ds.FrameOfReferenceUID = for_uid
    ds.SeriesNumber = kw.get("series_number", 1)
    ds.SeriesDescription = kw.get("description", "")
    # attributes the DICOMDIR record creators of pydicom.fileset require
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.InstanceNumber = 1
    ds.ContentDate = kw.get("study_date", "20240101")
    ds.ContentTime = "120000"
    return ds


def ct_slice(
    *,
    z: float,
    patient_id: str = "P1",
    study_date: str = "20240101",
    study_uid: str = "1.2.3.1",
    series_uid: str = "1.2.3.1.1",
    for_uid: str = "1.2.3.9",
    sop_uid: str | None = None,
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    ipp_xy: tuple[float, float] = (-2.0, -2.0),
    rows: int = 4,
    columns: int = 4,
    spacing: tuple[float, float] = (1.0, 1.0),
    thickness: float = 1.0,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    kernel: str = "STANDARD",
    acquisition_number: int | None = 1,
    series_number: int = 1,
    description: str = "",
) -> Dataset:
    sop_uid = sop_uid or generate_uid()
    ds = _base(
        CT_IMAGE,
        sop_uid,
        "CT",
        patient_id=patient_id,
        study_date=study_date,
        study_uid=study_uid,
        series_uid=series_uid,
        for_uid=for_uid,
        series_number=series_number,
        description=description,
    )
    ds.ImageType = list(image_type)
    ds.ImageOrientationPatient = [float(v) for v in iop]
    # position: in-plane offset along row/column cosines, z along the slice normal
    r, c = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    n = np.cross(r, c)
    pos = ipp_xy[0] * r + ipp_xy[1] * c + z * n
    ds.ImagePositionPatient = [round(float(v), 4) for v in pos]
    ds.Rows, ds.Columns = rows, columns
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = thickness
    ds.ConvolutionKernel = kernel
    if acquisition_number is not None:
        ds.AcquisitionNumber = acquisition_number
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = np.zeros((rows, columns), dtype=np.int16).tobytes()
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path, n: int, *, z0: float = 0.0, dz: float = 1.0, prefix: str = "", **kw: object
) -> list[Path]:
    """n slices ``folder/<prefix>NNN.dcm`` at z0, z0+dz, ..."""
    return [write(ct_slice(z=z0 + i * dz, **kw), folder / f"{prefix}{i:03d}.dcm") for i in range(n)]  # type: ignore[arg-type]


def seg(
    *,
    ref_series_uid: str,
    ref_sop_uids: Sequence[str] = (),
    frame_z: Sequence[float] = (0.0,),
    patient_id: str = "P1",
    for_uid: str = "1.2.3.9",
    study_uid: str = "1.2.3.1",
    study_date: str = "20240101",
    spacing: tuple[float, float] = (1.0, 1.0),
) -> Dataset:
    ds = _base(
        SEG_STORAGE,
        generate_uid(),
        "SEG",
        patient_id=patient_id,
        for_uid=for_uid,
        study_uid=study_uid,
        study_date=study_date,
        series_uid=generate_uid(),
        series_number=99,
    )
    ref = Dataset()
    ref.SeriesInstanceUID = ref_series_uid
    insts = []
    for uid in ref_sop_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE
        item.ReferencedSOPInstanceUID = uid
        insts.append(item)
    ref.ReferencedInstanceSequence = DicomSequence(insts)
    ds.ReferencedSeriesSequence = DicomSequence([ref])
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    measures = Dataset()
    measures.PixelSpacing = list(spacing)
    measures.SliceThickness = 1.0
    shared.PlaneOrientationSequence = DicomSequence([orient])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for z in frame_z:
        f = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [-2.0, -2.0, float(z)]
        f.PlanePositionSequence = DicomSequence([pp])
        frames.append(f)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = 4, 4
    ds.ContentLabel = "LESIONS"
    seg_item = Dataset()
    seg_item.SegmentNumber = 1
    seg_item.SegmentLabel = "lesion 1"
    ds.SegmentSequence = DicomSequence([seg_item])
    return ds


def rtstruct(
    *,
    ref_series_uid: str | None,
    ref_for_uid: str | None,
    contour_z: Sequence[float],
    contour_sop_uids: Sequence[str] = (),
    patient_id: str = "P1",
    study_uid: str = "1.2.3.1",
    study_date: str = "20240101",
) -> Dataset:
    ds = _base(
        RTSTRUCT_STORAGE,
        generate_uid(),
        "RTSTRUCT",
        patient_id=patient_id,
        study_uid=study_uid,
        study_date=study_date,
        series_uid=generate_uid(),
        for_uid="",
        series_number=98,
    )
    if ref_for_uid is not None:
        fr = Dataset()
        fr.FrameOfReferenceUID = ref_for_uid
        if ref_series_uid is not None:
            st = Dataset()
            st.ReferencedSOPInstanceUID = study_uid
            se = Dataset()
            se.SeriesInstanceUID = ref_series_uid
            imgs = []
            for uid in contour_sop_uids:
                item = Dataset()
                item.ReferencedSOPInstanceUID = uid
                imgs.append(item)
            se.ContourImageSequence = DicomSequence(imgs)
            st.RTReferencedSeriesSequence = DicomSequence([se])
            fr.RTReferencedStudySequence = DicomSequence([st])
        ds.ReferencedFrameOfReferenceSequence = DicomSequence([fr])
    ds.StructureSetLabel = "GTV"
    ds.StructureSetDate = study_date
    ds.StructureSetTime = "120000"
    roi = Dataset()
    roi.ROINumber = 1
    roi.ROIName = "GTV"
    if ref_for_uid:
        roi.ReferencedFrameOfReferenceUID = ref_for_uid
    ds.StructureSetROISequence = DicomSequence([roi])
    contours = []
    for z in contour_z:
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        c.NumberOfContourPoints = 3
        c.ContourData = [-1.0, -1.0, z, 1.0, -1.0, z, 0.0, 1.0, z]
        contours.append(c)
    rc = Dataset()
    rc.ReferencedROINumber = 1
    rc.ContourSequence = DicomSequence(contours)
    ds.ROIContourSequence = DicomSequence([rc])
    return ds
