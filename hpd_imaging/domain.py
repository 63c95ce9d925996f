"""Core domain types shared by every stage.

Conventions (see ../shared/ARCHITECTURE.md):

* Arrays are indexed ``[k, j, i]`` = ``[slice, row, column]``, exactly as ``SimpleITK.GetArrayFromImage``
  returns them, so that conversion to and from SimpleITK never copies or transposes.
* Geometry vectors (spacing, origin, direction columns) are in ``(i, j, k)`` = ``(column, row, slice)``
  order and in the DICOM patient frame (LPS, millimetres), again as SimpleITK stores them.
* ``direction`` is the 3x3 matrix whose *columns* are the unit vectors of the i, j and k index axes in LPS;
  it is stored row-major as 9 floats (SimpleITK's ``GetDirection`` layout).
* Units live in field names (``_mm``, ``_mm3``, ``_days``); dates are ``datetime.date``.

Types check their invariants when built (valid by construction): a mask whose shape differs from its grid,
a non-positive spacing or a non-orthonormal direction raise :class:`~hpd_imaging.errors.GeometryError`
naming the rule and the value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpd_imaging.errors import GeometryError, MaskError

if TYPE_CHECKING:  # SimpleITK is heavy; import it only where a conversion is asked for
    import SimpleITK as sitk


class TimepointRole(StrEnum):
    """Role of an exam relative to the first immune-checkpoint-inhibitor dose."""

    PRE_BASELINE = "pre_baseline"
    BASELINE = "baseline"
    FOLLOW_UP = "follow_up"
    UNASSIGNED = "unassigned"  # roles need the ICI start date; without it exams stay unassigned


class LesionRole(StrEnum):
    """RECIST 1.1 role of a lesion, fixed at baseline (NEW for lesions first seen after it)."""

    TARGET = "target"
    NON_TARGET = "non_target"
    NEW = "new"


class MaskSource(StrEnum):
    """Where a lesion mask came from (column ``mask_source`` of lesions.csv)."""

    SEG = "seg"
    RTSTRUCT = "rtstruct"
    LABELMAP = "labelmap"


class HpdLabel(StrEnum):
    """Outcome of one HPD definition for one patient."""

    HPD = "hpd"
    NO_HPD = "no_hpd"
    NOT_EVALUABLE = "not_evaluable"


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
        return ijk @ (self.direction_matrix * np.asarray(self.spacing_mm)[None, :]).T + np.asarray(
            self.origin_mm
        )

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


@dataclass(frozen=True)
class Timepoint:
    """One exam date of one patient: the chosen CT series and its masks."""

    patient_id: str
    scan_date: dt.date
    ct: SeriesRef
    masks: tuple[MaskRef, ...] = ()
    role: TimepointRole = TimepointRole.UNASSIGNED
    alternatives: tuple[SeriesRef, ...] = ()
    choice_reason: str = ""


# --------------------------------------------------------------------------------------------------
# Images and masks in memory
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CtImage:
    """CT voxels in Hounsfield units on a regular LPS grid."""

    hu: np.ndarray  # [k, j, i], float32 or int16, HU after the modality LUT
    geometry: ImageGeometry
    frame_of_reference_uid: str = ""
    series_instance_uid: str = ""
    source: str = ""  # path or description, for error messages and provenance
    provenance: dict[str, Any] = field(default_factory=dict)  # e.g. {"resampled": "gantry tilt 18.5 deg"}

    def __post_init__(self) -> None:
        if self.hu.ndim != 3 or tuple(self.hu.shape) != self.geometry.shape:
            raise GeometryError(
                f"{self.source or 'CT'}: expected voxel array of shape {self.geometry.shape}, "
                f"got {tuple(self.hu.shape)}"
            )

    def to_sitk(self) -> sitk.Image:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.hu)
        self.geometry.apply_to_sitk(image)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, **kwargs: Any) -> CtImage:
        import SimpleITK as sitk

        return cls(hu=sitk.GetArrayFromImage(image), geometry=ImageGeometry.from_sitk(image), **kwargs)


@dataclass(frozen=True, eq=False)
class LesionMask:
    """One lesion's binary mask on a CT grid, with what the segmentation says about it."""

    mask: np.ndarray  # bool [k, j, i] on ``geometry``
    geometry: ImageGeometry
    label: str  # segment label, ROI name or label value as text
    source: MaskSource
    source_path: str = ""
    lesion_id: str | None = None  # identity declared by the data (tracking ID, manifest), if any
    tracking_uid: str | None = None
    organ: str = ""
    is_lymph_node: bool = False
    label_value: int | None = None  # segment number / label-map value
    notes: tuple[str, ...] = ()  # warnings met while reading (e.g. contour off slice planes)

    def __post_init__(self) -> None:
        if self.mask.dtype != bool:
            raise MaskError(
                f"{self.source_path or self.label}: expected a boolean mask, got dtype {self.mask.dtype}"
            )
        if tuple(self.mask.shape) != self.geometry.shape:
            raise MaskError(
                f"{self.source_path or self.label}: expected mask shape {self.geometry.shape}, "
                f"got {self.mask.shape}"
            )

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.mask))

    def to_sitk(self) -> sitk.Image:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.mask.astype(np.uint8))
        self.geometry.apply_to_sitk(image)
        return image


# --------------------------------------------------------------------------------------------------
# Lesions over time
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lesion:
    """A lesion's identity across timepoints."""

    lesion_id: str
    tracking_uid: str
    organ: str = ""
    is_lymph_node: bool = False
    role: LesionRole = LesionRole.NON_TARGET
    first_seen: dt.date | None = None


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion at one timepoint, in physical millimetres (conventions: specs/measurement.md)."""

    lesion_id: str
    voxel_count: int
    volume_mm3: float
    longest_axial_diameter_mm: float
    short_axis_mm: float
    max_3d_diameter_mm: float
    mesh_volume_mm3: float = 0.0
    surface_area_mm2: float = 0.0
    sphericity: float = 0.0
    centroid_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    organ: str = ""
    is_lymph_node: bool = False
    label: str = ""
    patient_id: str = ""
    scan_date: dt.date | None = None
    is_new: bool = False
    is_fragmented: bool = False  # several disconnected pieces: long axes summed per RECIST 1.1
    n_fragments: int = 1
    series_uid: str = ""
    mask_source: str = ""
    # key slice and axis end points (LPS mm) so that reports and DICOM SR can draw the measurement
    long_axis_slice_index: int | None = None
    long_axis_endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    short_axis_endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None

    def __post_init__(self) -> None:
        for name in ("volume_mm3", "longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"lesion {self.lesion_id}: expected {name} >= 0 and finite, got {value}")


@dataclass(frozen=True)
class TrackingMatch:
    """Evidence for one identity decision of the tracker."""

    lesion_id: str
    scan_date: dt.date
    label: str  # label of the mask at this timepoint
    method: str  # "tracking_uid", "label", "manifest", "position", "new", "disappeared"
    distance_mm: float | None = None
    dice: float | None = None
    note: str = ""


@dataclass(frozen=True)
class PatientCourse:
    """A patient's lesions and measurements over time; what the response stage reads."""

    patient_id: str
    lesions: tuple[Lesion, ...]
    measurements: tuple[LesionMeasurement, ...]
    timepoints: tuple[Timepoint, ...] = ()
    tracking: tuple[TrackingMatch, ...] = ()
    clinical: dict[str, Any] = field(default_factory=dict)

    def measurements_of(self, lesion_id: str) -> list[LesionMeasurement]:
        return sorted(
            (m for m in self.measurements if m.lesion_id == lesion_id),
            key=lambda m: m.scan_date or dt.date.min,
        )


@dataclass(frozen=True)
class HpdAssessment:
    """The label of one HPD definition for one patient, with the reason in one sentence."""

    definition: str
    label: HpdLabel
    reason: str
