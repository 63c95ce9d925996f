"""Alternative mask formats: RTSTRUCT (pydicom) and NIfTI label maps (SimpleITK).

RTSTRUCT is written with pydicom because highdicom has no RT Structure Set writer. Contours are the
iso-contour at 0.5 of each slice of the CT-grid mask (``skimage.measure.find_contours`` on the zero-padded
slice),
i.e. the outline of the voxels, in LPS mm at the slice position; a reader that fills these polygons at voxel
centres gets the same mask back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage

from hpd_imaging import __version__
from hpd_imaging.synth.dicom_writer import (
    MANUFACTURER,
    MODEL_NAME,
    SCAN_TIME,
    ExamIds,
    SegmentSpec,
    _dicom_date,
    _patient_module,
    make_uid,
)
from hpd_imaging.synth.render import ExamGrid

_COLOURS = [[255, 0, 0], [0, 200, 0], [0, 0, 255], [255, 200, 0], [255, 0, 255], [0, 255, 255]]


def slice_contours(mask_slice: np.ndarray, grid: ExamGrid, k: int) -> list[np.ndarray]:
    """Closed outlines (N,3) in LPS mm of one mask slice (rows j, columns i)."""
    from skimage.measure import find_contours

    padded = np.pad(mask_slice.astype(np.float32), 1)
    out = []
    for c in find_contours(padded, 0.5):
        rows, cols = c[:-1, 0] - 1.0, c[:-1, 1] - 1.0  # drop the repeated closing point; undo the padding
        x = grid.origin_mm[0] + cols * grid.spacing_mm[0]
        y = grid.origin_mm[1] + rows * grid.spacing_mm[1]
        z = np.full_like(x, grid.origin_mm[2] + k * grid.spacing_mm[2])
        out.append(np.stack([x, y, z], -1))
    return out


def write_rtstruct(
    path: Path, ct_datasets: Sequence[Dataset], segments: Sequence[SegmentSpec], ids: ExamIds, grid: ExamGrid
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sop_uid = make_uid(ids.uid_salt, "rtstruct")
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    _patient_module(ds, ids)
    date = _dicom_date(ids.scan_date)
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "RTSTRUCT"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = __version__
    ds.SeriesInstanceUID = make_uid(ids.uid_salt, "rtstruct-series")
    ds.SeriesNumber = 301
    ds.SeriesDescription = "Lesion contours"
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "LESIONS"
    ds.StructureSetDate = date
    ds.StructureSetTime = SCAN_TIME
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = SCAN_TIME
    ds.FrameOfReferenceUID = ids.frame_of_reference_uid

    contour_images = []
    for ct in ct_datasets:
        item = Dataset()
        item.ReferencedSOPClassUID = ct.SOPClassUID
        item.ReferencedSOPInstanceUID = ct.SOPInstanceUID
        contour_images.append(item)
    series_item = Dataset()
    series_item.SeriesInstanceUID = ids.series_uid
    series_item.ContourImageSequence = DicomSequence(contour_images)
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = (
        "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, customary)
    )
    study_item.ReferencedSOPInstanceUID = ids.study_uid
    study_item.RTReferencedSeriesSequence = DicomSequence([series_item])
    for_item = Dataset()
    for_item.FrameOfReferenceUID = ids.frame_of_reference_uid
    for_item.RTReferencedStudySequence = DicomSequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([for_item])

    rois, roi_contours, observations = [], [], []
    for n, seg in enumerate(segments):
        roi = Dataset()
        roi.ROINumber = seg.number
        roi.ReferencedFrameOfReferenceUID = ids.frame_of_reference_uid
        roi.ROIName = seg.label
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        rois.append(roi)
        contours = []
        for k in np.flatnonzero(seg.mask.any(axis=(1, 2))):
            for poly in slice_contours(seg.mask[k], grid, int(k)):
                c = Dataset()
                img = Dataset()
                img.ReferencedSOPClassUID = ct_datasets[k].SOPClassUID
                img.ReferencedSOPInstanceUID = ct_datasets[k].SOPInstanceUID
                c.ContourImageSequence = DicomSequence([img])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(poly)
                c.ContourData = [f"{v:.3f}" for v in poly.ravel()]
                contours.append(c)
        rc = Dataset()
        rc.ROIDisplayColor = _COLOURS[n % len(_COLOURS)]
        rc.ReferencedROINumber = seg.number
        rc.ContourSequence = DicomSequence(contours)
        roi_contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = seg.number
        obs.ReferencedROINumber = seg.number
        obs.RTROIInterpretedType = "GTV"
        obs.ROIInterpreter = ""
        if seg.tracking_id is not None:
            obs.ROIObservationLabel = seg.tracking_id
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(roi_contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    ds.save_as(path, enforce_file_format=True)


def write_labelmap(path: Path, segments: Sequence[SegmentSpec], grid: ExamGrid) -> None:
    """NIfTI label map on the CT grid (values = segment numbers; masks.csv maps them to lesions)."""
    import SimpleITK as sitk  # noqa: N813 - the customary alias

    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(segments[0].mask.shape, np.uint16)
    for seg in segments:
        labels[seg.mask] = seg.number
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing(grid.spacing_mm)
    img.SetOrigin(grid.origin_mm)
    img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(img, str(path), useCompression=True)
