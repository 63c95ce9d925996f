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
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from hpd_imaging.errors import GeometryError, MaskError

if TYPE_CHECKING:  # SimpleITK is heavy; import it only where a conversion is asked for
    import SimpleITK as sitk


class TimepointRole(StrEnum):
    """Role of an exam relative to the first immune-checkpoint-inhibitor dose (specs/hpd_kinetics.md 0).

    One rule (hpd_imaging/course/roles.py): BASELINE = last scan on or before the ICI start; PRE_BASELINE =
    the scan just before it (the reference period of the kinetics); EARLIER = scans before the pre-baseline
    scan; FOLLOW_UP = every scan after the ICI start (the first of them is the first evaluation).
    """

    EARLIER = "earlier"
    PRE_BASELINE = "pre_baseline"
    BASELINE = "baseline"
    FOLLOW_UP = "follow_up"
    UNASSIGNED = "unassigned"  # roles need the ICI start date; without it exams stay unassigned


class LesionRole(StrEnum):
    """RECIST 1.1 role of a lesion, fixed once at baseline (NEW for lesions first seen after it).

    Besides TARGET / NON_TARGET / NEW, three states say why a lesion takes no part in the assessment:
    NORMAL_NODE (short axis < 10 mm at baseline: not disease), NOT_AT_BASELINE (absent on the baseline scan,
    e.g. seen only before it) and FRAGMENT (a piece of another lesion, summed into its parent).
    """

    TARGET = "target"
    NON_TARGET = "non_target"
    NEW = "new"
    NORMAL_NODE = "normal_node"
    NOT_AT_BASELINE = "not_at_baseline"
    FRAGMENT = "fragment"


class MaskSource(StrEnum):
    """Where a lesion mask came from (column ``mask_source`` of lesions.csv)."""

    SEG = "seg"
    RTSTRUCT = "rtstruct"
    LABELMAP = "labelmap"
    RULER_SR = "ruler_sr"  # a TID 1500 SR of linear measurements (io/rulers.py): measurements, no mask


class HpdLabel(StrEnum):
    """Outcome of one HPD definition for one patient."""

    HPD = "hpd"
    NO_HPD = "no_hpd"
    NOT_EVALUABLE = "not_evaluable"


E = TypeVar("E", bound=StrEnum)


def coerce_enum(enum: type[E], value: E | str, what: str) -> E:
    """``Enum | str`` -> the enum member (as highdicom accepts options); a wrong string names the choices."""
    if isinstance(value, enum):
        return value
    text = str(value).strip()
    for member in enum:  # the value as written, then case-insensitively (values and names alike)
        if text == member.value:
            return member
    for member in enum:
        if text.lower() in (member.value.lower(), member.name.lower()):
            return member
    choices = ", ".join(m.value for m in enum)
    raise ValueError(f"{what}: expected one of {choices}, got {value!r}")


def _optional_size(owner: str, name: str, value: float | None) -> float | None:
    """A size is a finite number >= 0 or None (missing); NaN is refused: it must never pass as a value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{owner}: expected {name} to be a number or None, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{owner}: expected {name} >= 0 and finite (or None when missing), got {value!r}")
    return number


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


def tight_box(array: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box (array order) of the True voxels of a 3D boolean array; None when there are none.

    Found from the projections on each axis (``np.any`` over the other two), which reads the array once per
    axis without allocating index arrays: on a whole 512x512x250 grid this is what cropping costs.
    """
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(array, axis=other))
        if hits.size == 0:
            return None
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return out[0], out[1], out[2]


_EMPTY_CROP_SHAPE = (0, 0, 0)


@dataclass(frozen=True, eq=False, init=False)
class LesionMask:
    """One lesion's binary mask on a CT grid, stored as its bounding-box crop, with what the segmentation
    says about it.

    Why a crop (issue 21): a lesion of a few thousand voxels on a 512x512x250 grid is a 65 MB boolean array
    when stored whole; a patient's worker held ~200 MiB of such arrays per exam, twice its CT. Here
    ``crop`` is the tight bounding box of the True voxels (bool ``[k, j, i]``) and ``offset`` = ``(k0, j0,
    i0)`` the CT-grid index of ``crop[0, 0, 0]``; ``geometry`` stays the CT's grid, so every position
    (index -> LPS through ``geometry``) and every measurement is the one of the whole-grid mask.

    Built either from a whole-grid boolean ``mask`` (cropped here to its bounding box; the shape must be the
    grid's) or, by the readers, from ``crop=`` and ``offset=`` directly (the crop must lie inside the grid;
    it is trimmed to its tight box). An empty mask has a ``(0, 0, 0)`` crop. :attr:`mask` and
    :meth:`to_full` materialise the whole grid; only consumers that truly need the whole grid call them.
    """

    crop: np.ndarray  # bool [k, j, i]: the tight bounding box of the lesion's voxels
    offset: tuple[int, int, int]  # (k0, j0, i0): grid index of crop[0, 0, 0]
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
    # what the file says the structure is: RT ROI Interpreted Type (RTSTRUCT), segmented property category
    # (SEG, Slicer terminology), and whether the lesion rules (io/structures.py) count it as a lesion and why
    structure_type: str = ""
    is_lesion: bool = True
    lesion_rule: str = ""
    terminology: str = ""  # coded category / type as "scheme^value^meaning" pairs joined by " / "
    color_rgb: tuple[float, float, float] | None = None  # display colour (0-1) from the file, if any

    def __init__(
        self,
        mask: np.ndarray | None = None,
        geometry: ImageGeometry | None = None,
        label: str = "",
        source: MaskSource = MaskSource.SEG,
        source_path: str = "",
        lesion_id: str | None = None,
        tracking_uid: str | None = None,
        organ: str = "",
        is_lymph_node: bool = False,
        label_value: int | None = None,
        notes: tuple[str, ...] = (),
        structure_type: str = "",
        is_lesion: bool = True,
        lesion_rule: str = "",
        terminology: str = "",
        color_rgb: tuple[float, float, float] | None = None,
        *,
        crop: np.ndarray | None = None,
        offset: tuple[int, int, int] | None = None,
    ) -> None:
        where = source_path or label
        if geometry is None:
            raise MaskError(f"{where}: expected the CT grid (geometry) of the mask, got None")
        if (mask is None) == (crop is None):
            raise MaskError(
                f"{where}: expected either a whole-grid mask or a crop with its offset, got "
                f"{'both' if mask is not None else 'neither'}"
            )
        array = mask if mask is not None else crop
        assert array is not None
        if array.dtype != bool:
            raise MaskError(f"{where}: expected a boolean mask, got dtype {array.dtype}")
        if mask is not None:
            if tuple(mask.shape) != geometry.shape:
                raise MaskError(f"{where}: expected mask shape {geometry.shape}, got {mask.shape}")
            start = (0, 0, 0)
        else:
            if array.ndim != 3 or offset is None or len(offset) != 3:
                raise MaskError(
                    f"{where}: expected a 3D crop and its (k, j, i) offset, got shape {array.shape} and "
                    f"offset {offset}"
                )
            start = (int(offset[0]), int(offset[1]), int(offset[2]))
            if any(o < 0 or o + n > g for o, n, g in zip(start, array.shape, geometry.shape, strict=True)):
                raise MaskError(
                    f"{where}: expected the crop inside the grid {geometry.shape}, got shape "
                    f"{tuple(array.shape)} at offset {start}"
                )
        box = tight_box(array)
        if box is None:
            tight, start = np.zeros(_EMPTY_CROP_SHAPE, dtype=bool), (0, 0, 0)
        else:
            whole = all(s.start == 0 and s.stop == n for s, n in zip(box, array.shape, strict=True))
            # a copy unless already tight: a view would keep the whole-grid array it was cut from alive
            tight = array if whole and mask is None and array.base is None else np.array(array[box])
            start = (start[0] + box[0].start, start[1] + box[1].start, start[2] + box[2].start)
        values = dict(
            crop=tight,
            offset=start,
            geometry=geometry,
            label=label,
            source=source,
            source_path=source_path,
            lesion_id=lesion_id,
            tracking_uid=tracking_uid,
            organ=organ,
            is_lymph_node=is_lymph_node,
            label_value=label_value,
            notes=notes,
            structure_type=structure_type,
            is_lesion=is_lesion,
            lesion_rule=lesion_rule,
            terminology=terminology,
            color_rgb=color_rgb,
        )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def box(self) -> tuple[slice, slice, slice]:
        """The crop's place on the grid: ``full[box]`` is ``crop`` (empty slices for an empty mask)."""
        return tuple(  # type: ignore[return-value]
            slice(o, o + n) for o, n in zip(self.offset, self.crop.shape, strict=True)
        )

    @property
    def is_empty(self) -> bool:
        return self.crop.size == 0

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.crop))

    @property
    def volume_mm3(self) -> float:
        return self.voxel_count * self.geometry.voxel_volume_mm3

    def voxel_indices(self) -> np.ndarray:
        """Grid indices ``(n, 3)`` in ``[k, j, i]`` order of the lesion's voxels (``np.argwhere`` of the
        whole-grid mask, in the same order)."""
        return np.argwhere(self.crop) + np.asarray(self.offset, dtype=np.int64)

    def padded(self, margin_kji: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The crop grown by ``margin_kji`` voxels on each side (clipped to the grid) and its offset: the
        lesion-sized work array of a consumer that looks around the lesion (rings, outlines)."""
        if self.is_empty:
            return np.zeros(_EMPTY_CROP_SHAPE, dtype=bool), (0, 0, 0)
        lo = [max(o - m, 0) for o, m in zip(self.offset, margin_kji, strict=True)]
        hi = [
            min(o + n + m, g)
            for o, n, m, g in zip(self.offset, self.crop.shape, margin_kji, self.geometry.shape, strict=True)
        ]
        out = np.zeros(tuple(b - a for a, b in zip(lo, hi, strict=True)), dtype=bool)
        inner = tuple(
            slice(o - a, o - a + n) for o, a, n in zip(self.offset, lo, self.crop.shape, strict=True)
        )
        out[inner] = self.crop
        return out, (lo[0], lo[1], lo[2])

    def to_full(self) -> np.ndarray:
        """The whole-grid boolean mask (allocates ``geometry.shape``): for consumers that need the grid
        itself (a DICOM SEG frame per CT slice, a whole-CT hash), never for storage."""
        full = np.zeros(self.geometry.shape, dtype=bool)
        if not self.is_empty:
            full[self.box] = self.crop
        return full

    @property
    def mask(self) -> np.ndarray:
        """The whole-grid boolean mask, built on each access (see :meth:`to_full`); kept for readers of the
        whole grid (tests, small grids). Stage code works on ``crop`` / ``offset``."""
        return self.to_full()

    def to_sitk(self) -> sitk.Image:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.to_full().astype(np.uint8))
        self.geometry.apply_to_sitk(image)
        return image


# --------------------------------------------------------------------------------------------------
# Lesions over time
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lesion:
    """A lesion's identity across timepoints, with its RECIST 1.1 role fixed once at baseline.

    ``role`` is TARGET / NON_TARGET / NEW (``Enum | str``); ``role_reason`` says why (declared in the table,
    rank by size, not measurable ...). ``fragment_of``: the parent lesion of a RECIST fragment (its long axis
    is summed into the parent's, it is not a new lesion).
    """

    lesion_id: str
    tracking_uid: str = ""
    organ: str = ""
    is_lymph_node: bool = False
    role: LesionRole = LesionRole.NON_TARGET
    first_seen: dt.date | None = None
    role_reason: str = ""
    fragment_of: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.lesion_id, str) or not self.lesion_id.strip():
            raise ValueError(f"expected a non-empty lesion_id, got {self.lesion_id!r}")
        object.__setattr__(self, "role", coerce_enum(LesionRole, self.role, f"lesion {self.lesion_id} role"))
        if self.fragment_of == self.lesion_id:
            raise ValueError(f"lesion {self.lesion_id}: a lesion cannot be a fragment of itself")
        if (self.fragment_of is not None) != (self.role is LesionRole.FRAGMENT):
            raise ValueError(
                f"lesion {self.lesion_id}: expected role fragment exactly when fragment_of is set, "
                f"got role {self.role.value} with fragment_of {self.fragment_of!r}"
            )

    @property
    def is_new(self) -> bool:
        return self.role is LesionRole.NEW


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion at one timepoint, in physical millimetres (conventions: specs/measurement.md).

    Sizes are a finite number >= 0 or ``None`` (not measured / not in the table); NaN is refused when built,
    so a missing value can never pass as a number. A disappeared lesion is measured 0, not None.
    """

    lesion_id: str
    voxel_count: int | None
    volume_mm3: float | None
    longest_axial_diameter_mm: float | None
    short_axis_mm: float | None
    max_3d_diameter_mm: float | None
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
    lesion_rule: str = ""  # why the structure counts as a lesion (io/structures.py), e.g. its RT ROI type
    # key slice and axis end points (LPS mm) so that reports and DICOM SR can draw the measurement
    long_axis_slice_index: int | None = None
    long_axis_endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    short_axis_endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    # measurement uncertainty (1 SD; issue 17, measure/uncertainty.py): None = not known here, the response
    # stage then applies its literature defaults; uncertainty_source says where the SDs came from
    longest_axial_diameter_sd_mm: float | None = None
    short_axis_sd_mm: float | None = None
    volume_sd_mm3: float | None = None
    uncertainty_source: str = ""

    def __post_init__(self) -> None:
        owner = f"lesion {self.lesion_id}"
        for name in (
            "volume_mm3",
            "longest_axial_diameter_mm",
            "short_axis_mm",
            "max_3d_diameter_mm",
            "longest_axial_diameter_sd_mm",
            "short_axis_sd_mm",
            "volume_sd_mm3",
        ):
            object.__setattr__(self, name, _optional_size(owner, name, getattr(self, name)))
        if self.voxel_count is not None and (isinstance(self.voxel_count, bool) or int(self.voxel_count) < 0):
            raise ValueError(f"{owner}: expected voxel_count >= 0 or None, got {self.voxel_count!r}")

    @property
    def recist_diameter_mm(self) -> float | None:
        """RECIST 1.1 diameter: the short axis of a lymph node, the longest axial diameter otherwise."""
        return self.short_axis_mm if self.is_lymph_node else self.longest_axial_diameter_mm

    @property
    def is_present(self) -> bool:
        """Visible on this scan: any size > 0 (a row of zeros records a disappearance)."""
        return any(
            v is not None and v > 0
            for v in (self.longest_axial_diameter_mm, self.short_axis_mm, self.volume_mm3)
        )


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
class ClinicalFacts:
    """What the response stage reads from clinical.csv for one patient; missing is None, never NaN.

    ``covariates`` carries every other column untouched (name, value) for the kinetics table (age, sex ...).
    """

    ici_start_date: dt.date | None = None
    treatment_stop_date: dt.date | None = None
    death_date: dt.date | None = None
    death_from_progression: bool | None = None
    ecog_baseline: int | None = None
    ecog_worst_first_2_months: int | None = None
    covariates: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for name in ("ici_start_date", "treatment_stop_date", "death_date"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
                raise ValueError(f"expected {name} as a date or None, got {value!r}")
        for name in ("ecog_baseline", "ecog_worst_first_2_months"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5
            ):
                raise ValueError(f"expected {name} as an ECOG grade 0-5 or None, got {value!r}")
        for name, value in self.covariates:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"covariate {name}: expected a value or None, got {value!r}")
        if (
            self.treatment_stop_date is not None
            and self.ici_start_date is not None
            and self.treatment_stop_date < self.ici_start_date
        ):
            raise ValueError(
                f"expected treatment_stop_date on or after ici_start_date {self.ici_start_date}, "
                f"got {self.treatment_stop_date}"
            )


@dataclass(frozen=True)
class PatientCourse:
    """A patient's timepoints (roles set once), lesions (RECIST roles set once), measurements and clinical
    facts: the one contract that ``run`` builds from images and ``kinetics`` from a table, and that response,
    radiomics aggregation, report and DICOM SR all read.

    Valid by construction: every measurement names a listed lesion of this patient, at most one measurement
    per lesion per scan date, and a fragment's parent is listed.
    """

    patient_id: str
    lesions: tuple[Lesion, ...]
    measurements: tuple[LesionMeasurement, ...]
    timepoints: tuple[Timepoint, ...] = ()
    tracking: tuple[TrackingMatch, ...] = ()
    clinical: ClinicalFacts = field(default_factory=ClinicalFacts)
    source: str = ""  # file or description, for error messages
    targets_declared: bool = False  # targets from an is_target column (else chosen by RECIST 1.1 rules)

    def __post_init__(self) -> None:
        where = f"{self.source + ': ' if self.source else ''}patient {self.patient_id}"
        ids = [lesion.lesion_id for lesion in self.lesions]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"{where}: expected each lesion listed once, got duplicates {dupes}")
        known = set(ids)
        seen: set[tuple[str, dt.date | None]] = set()
        for m in self.measurements:
            if m.lesion_id not in known:
                raise ValueError(
                    f"{where}: measurement of lesion {m.lesion_id!r} on {m.scan_date}, but the course "
                    f"lists no such lesion (expected one of {sorted(known)})"
                )
            if m.patient_id and m.patient_id != self.patient_id:
                raise ValueError(
                    f"{where}: expected measurements of this patient, got one of {m.patient_id!r}"
                )
            key = (m.lesion_id, m.scan_date)
            if key in seen:
                raise ValueError(f"{where}: lesion {m.lesion_id!r} measured twice on {m.scan_date}")
            seen.add(key)
        for lesion in self.lesions:
            if lesion.fragment_of is not None and lesion.fragment_of not in known:
                raise ValueError(
                    f"{where}: lesion {lesion.lesion_id!r} is a fragment of {lesion.fragment_of!r}, "
                    "which the course does not list"
                )
        if not isinstance(self.clinical, ClinicalFacts):
            raise ValueError(
                f"{where}: expected clinical facts as ClinicalFacts, got {type(self.clinical).__name__}"
            )

    @property
    def scan_dates(self) -> tuple[dt.date, ...]:
        """Every scan date of the course, sorted (timepoints and measurements together)."""
        dates = {t.scan_date for t in self.timepoints} | {
            m.scan_date for m in self.measurements if m.scan_date is not None
        }
        return tuple(sorted(dates))

    def lesion(self, lesion_id: str) -> Lesion:
        for lesion in self.lesions:
            if lesion.lesion_id == lesion_id:
                return lesion
        raise KeyError(f"patient {self.patient_id}: no lesion {lesion_id!r}")

    def role_of(self, scan_date: dt.date) -> TimepointRole:
        for t in self.timepoints:
            if t.scan_date == scan_date:
                return t.role
        return TimepointRole.UNASSIGNED

    def lesions_with_role(self, role: LesionRole | str) -> tuple[Lesion, ...]:
        wanted = coerce_enum(LesionRole, role, "lesion role")
        return tuple(lesion for lesion in self.lesions if lesion.role is wanted)

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

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "label", coerce_enum(HpdLabel, self.label, f"HPD label of {self.definition}")
        )
