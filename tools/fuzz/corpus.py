"""Seed corpus of the fuzz harness: tiny synthetic DICOM / NIfTI files, plus real files when available.

Why synthetic seeds: the harness must run on a fresh machine without the shared test data, and tiny images
(8 x 8 pixels, 3 slices) keep one case at a few milliseconds. Every seed is a *valid* object that the loaders
accept; the mutators in :mod:`tools.fuzz.mutate` then break it. Real files (the public test data in
``../shared/data/real``) add the variety of real scanners and writers (JPEG 2000, Enhanced CT, MIM and
dcmqi objects).

The corpus is written once into a folder with an index ``corpus.json``:
``{"seeds": [{"name", "target", "files": [relpath, ...], "ct": relpath-of-reference-CT-folder-or-null}]}``.
Targets: ``ct`` (a folder of slices or one multi-frame file), ``seg``, ``rtstruct``, ``labelmap``.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from hpd_imaging.dicom_stamps import pin_creation_stamps

log = logging.getLogger(__name__)

TARGETS = ("ct", "seg", "rtstruct", "labelmap")
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

# fixed UIDs: the corpus is byte-identical from run to run (same seed -> same cases)
_ROOT = "1.2.826.0.1.3680043.8.498.7777"
_SEED_DATE = datetime.date(2024, 1, 1)  # with fixed creation stamps (pin_creation_stamps)
_SEED_TIME = datetime.time(12, 0, 0)
FOR_UID = f"{_ROOT}.1"
STUDY_UID = f"{_ROOT}.2"
SERIES_UID = f"{_ROOT}.3"
N_SLICES, N_ROWS, N_COLUMNS = 3, 8, 8
SLICE_SPACING_MM = 2.0
PIXEL_SPACING_MM = (1.0, 1.0)
ORIGIN_MM = (-4.0, -4.0, 0.0)

# real files small enough for a fast case (path relative to shared/data/real, target, reference CT folder)
_CT2 = "pydicom_small/src/pydicom/data/test_files/dicomdirtests/77654033/CT2"
# the highdicom SEGs lie on CT2 without its far-away slice 17106 (202 mm from the rest)
_CT2_REGULAR = f"{_CT2}!17106"
REAL_SEEDS: tuple[tuple[str, str, str | None], ...] = (
    ("highdicom_small/data/test_files/ct_image.dcm", "ct", None),
    (_CT2, "ct", None),
    ("pydicom_small/src/pydicom/data/test_files/CT_small.dcm", "ct", None),
    ("pydicom_small/data_store/data/693_J2KR.dcm", "ct", None),
    ("pydicom_small/data_store/data/eCT_Supplemental.dcm", "ct", None),
    ("dcmqi_ct3_seg_sr/data/segmentations/24x38x3/image", "ct", None),
    ("dcmqi_ct3_seg_sr/data/segmentations/24x38x3/multiframe/mf.dcm", "ct", None),
    (
        "highdicom_small/data/test_files/seg_image_ct_binary.dcm",
        "seg",
        _CT2_REGULAR,
    ),
    (
        "highdicom_small/data/test_files/seg_image_ct_binary_overlap.dcm",
        "seg",
        _CT2_REGULAR,
    ),
    (
        "highdicom_small/data/test_files/seg_image_ct_true_fractional.dcm",
        "seg",
        _CT2_REGULAR,
    ),
    (
        "dcmqi_ct3_seg_sr/data/segmentations/24x38x3/seg/label.seg",
        "seg",
        "dcmqi_ct3_seg_sr/data/segmentations/24x38x3/image",
    ),
    (
        "dcmqi_ct3_seg_sr/data/segmentations/24x38x3/nrrd/label.nrrd",
        "labelmap",
        "dcmqi_ct3_seg_sr/data/segmentations/24x38x3/image",
    ),
    ("rtutils_mock/tests/mock_data/rt.dcm", "rtstruct", "rtutils_mock/tests/mock_data"),
    (
        "rtutils_mock/tests/mock_data/non_existent_reference_rt.dcm",
        "rtstruct",
        "rtutils_mock/tests/mock_data",
    ),
)


# --------------------------------------------------------------------------------------------------
# synthetic objects
# --------------------------------------------------------------------------------------------------


def _new_object(sop_class: str, sop_uid: str, modality: str, series_uid: str, series_number: int) -> Dataset:
    """A dataset with the file meta, SOP, patient, study and series attributes every seed object shares."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = "FUZZ01"
    ds.PatientName = "Fuzz^Case"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = STUDY_UID
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.FrameOfReferenceUID = FOR_UID
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    return ds


def ct_pixels(k: int) -> np.ndarray:
    """Stored values of slice k: a bright 4 x 4 square (HU 40) in air (HU -1000) after the -1024 intercept."""
    pixels = np.full((N_ROWS, N_COLUMNS), 24, dtype=np.int16)
    pixels[2:6, 2:6] = 1064 + k
    return pixels


def ct_slice(k: int, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """One single-frame CT slice of the seed series (3 slices of 8 x 8 pixels, 2 mm apart)."""
    ds = _new_object(CTImageStorage, f"{_ROOT}.10.{k + 1}", "CT", SERIES_UID, 1)
    ds.InstanceNumber = k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [ORIGIN_MM[0], ORIGIN_MM[1], ORIGIN_MM[2] + SLICE_SPACING_MM * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = list(PIXEL_SPACING_MM)
    ds.SliceThickness = SLICE_SPACING_MM
    ds.Rows, ds.Columns = N_ROWS, N_COLUMNS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = ct_pixels(k).tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    elif syntax != ExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    return ds


def enhanced_ct() -> Dataset:
    """The seed series as one Enhanced CT file (per-frame functional groups)."""
    ds = _new_object(ENHANCED_CT_STORAGE, f"{_ROOT}.11.1", "CT", f"{SERIES_UID}.2", 2)
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = N_SLICES
    ds.Rows, ds.Columns = N_ROWS, N_COLUMNS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = list(PIXEL_SPACING_MM)
    measures.SliceThickness = SLICE_SPACING_MM
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024, "HU"
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(N_SLICES):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [ORIGIN_MM[0], ORIGIN_MM[1], ORIGIN_MM[2] + SLICE_SPACING_MM * k]
        item.PlanePositionSequence = [position]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.stack([ct_pixels(k) for k in range(N_SLICES)]).tobytes()
    return ds


def _seg(ct_datasets: list[Dataset], fractional: bool) -> Dataset:
    """A DICOM SEG of the seed CT written with highdicom: two segments (overlapping), one frame omitted."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mask = np.zeros((N_SLICES, N_ROWS, N_COLUMNS, 2), dtype=np.float32 if fractional else np.uint8)
    mask[0:2, 2:6, 2:6, 0] = 1  # lesion 1 on slices 0-1
    mask[1, 4:7, 4:7, 1] = 0.75 if fractional else 1  # lesion 2 on slice 1, overlapping lesion 1
    algorithm = hd.AlgorithmIdentificationSequence(
        name="fuzz-seed", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f"lesion {n}",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_id=f"L{n}",
            tracking_uid=f"{_ROOT}.30.{n}",
        )
        for n in (1, 2)
    ]
    kind = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
    seg = hd.seg.Segmentation(
        source_images=ct_datasets,
        pixel_array=mask,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=f"{_ROOT}.20.{int(fractional)}",
        series_number=20 + int(fractional),
        sop_instance_uid=f"{_ROOT}.21.{int(fractional)}",
        instance_number=1,
        manufacturer="hpd-imaging",
        manufacturer_model_name="fuzz",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=True,
        content_date=_SEED_DATE,
        content_time=_SEED_TIME,
    )
    pin_creation_stamps(
        seg,
        f"{_SEED_DATE:%Y%m%d}",
        f"{_SEED_TIME:%H%M%S}",
        dimension_organization_uid=f"{_ROOT}.22.{int(fractional)}",
    )
    return seg


def rtstruct(contours: list[tuple[str, list[np.ndarray]]] | None = None) -> Dataset:
    """RT Structure Set on the seed CT: two ROIs, square contours on the slice planes."""
    if contours is None:
        z = [ORIGIN_MM[2] + SLICE_SPACING_MM * k for k in range(N_SLICES)]
        contours = [
            ("GTV lesion", [_square(-2, -2, 1.5, 1.5, z[0]), _square(-2, -2, 1.5, 1.5, z[1])]),
            ("lymph node 1", [_square(0, 0, 2.5, 2.5, z[1]), _square(0.5, 0.5, 1.5, 1.5, z[1])]),
        ]
    ds = _new_object(RTSTRUCT_STORAGE, f"{_ROOT}.40.1", "RTSTRUCT", f"{_ROOT}.40", 40)
    ds.StructureSetLabel = "fuzz"
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = SERIES_UID
    ref_series.ContourImageSequence = []
    for k in range(N_SLICES):
        img = Dataset()
        img.ReferencedSOPClassUID = CTImageStorage
        img.ReferencedSOPInstanceUID = f"{_ROOT}.10.{k + 1}"
        ref_series.ContourImageSequence.append(img)
    ref_study = Dataset()
    ref_study.ReferencedSOPInstanceUID = STUDY_UID
    ref_study.RTReferencedSeriesSequence = [ref_series]
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = FOR_UID
    ref_for.RTReferencedStudySequence = [ref_study]
    ds.ReferencedFrameOfReferenceSequence = [ref_for]
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = [], [], []
    for number, (name, polygons) in enumerate(contours, start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, FOR_UID
        roi.ROIGenerationAlgorithm = "MANUAL"
        ds.StructureSetROISequence.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ContourSequence = []
        for points in polygons:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourData = [float(v) for v in points.ravel()]
            k = int(round((points[0, 2] - ORIGIN_MM[2]) / SLICE_SPACING_MM))
            img = Dataset()
            img.ReferencedSOPClassUID = CTImageStorage
            img.ReferencedSOPInstanceUID = f"{_ROOT}.10.{k + 1}"
            c.ContourImageSequence = [img]
            roi_contour.ContourSequence.append(c)
        ds.ROIContourSequence.append(roi_contour)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        obs.RTROIInterpretedType, obs.ROIInterpreter = "GTV", ""
        ds.RTROIObservationsSequence.append(obs)
    return ds


def _square(x0: float, y0: float, x1: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def labelmap_values() -> np.ndarray:
    values = np.zeros((N_SLICES, N_ROWS, N_COLUMNS), dtype=np.uint8)
    values[0:2, 2:5, 2:5] = 1
    values[2, 5:7, 5:7] = 2
    return values


def write_labelmap(path: Path, values: np.ndarray | None = None) -> Path:
    """A NIfTI label map on the seed CT grid (SimpleITK writes LPS -> NIfTI RAS itself)."""
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(labelmap_values() if values is None else values)
    image.SetSpacing((PIXEL_SPACING_MM[1], PIXEL_SPACING_MM[0], SLICE_SPACING_MM))
    image.SetOrigin(ORIGIN_MM)
    sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))
    return path


# --------------------------------------------------------------------------------------------------
# corpus folder
# --------------------------------------------------------------------------------------------------


def _save(ds: Dataset, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path.name


def build_corpus(out_dir: Path, real_data: Path | None = None) -> dict[str, Any]:
    """Write the synthetic seeds (and copies of the small real files, when ``real_data`` is given).

    Returns the index that is also written to ``out_dir/corpus.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds: list[dict[str, Any]] = []

    def add(name: str, target: str, files: list[str], ct: str | None) -> None:
        seeds.append({"name": name, "target": target, "files": files, "ct": ct})

    slices = [ct_slice(k) for k in range(N_SLICES)]
    ct_dir = out_dir / "synthetic" / "ct"
    add(
        "synthetic/ct",
        "ct",
        [f"synthetic/ct/{_save(ds, ct_dir / f'{k}.dcm')}" for k, ds in enumerate(slices)],
        None,
    )
    for syntax, label in ((ImplicitVRLittleEndian, "implicit"), (RLELossless, "rle")):
        folder = out_dir / "synthetic" / f"ct_{label}"
        files = [
            f"synthetic/ct_{label}/{_save(ct_slice(k, syntax), folder / f'{k}.dcm')}" for k in range(N_SLICES)
        ]
        add(f"synthetic/ct_{label}", "ct", files, None)
    add(
        "synthetic/enhanced_ct",
        "ct",
        ["synthetic/" + _save(enhanced_ct(), out_dir / "synthetic" / "ect.dcm")],
        None,
    )
    for fractional in (False, True):
        name = "seg_fractional.dcm" if fractional else "seg_binary.dcm"
        _save(_seg(slices, fractional), out_dir / "synthetic" / name)
        add(f"synthetic/{name}", "seg", [f"synthetic/{name}"], "synthetic/ct")
    _save(rtstruct(), out_dir / "synthetic" / "rtstruct.dcm")
    add("synthetic/rtstruct.dcm", "rtstruct", ["synthetic/rtstruct.dcm"], "synthetic/ct")
    for name in ("labels.nii", "labels.nii.gz"):
        write_labelmap(out_dir / "synthetic" / name)
        add(f"synthetic/{name}", "labelmap", [f"synthetic/{name}"], "synthetic/ct")

    if real_data is not None:
        for rel, target, ct_rel in REAL_SEEDS:
            src = real_data / rel
            ref_folder, _, exclude = (ct_rel or "").partition("!")
            ref = real_data / ref_folder if ct_rel else None
            if not src.exists() or (ref is not None and not ref.exists()):
                log.info("real seed %s not found; skipped", src)
                continue
            copied = _copy_real(src, out_dir / "real" / rel)
            ref_rel = None
            if ref is not None:
                ref_rel = f"real/{ref_folder}" + (f"_without_{exclude}" if exclude else "")
                _copy_real(ref, out_dir / ref_rel, exclude={exclude})
            add(f"real/{rel}", target, [f.relative_to(out_dir).as_posix() for f in copied], ref_rel)
    index = {"seeds": seeds}
    (out_dir / "corpus.json").write_text(json.dumps(index, indent=1))
    return index


def _copy_real(src: Path, dst: Path, exclude: frozenset[str] | set[str] = frozenset()) -> list[Path]:
    """Copy one real file, or the DICOM files of one folder (no subfolders, no README/LICENSE)."""
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return [dst]
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(src.iterdir()):
        if not f.is_file() or f.name in exclude or f.name.endswith("rt.dcm"):  # RTSTRUCTs are mask seeds
            continue
        if f.suffix.lower() not in {".txt", ".md", ".json", ".png", ".jpg"}:
            shutil.copyfile(f, dst / f.name)
            out.append(dst / f.name)
    return out
