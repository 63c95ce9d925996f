"""Writers of tiny synthetic DICOM objects for the io tests (pydicom / highdicom, written into tmp_path).

A plain module (not conftest.py) so that test files import it by a unique name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def write_ct_series(
    folder: Path,
    positions: Sequence[Sequence[float]],
    slices: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    *,
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    slope: float = 1.0,
    intercept: float = -1024.0,
    names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    gantry_tilt: float | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str = "1.2.826.0.1.3680043.8.498.1",
    pixel_representation: int = 1,
) -> list[Path]:
    """Write one single-frame CT file per position; ``slices[n]`` holds *stored* values (int16 or uint16)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    paths = []
    for n, ipp in enumerate(positions):
        pixels = slices(n) if callable(slices) else slices[n]
        dtype = np.int16 if pixel_representation else np.uint16
        pixels = np.asarray(pixels).astype(dtype)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.Modality = "CT"
        ds.PatientID = "P1"
        ds.PatientName = "Test^Patient"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.SeriesNumber = 1
        ds.InstanceNumber = instance_numbers[n] if instance_numbers is not None else n + 1
        ds.ImagePositionPatient = [f"{float(x):.6f}" for x in ipp]
        ds.ImageOrientationPatient = [f"{float(x):.8f}" for x in orientation]
        ds.PixelSpacing = [f"{pixel_spacing[0]:g}", f"{pixel_spacing[1]:g}"]
        ds.SliceThickness = "1"
        if gantry_tilt is not None:
            ds.GantryDetectorTilt = f"{gantry_tilt:g}"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = pixel_representation
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.PixelData = pixels.tobytes()
        name = names[n] if names is not None else f"{n:03d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


def write_rtstruct(
    path: Path,
    frame_of_reference_uid: str,
    rois: Sequence[tuple[str, Sequence[np.ndarray | tuple[str, np.ndarray]]]],
    *,
    referenced_sop_uids: Sequence[str] = (),
    interpreted_types: Sequence[str] | None = None,
) -> Path:
    """Minimal RT Structure Set: ``rois`` = [(name, [contour points (n, 3) in LPS mm, ...]), ...].

    A contour given as ``(geometric_type, points)`` gets that ContourGeometricType (default CLOSED_PLANAR).
    ``interpreted_types`` gives each ROI's RTROIInterpretedType (default GTV; "" writes it empty).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = frame_of_reference_uid
    ds.ReferencedFrameOfReferenceSequence = [ref_for]
    ds.StructureSetROISequence = []
    ds.ROIContourSequence = []
    ds.RTROIObservationsSequence = []
    for number, (name, contours) in enumerate(rois, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = frame_of_reference_uid
        ds.StructureSetROISequence.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ContourSequence = []
        for item in contours:
            kind, points = item if isinstance(item, tuple) else ("CLOSED_PLANAR", item)
            c = Dataset()
            c.ContourGeometricType = kind
            points = np.asarray(points, dtype=float).reshape(-1, 3)
            c.NumberOfContourPoints = len(points)
            c.ContourData = [f"{v:.4f}" for v in points.ravel()]
            if referenced_sop_uids:
                img = Dataset()
                img.ReferencedSOPClassUID = CTImageStorage
                img.ReferencedSOPInstanceUID = referenced_sop_uids[0]
                c.ContourImageSequence = [img]
            roi_contour.ContourSequence.append(c)
        ds.ROIContourSequence.append(roi_contour)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = interpreted_types[number - 1] if interpreted_types is not None else "GTV"
        ds.RTROIObservationsSequence.append(obs)
    ds.save_as(path, enforce_file_format=True)
    return path


def square(x0: float, y0: float, x1: float, y1: float, z: float) -> np.ndarray:
    """Closed square contour in the axial plane z (LPS mm)."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)
