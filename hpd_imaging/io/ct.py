"""Load a CT series (DICOM folder, file list, Enhanced CT file, or NIfTI/NRRD) into a :class:`CtImage`.

Why our own stacking instead of SimpleITK's ImageSeriesReader: it averages uneven spacing and treats a gantry
tilt as a rotation with only a warning (specs/dicom_io_notes.md 1.2); highdicom refuses blank SOPClassUIDs
(1.5). Here headers are read with pydicom (``stop_before_pixels``), the stack is checked by
:mod:`hpd_imaging.io._geometry`, and pixels are decoded one slice at a time straight into one preallocated
volume (uncompressed: read from the file into one reused buffer; JPEG 2000: imagecodecs on a thread pool;
JPEG lossless / JPEG-LS / RLE: pydicom 3 + pylibjpeg plugins on a process pool), converted to HU as
:func:`pydicom.pixels.apply_modality_lut` does, in slice order and a few slices ahead at most
(:mod:`hpd_imaging.io._pixeldecode`).

With ``lazy=True`` (the pipeline, issue 21) a regular single-frame series keeps every header and geometry
check but decodes its slices only when a stage reads them (:mod:`hpd_imaging.io._lazyct`); the conversion to
HU is the same code (:mod:`hpd_imaging.io._hu`).

Irregular stacks (gaps, uneven spacing, gantry tilt) are refused unless ``LoaderSettings.irregular_geometry``
is ``"resample"``; then they are resampled onto a regular orthogonal grid, recorded in
``CtImage.provenance``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.sequence import Sequence as DicomSequence

from hpd_imaging.domain import CtImage, ImageGeometry
from hpd_imaging.errors import DicomReadError, GeometryError, InputLimitError
from hpd_imaging.io._dicomread import BoundedReader, read_dicom
from hpd_imaging.io._geometry import PlaneHeader, StackGeometry, analyse_stack, regular_direction
from hpd_imaging.io._hu import decode_error, decode_slices, hu_dtype, store_slice
from hpd_imaging.io._lazyct import LazySeriesVoxels, check_stored_pixels, identity_text
from hpd_imaging.io._limits import check_dicom_pixel_size, check_image_header
from hpd_imaging.io._resample import resample_stack, target_grid
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
# objects that can share a folder with the CT but are not image slices of it
_NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "SR", "RTPLAN", "RTDOSE", "KO", "PR", "REG", "RWV"}
_ENHANCED_CT_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"}
# what this loader, io/_limits and pydicom's decoders read: only these are converted (read_dicom only_tags)
_CT_HEADER_TAGS: frozenset[int] = frozenset(int(tag_for_keyword(k)) for k in [  # type: ignore[arg-type]
    "SOPClassUID", "SOPInstanceUID", "Modality", "SeriesInstanceUID", "FrameOfReferenceUID",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "GantryDetectorTilt",
    "SpacingBetweenSlices", "SliceThickness", "RescaleSlope", "RescaleIntercept", "ModalityLUTSequence",
    "Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
])  # fmt: skip

Progress = Callable[[int, int], None]


def is_image_file(path: Path) -> bool:
    """True for NIfTI/NRRD/MetaImage files (read with SimpleITK), judged by content (io/filetype.py)."""
    from hpd_imaging.io.filetype import is_volume_file

    return is_volume_file(path)


def load_ct(
    source: Path | str | Sequence[Path | str],
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    *,
    progress: Progress | None = None,
    lazy: bool = False,
) -> CtImage:
    """Read one CT volume in HU on a regular LPS grid.

    ``source`` is a folder holding one DICOM series (non-DICOM files are skipped), an explicit list of slice
    files, one Enhanced (multi-frame) CT file, or a NIfTI/NRRD image. Raises :class:`GeometryError` for
    irregular stacks (unless resampling is enabled), :class:`DicomReadError` for unreadable input.

    ``lazy=True`` (the pipeline's choice, issue 21): a regular single-frame DICOM series is returned with
    its headers and geometry checked as always but its slices decoded only when first read
    (:class:`~hpd_imaging.io._lazyct.LazySeriesVoxels`; cheap stored-data checks at load time, decode
    errors later, naming the file). Enhanced CT, NIfTI/NRRD and resampled (irregular) stacks are read eagerly
    either way. ``progress`` is called per decoded slice of an eager load only.
    """
    if not isinstance(source, str | Path) and len(source) == 1 and is_image_file(Path(source[0])):
        source = source[0]  # an archive timepoint whose CT is one NIfTI/NRRD file (images.csv)
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_file() and is_image_file(path):
            return _load_sitk_ct(path, settings)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            label = str(path)
        elif path.is_file():
            files, label = [path], str(path)
        else:
            raise DicomReadError(
                f"{path}: expected a DICOM folder, DICOM file or NIfTI/NRRD image, got nothing there",
                path=str(path),
            )
    else:
        files = [Path(p) for p in source]
        label = str(files[0].parent) if files else "<empty file list>"
    datasets = _read_headers(files, label, settings)
    if len(datasets) == 1 and int(datasets[0][1].get("NumberOfFrames", 1) or 1) > 1:  # checked in the headers
        return _load_enhanced(datasets[0][0], datasets[0][1], settings, label)
    return _load_series(datasets, settings, label, progress, lazy=lazy)


# --------------------------------------------------------------------------------------------------
# headers
# --------------------------------------------------------------------------------------------------


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _read_headers(files: Sequence[Path], label: str, settings: LoaderSettings) -> list[tuple[Path, Dataset]]:
    headers: list[tuple[Path, Dataset]] = []
    skipped = 0
    for f in files:
        try:
            ds, offset = read_dicom(
                f, stop_before_pixels=True, what="a DICOM image header", only_tags=_CT_HEADER_TAGS
            )
            # where the pixel data element starts: the decode pass reads only that element
            ds._hpd_pixel_offset = offset
            modality = str(ds.get("Modality", "")).upper()
            is_image = modality not in _NON_IMAGE_MODALITIES and "Rows" in ds
        except (InvalidDicomError, OSError) as exc:
            log.debug("%s: not read as DICOM (%s)", f, exc)
            skipped += 1
            continue
        except DicomReadError as exc:
            if not _has_dicom_preamble(f):
                log.debug("%s: not read as DICOM (%s)", f, exc)
                skipped += 1
                continue
            raise  # says it is DICOM but cannot be parsed: refusing beats silently losing a slice
        if not is_image:
            skipped += 1
            continue
        # memory-bomb guard: declared pixel data vs limit and file size, before anything is allocated
        check_dicom_pixel_size(f, ds, settings, pixel_offset=ds._hpd_pixel_offset)
        headers.append((f, ds))
    if skipped:
        log.info("%s: skipped %d file(s) that are not image slices", label, skipped)
    if not headers:
        raise DicomReadError(
            f"{label}: expected DICOM image files, found none (of {len(files)} files)", path=label
        )
    series = {str(ds.get("SeriesInstanceUID", "") or "") for _, ds in headers}
    series.discard("")
    if len(series) > 1:
        raise DicomReadError(
            f"{label}: expected one series, got {len(series)} SeriesInstanceUIDs "
            f"({', '.join(sorted(series)[:4])}); "
            "pass the files of one series (the archive scan splits them)",
            path=label,
        )
    return headers


def _float_seq(ds: Dataset, keyword: str, n: int, where: str) -> tuple[float, ...]:
    value = ds.get(keyword)
    try:
        out = tuple(float(x) for x in value)  # type: ignore[union-attr]
    except (TypeError, ValueError, OverflowError):
        out = ()
    if len(out) != n:
        raise DicomReadError(f"{where}: expected {keyword} with {n} numbers, got {value!r}", path=where)
    return out


def _pixel_spacing(ds: Dataset, where: str) -> tuple[float, float]:
    spacing = _float_seq(ds, "PixelSpacing", 2, where)
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise GeometryError(
            f"{where}: expected PixelSpacing of 2 positive finite numbers (mm), got {spacing}", path=where
        )
    return spacing  # type: ignore[return-value]


def _plane_header(path: Path, ds: Dataset) -> PlaneHeader:
    where = str(path)
    tilt = ds.get("GantryDetectorTilt")
    try:
        tilt_deg = float(tilt) if tilt not in (None, "") else None
    except (TypeError, ValueError):
        tilt_deg = None  # (0018,1120) is only a hint; the positions decide
    return PlaneHeader(
        source=where,
        position_mm=_float_seq(ds, "ImagePositionPatient", 3, where),  # type: ignore[arg-type]
        orientation=_float_seq(ds, "ImageOrientationPatient", 6, where),  # type: ignore[arg-type]
        rows=int(ds.Rows),  # validated by check_dicom_pixel_size
        columns=int(ds.Columns),
        pixel_spacing_mm=_pixel_spacing(ds, where),
        gantry_tilt_deg=tilt_deg,
    )


def _rescale_of(ds: Dataset, where: str = "") -> tuple[float, float]:
    slope = ds.get("RescaleSlope", 1.0)
    intercept = ds.get("RescaleIntercept", 0.0)
    try:
        values = (
            float(1.0 if slope in (None, "") else slope),
            float(0.0 if intercept in (None, "") else intercept),
        )
    except (TypeError, ValueError, OverflowError):
        values = (math.nan, math.nan)
    if not all(math.isfinite(v) for v in values) or values[0] == 0:
        raise DicomReadError(
            f"{where}: expected a finite non-zero RescaleSlope and a finite RescaleIntercept, got "
            f"{slope!r} and {intercept!r}",
            path=where or None,
        )
    return values


def _check_size(shape: tuple[int, ...], settings: LoaderSettings, label: str) -> None:
    n = int(np.prod(shape))
    if n > settings.max_ct_voxels:
        raise InputLimitError(
            f"{label}: declared volume of {shape} = {n} voxels exceeds max_ct_voxels "
            f"{settings.max_ct_voxels}",
            path=label,
        )


# --------------------------------------------------------------------------------------------------
# single-frame series
# --------------------------------------------------------------------------------------------------


def _load_series(
    headers: list[tuple[Path, Dataset]],
    settings: LoaderSettings,
    label: str,
    progress: Progress | None,
    *,
    lazy: bool = False,
) -> CtImage:
    planes = [_plane_header(p, ds) for p, ds in headers]
    first = headers[0][1]
    thickness = first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0
    stack = analyse_stack(
        planes,
        label,
        tol_mm=settings.spacing_tolerance_mm,
        tol_rel=settings.spacing_tolerance_rel,
        single_slice_spacing_mm=_single_slice_spacing(thickness, label, len(planes)),
    )
    _refuse_if_irregular(stack, settings, label)
    ordered = [headers[i] for i in stack.order]
    modalities = {str(ds.get("Modality", "")) for _, ds in ordered}
    if modalities - {"CT"}:
        log.warning(
            "%s: expected Modality CT, got %s; reading the values through the modality LUT anyway",
            label,
            sorted(modalities),
        )
    rescales = [_rescale_of(ds, str(p)) for p, ds in ordered]
    has_lut = any("ModalityLUTSequence" in ds for _, ds in ordered)
    dtype = np.dtype(np.float32) if has_lut else hu_dtype(rescales)
    shape = (len(ordered), stack.rows, stack.columns)
    _check_size(shape, settings, label)
    if lazy and stack.is_regular:
        return _lazy_series(ordered, rescales, dtype, stack, settings, label, first)
    n = len(ordered)
    hu = decode_slices(
        np.empty(shape, dtype=dtype),  # allocated once, filled slice by slice
        range(n),
        ordered,
        rescales,
        (stack.rows, stack.columns),
        workers=settings.decode_workers,
        min_slices=settings.parallel_decode_min_slices,
        label=label,
        on_slice=None if progress is None else lambda k, _: progress(k + 1, n),
        logger=log,
    )
    provenance = _series_provenance(ordered, stack)
    return _finish(hu, stack, settings, label, first, provenance, _sops(ordered))


def _sops(ordered: Sequence[tuple[Path, Dataset]]) -> tuple[str, ...]:
    return tuple(str(ds.get("SOPInstanceUID", "") or "") for _, ds in ordered)


def _series_provenance(ordered: Sequence[tuple[Path, Dataset]], stack: StackGeometry) -> dict[str, Any]:
    return {
        "reader": f"pydicom {pydicom.__version__}",
        "n_files": len(ordered),
        "source_files": tuple(str(p) for p, _ in ordered),
        "transfer_syntaxes": sorted(
            {
                str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
                for _, ds in ordered
                if hasattr(ds, "file_meta")
            }
        ),
        "slice_positions_mm": tuple(float(x) for x in stack.positions_mm),
        "gantry_tilt_deg": stack.tilt_deg,
    }


def _lazy_series(
    ordered: list[tuple[Path, Dataset]],
    rescales: list[tuple[float, float]],
    dtype: np.dtype,
    stack: StackGeometry,
    settings: LoaderSettings,
    label: str,
    first: Dataset,
) -> CtImage:
    """A regular series as a CT whose slices decode on demand (see :mod:`hpd_imaging.io._lazyct`)."""
    for path, ds in ordered:  # what can be found without decoding: truncation, a codestream that lies
        check_stored_pixels(path, ds)
    geometry = _regular_geometry(stack, (len(ordered), stack.rows, stack.columns), label)
    voxels = LazySeriesVoxels(
        ordered,
        rescales,
        dtype,
        (stack.rows, stack.columns),
        workers=settings.decode_workers,
        parallel_min_slices=settings.parallel_decode_min_slices,
        identity=identity_text(
            geometry.shape, geometry.spacing_mm, geometry.origin_mm, geometry.direction, dtype, rescales
        ),
        label=label,
    )
    provenance = _series_provenance(ordered, stack)
    provenance["sop_instance_uids"] = _sops(ordered)
    provenance["decoding"] = "on demand (lazy)"
    return CtImage(
        geometry=geometry,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "") or ""),
        series_instance_uid=str(first.get("SeriesInstanceUID", "") or ""),
        source=label,
        provenance=provenance,
        lazy=voxels,
    )


def _single_slice_spacing(thickness: Any, label: str, n_planes: int) -> float:
    """Spacing of a one-slice volume from SpacingBetweenSlices/SliceThickness (unused for real stacks)."""
    try:
        value = float(thickness)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if math.isfinite(value) and value > 0:
        return value
    if n_planes > 1:
        return 1.0  # the positions give the spacing of a stack
    raise GeometryError(
        f"{label}: a single slice needs a positive SpacingBetweenSlices or SliceThickness (mm), got "
        f"{thickness!r}",
        path=label,
    )


def _refuse_if_irregular(stack: StackGeometry, settings: LoaderSettings, label: str) -> None:
    if stack.is_regular:
        return
    if settings.irregular_geometry == "refuse":
        raise GeometryError(
            f"{label}: irregular slice geometry: {stack.describe()}; expected a regular orthogonal stack. "
            "Set loader.irregular_geometry: resample to resample it onto a regular grid",
            path=label,
        )
    log.warning("%s: irregular slice geometry, resampling onto a regular grid: %s", label, stack.describe())


def _regular_geometry(stack: StackGeometry, shape: tuple[int, ...], label: str) -> ImageGeometry:
    try:
        return ImageGeometry(
            shape=shape,  # type: ignore[arg-type]
            spacing_mm=(stack.pixel_spacing_mm[0], stack.pixel_spacing_mm[1], stack.slice_spacing_mm),
            origin_mm=tuple(float(x) for x in stack.first_position),  # type: ignore[arg-type]
            direction=regular_direction(stack),
        )
    except GeometryError as exc:
        raise GeometryError(f"{label}: {exc}", path=label) from exc


def _finish(
    hu: np.ndarray,
    stack: StackGeometry,
    settings: LoaderSettings,
    label: str,
    first: Dataset,
    provenance: dict[str, Any],
    sops: tuple[str, ...],
) -> CtImage:
    if stack.is_regular:
        geometry = _regular_geometry(stack, hu.shape, label)
        provenance["sop_instance_uids"] = sops
    else:
        geometry, spacing_k = target_grid(stack, settings.resample_max_slice_factor)
        _check_size(geometry.shape, settings, label)
        hu = resample_stack(hu, stack, geometry, settings.resample_fill_hu)
        provenance.update(
            resampled=stack.describe(),
            resample_method="linear in physical space (in-plane bilinear per acquired plane, linear along "
            "the normal); orthogonal grid at the smallest gap",
            resample_slice_spacing_mm=spacing_k,
            resample_fill_hu=settings.resample_fill_hu,
            source_gaps_mm=tuple(float(g) for g in stack.gaps_mm),
            source_sop_instance_uids=sops,
            sop_instance_uids=(),  # slices no longer correspond to acquired instances
        )
    return CtImage(
        hu=hu,
        geometry=geometry,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "") or ""),
        series_instance_uid=str(first.get("SeriesInstanceUID", "") or ""),
        source=label,
        provenance=provenance,
    )


# --------------------------------------------------------------------------------------------------
# Enhanced (multi-frame) CT: per-frame functional groups
# --------------------------------------------------------------------------------------------------


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    """First item of a sequence attribute; None when absent, empty or not a sequence (wrong VR)."""
    if ds is None or not isinstance(ds, Dataset):
        return None
    value = ds.get(keyword)
    if isinstance(value, DicomSequence) and len(value) > 0 and isinstance(value[0], Dataset):
        return value[0]
    return None


def _functional(ds: Dataset, frame: Dataset | None, sequence: str) -> Dataset | None:
    """The item of a functional-group macro for one frame: per-frame value first, then the shared one."""
    for group in (frame, _first_item(ds, "SharedFunctionalGroupsSequence")):
        item = _first_item(group, sequence)
        if item is not None:
            return item
    return None


def _load_enhanced(path: Path, ds: Dataset, settings: LoaderSettings, label: str) -> CtImage:
    n_frames = int(ds.NumberOfFrames)  # validated by check_dicom_pixel_size
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not isinstance(per_frame, DicomSequence) or len(per_frame) != n_frames:
        raise DicomReadError(
            f"{path}: expected PerFrameFunctionalGroupsSequence with {n_frames} items (Enhanced CT), "
            f"got {len(per_frame) if isinstance(per_frame, DicomSequence) else repr(per_frame)[:40]}",
            path=str(path),
        )
    if str(ds.get("SOPClassUID", "")) not in _ENHANCED_CT_SOP_CLASSES:
        log.info(
            "%s: multi-frame SOP class %s read through its functional groups", path, ds.get("SOPClassUID")
        )
    planes: list[PlaneHeader] = []
    rescales: list[tuple[float, float]] = []
    for f, frame in enumerate(per_frame):
        where = f"{path} [frame {f + 1}]"
        pos, ori, meas = (
            _functional(ds, frame, s)
            for s in ("PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence")
        )
        if pos is None or ori is None or meas is None:
            raise DicomReadError(
                f"{where}: expected PlanePosition, PlaneOrientation and PixelMeasures functional groups",
                path=str(path),
            )
        planes.append(
            PlaneHeader(
                source=where,
                position_mm=_float_seq(pos, "ImagePositionPatient", 3, where),  # type: ignore[arg-type]
                orientation=_float_seq(ori, "ImageOrientationPatient", 6, where),  # type: ignore[arg-type]
                rows=int(ds.Rows),  # validated by check_dicom_pixel_size
                columns=int(ds.Columns),
                pixel_spacing_mm=_pixel_spacing(meas, where),
            )
        )
        transform = _functional(ds, frame, "PixelValueTransformationSequence")
        rescales.append(_rescale_of(transform if transform is not None else ds, where))
    meas0 = _functional(ds, per_frame[0], "PixelMeasuresSequence")
    thickness = (meas0.get("SpacingBetweenSlices") or meas0.get("SliceThickness") or 1.0) if meas0 else 1.0
    stack = analyse_stack(
        planes,
        str(path),
        tol_mm=settings.spacing_tolerance_mm,
        tol_rel=settings.spacing_tolerance_rel,
        single_slice_spacing_mm=_single_slice_spacing(thickness, str(path), len(planes)),
    )
    _refuse_if_irregular(stack, settings, str(path))
    shape = (n_frames, stack.rows, stack.columns)
    _check_size(shape, settings, str(path))
    hu = np.empty(shape, dtype=hu_dtype(rescales))
    for k, f in enumerate(stack.order):
        try:
            with BoundedReader(path) as fp:
                stored = decode_pixels(fp, index=f)  # one frame at a time
        except Exception as exc:  # decoder plugins raise many types; report the file, frame and syntax
            raise decode_error(path, ds, f"frame {f + 1}", exc) from exc
        if stored.shape != (stack.rows, stack.columns):
            raise DicomReadError(
                f"{path}: frame {f + 1}: expected a {stack.rows}x{stack.columns} frame, got {stored.shape}",
                path=str(path),
            )
        lut = Dataset()
        lut.RescaleSlope, lut.RescaleIntercept = rescales[f]
        hu = store_slice(hu, k, apply_modality_lut(stored, lut), str(path))
    provenance: dict[str, Any] = {
        "reader": f"pydicom {pydicom.__version__} (Enhanced CT, per-frame functional groups)",
        "n_files": 1,
        "n_frames": n_frames,
        "source_files": (str(path),),
        "frame_order": tuple(f + 1 for f in stack.order),
        "slice_positions_mm": tuple(float(x) for x in stack.positions_mm),
        "gantry_tilt_deg": stack.tilt_deg,
    }
    sop = str(ds.get("SOPInstanceUID", "") or "")
    return _finish(hu, stack, settings, str(path), ds, provenance, tuple(sop for _ in stack.order))


# --------------------------------------------------------------------------------------------------
# NIfTI / NRRD
# --------------------------------------------------------------------------------------------------


def _load_sitk_ct(path: Path, settings: LoaderSettings = DEFAULT_LOADER_SETTINGS) -> CtImage:
    """NIfTI/NRRD CT via SimpleITK, which already converts NIfTI's RAS to LPS."""
    import SimpleITK as sitk  # noqa: N813

    from hpd_imaging.io.filetype import read_sitk_image

    check_image_header(path, settings, max_voxels=settings.max_ct_voxels)  # memory-bomb guard
    try:
        image = read_sitk_image(path)
    except RuntimeError as exc:
        raise DicomReadError(f"{path}: cannot read image with SimpleITK: {exc}", path=str(path)) from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DicomReadError(
            f"{path}: expected a 3D scalar CT image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)",
            path=str(path),
        )
    arr = sitk.GetArrayFromImage(image)
    if (
        arr.dtype.kind in "iu"
        and arr.size
        and arr.min() >= np.iinfo(np.int16).min
        and arr.max() <= np.iinfo(np.int16).max
    ):
        arr = arr.astype(np.int16, copy=False)
    elif arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    try:
        geometry = ImageGeometry.from_sitk(image)
    except GeometryError as exc:
        raise GeometryError(f"{path}: {exc}", path=str(path)) from exc
    if not math.isclose(float(np.linalg.det(geometry.direction_matrix)), 1.0, abs_tol=1e-3):
        log.info("%s: left-handed direction matrix (kept as stored)", path)
    return CtImage(
        hu=arr,
        geometry=geometry,
        source=str(path),
        provenance={"reader": f"SimpleITK {sitk.Version.VersionString()}", "source_files": (str(path),)},
    )
