"""Lesions over time: identity, measurements with their uncertainty, clinical facts, the patient's course
and the HPD assessment that the response stage returns."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from hpd_imaging.domain._enums import HpdLabel, LesionRole, TimepointRole, _optional_size, coerce_enum
from hpd_imaging.domain.geometry import Timepoint

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

