"""The CT grid (LPS geometry, valid by construction) and the archive's header-only references to series,
masks and exams."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpd_imaging.domain._enums import MaskSource, TimepointRole, coerce_enum
from hpd_imaging.errors import GeometryError

if TYPE_CHECKING:  # SimpleITK is heavy; import it only where a conversion is asked for
    import SimpleITK as sitk

# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------

_ORTHONORMAL_TOL = 1e-4


@dataclass(frozen=True)
class ImageGeometry:
    """A regular voxel grid in the patient frame (LPS, mm).

    ``shape`` is ``(n_slices, n_rows, n_columns)`` (array order); ``spacing_mm``, ``origin_mm`` and the
    columns of ``direction`` are in index order ``(i, j, k)``.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(n) <= 0 for n in self.shape):
            raise GeometryError(f"expected a 3D shape of positive sizes, got {self.shape}")
        if len(self.spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing_mm):
            raise GeometryError(f"expected 3 positive finite spacings in mm, got {self.spacing_mm}")
        if len(self.origin_mm) != 3 or not all(np.isfinite(o) for o in self.origin_mm):
            raise GeometryError(f"expected a finite 3D origin in mm, got {self.origin_mm}")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (9,) or not np.all(np.isfinite(d)):
            raise GeometryError(f"expected 9 finite direction cosines, got {self.direction}")
        m = d.reshape(3, 3)
        if not np.allclose(m.T @ m, np.eye(3), atol=_ORTHONORMAL_TOL):
            raise GeometryError(
                f"expected an orthonormal direction matrix (sheared grids must be resampled first), "
                f"got {tuple(round(float(x), 6) for x in d)}"
            )
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        object.__setattr__(self, "origin_mm", tuple(float(o) for o in self.origin_mm))
        object.__setattr__(self, "direction", tuple(float(x) for x in d))

    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 matrix whose columns are the i, j, k axis directions in LPS."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping a homogeneous index ``(i, j, k, 1)`` to LPS millimetres."""
        a = np.eye(4)
        a[:3, :3] = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        a[:3, 3] = self.origin_mm
        return a

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))

    @property
    def slice_normal(self) -> np.ndarray:
        """Unit vector of the k axis (the direction in which slices are stacked)."""
        return self.direction_matrix[:, 2]

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map continuous indices ``(..., 3)`` in ``(i, j, k)`` order to LPS millimetres."""
        ijk = np.asarray(ijk, dtype=float)
        lps: np.ndarray = ijk @ (self.direction_matrix * np.asarray(self.spacing_mm)[None, :]).T + np.asarray(
            self.origin_mm
        )
        return lps

    def lps_to_index(self, xyz: np.ndarray) -> np.ndarray:
        """Map LPS millimetres ``(..., 3)`` to continuous ``(i, j, k)`` indices."""
        xyz = np.asarray(xyz, dtype=float) - np.asarray(self.origin_mm)
        m = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        return xyz @ np.linalg.inv(m).T

    def is_close(self, other: ImageGeometry, tol_mm: float = 1e-3, tol_direction: float = 1e-4) -> bool:
        """True when both grids describe the same voxels (shape equal, geometry within tolerances)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=tol_mm)
            and np.allclose(self.origin_mm, other.origin_mm, atol=tol_mm)
            and np.allclose(self.direction, other.direction, atol=tol_direction)
        )

    def describe_difference(self, other: ImageGeometry) -> str:
        """Human-readable list of what differs; used in mismatch error messages."""
        parts = []
        if self.shape != other.shape:
            parts.append(f"shape {other.shape} vs {self.shape}")
        if not np.allclose(self.spacing_mm, other.spacing_mm, atol=1e-3):
            parts.append(f"spacing {_fmt(other.spacing_mm)} vs {_fmt(self.spacing_mm)} mm")
        if not np.allclose(self.origin_mm, other.origin_mm, atol=1e-3):
            parts.append(f"origin {_fmt(other.origin_mm)} vs {_fmt(self.origin_mm)} mm")
        if not np.allclose(self.direction, other.direction, atol=1e-4):
            parts.append(f"direction {_fmt(other.direction)} vs {_fmt(self.direction)}")
        return "; ".join(parts) or "identical"

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> ImageGeometry:
        size = image.GetSize()
        return cls(
            shape=(size[2], size[1], size[0]),
            spacing_mm=tuple(image.GetSpacing()),
            origin_mm=tuple(image.GetOrigin()),
            direction=tuple(image.GetDirection()),
        )

    def apply_to_sitk(self, image: sitk.Image) -> None:
        image.SetSpacing(self.spacing_mm)
        image.SetOrigin(self.origin_mm)
        image.SetDirection(self.direction)


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


# --------------------------------------------------------------------------------------------------
# Archive-level references (headers only)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesRef:
    """A DICOM image stack on disk, described from headers only (no pixel data read)."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    modality: str
    files: tuple[Path, ...]
    study_date: dt.date | None = None
    series_description: str = ""
    rows: int = 0
    columns: int = 0
    image_orientation_patient: tuple[float, ...] = ()
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    convolution_kernel: str = ""
    image_type: tuple[str, ...] = ()
    stack_key: str = ""  # distinguishes stacks split out of one SeriesInstanceUID

    @property
    def n_slices(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class MaskRef:
    """A segmentation file paired (or to be paired) with a CT series."""

    path: Path
    source: MaskSource
    patient_id: str = ""
    referenced_series_uid: str = ""
    frame_of_reference_uid: str = ""
    # label value -> (lesion_id, organ, is_lymph_node); from masks.csv for label maps
    label_table: tuple[tuple[int, str, str, bool], ...] = ()
    pairing: str = (
        ""  # how it was paired: "series_uid", "instances", "frame_of_reference", "geometry", "manifest"
    )
    # DICOM SEG / RTSTRUCT structures from the header, each "name [type]: lesion|not a lesion (rule)"
    structures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Timepoint:
    """One exam date of one patient: the chosen CT series and its masks."""

    patient_id: str
    scan_date: dt.date
    ct: SeriesRef | None = None  # None for a course read from a measurement table (no images)
    masks: tuple[MaskRef, ...] = ()
    role: TimepointRole = TimepointRole.UNASSIGNED
    alternatives: tuple[SeriesRef, ...] = ()
    choice_reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.scan_date, dt.date) or isinstance(self.scan_date, dt.datetime):
            raise ValueError(
                f"patient {self.patient_id}: expected scan_date as a date, got {self.scan_date!r}"
            )
        object.__setattr__(self, "role", coerce_enum(TimepointRole, self.role, "timepoint role"))


