"""Shared helpers of the DICOM writers: deterministic UIDs, the source CT files in grid order, strict saving.

Why the CT grid check is strict: SEG frames and SR SCOORDs refer to source pixels directly, so a mask must
lie on
exactly the stored image grid; a resampled CtImage (e.g. after gantry-tilt correction) cannot be referenced.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from hpd_imaging import atomic
from hpd_imaging.dicom_stamps import pin_creation_stamps
from hpd_imaging.domain import CtImage
from hpd_imaging.errors import DicomReadError, GeometryError

logger = logging.getLogger(__name__)

# Tolerances for matching the CT files to the CtImage grid: slice positions in voxels, cosines, spacing in mm.
_INDEX_TOL_VOX = 1e-2
_COSINE_TOL = 1e-4
_SPACING_TOL_MM = 1e-3


def uid_for(*parts: object) -> str:
    """A deterministic UID derived from ``parts`` (pydicom's root + a SHA-512 hash of the parts).

    (``prefix=None`` would give a random UUID-based UID and ignore the entropy sources.)
    """
    return str(generate_uid(entropy_srcs=["hpd-imaging", *(str(p) for p in parts)]))


def read_ct_datasets(ct_files: Sequence[Path]) -> list[pydicom.Dataset]:
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


def datasets_by_slice(
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


#: type 3 attributes (in the SEG and SR IODs) that an empty override removes rather than writes empty
REMOVE_WHEN_EMPTY = frozenset(
    {
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "IssuerOfPatientID",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
    }
)
#: the source scanner's site and serial number, which highdicom copies from the CT into the
#: ContributingEquipmentSequence (all type 3 there); removed with an emptied InstitutionName
EQUIPMENT_IDENTIFIERS = (
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
)


def save_dataset(
    ds: pydicom.Dataset, path: Path, patient_attributes: Mapping[str, str] | None = None
) -> None:
    """Serialise in memory, then write atomically (temporary name + rename): a killed run never leaves a
    half-written DICOM file that a rerun or a viewer would take for a finished one.

    ``patient_attributes`` overrides attributes first (pseudonymised outputs, hpd_imaging.pseudonym): an
    empty value empties a type 2 attribute and removes one of :data:`REMOVE_WHEN_EMPTY`; an emptied
    InstitutionName also removes :data:`EQUIPMENT_IDENTIFIERS` from the contributing (source) equipment."""
    overrides = dict(patient_attributes or {})
    for keyword, value in overrides.items():
        if keyword in REMOVE_WHEN_EMPTY and value == "":
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if overrides.get("InstitutionName") == "":
        for item in ds.get("ContributingEquipmentSequence", []):
            for keyword in EQUIPMENT_IDENTIFIERS:
                if keyword in item:
                    delattr(item, keyword)
    _single_component_person_names(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    atomic.write_bytes(path, buffer.getvalue())


def _single_component_person_names(ds: pydicom.Dataset) -> None:
    """Write a caret-less person name copied from the source (``STS_025``) as ``STS_025^``.

    The same name (one family-name component), in the form PS3.5 6.2.1.2 asks for: without the caret dciodvfy
    warns "Retired Person Name form". Lenient reading, strict writing.
    """
    for keyword in ("PatientName", "ReferringPhysicianName"):
        value = str(ds.get(keyword, "") or "")
        if value and "^" not in value and "=" not in value:
            setattr(ds, keyword, value + "^")


# Maximum value lengths of the string VRs that highdicom copies from the source CT (PS3.5 table 6.2-1).
_MAX_LENGTH = {"SH": 16, "LO": 64}


def enforce_value_lengths(ds: pydicom.Dataset, source: Path) -> None:
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


def pin_stamps(
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
