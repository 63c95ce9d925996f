"""Typed, enum-valued, frozen records the response stage returns (issue 14).

One :class:`RecistTimepoint` per scan (RECIST 1.1, volumetric RECIST, iRECIST), one :class:`ImmuneTimepoint`
per on-treatment scan (irRC, irRECIST, imRECIST), the :class:`~hpd_imaging.response.kinetics.PatientFacts`
(kinetics) and one :class:`~hpd_imaging.domain.HpdAssessment` per definition, gathered in a
:class:`PatientResponse`. Records are built once and never changed; only the writers (response/run.py) turn
them into tables, with the column names of specs/hpd_kinetics.md section A. Enum values are the strings the
tables have always carried, so a record's field compares equal to its CSV cell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hpd_imaging.domain import HpdAssessment, PatientCourse, coerce_enum

if TYPE_CHECKING:
    from hpd_imaging.response.kinetics import PatientFacts


class RecistResponse(StrEnum):
    """RECIST 1.1 response of targets, non-targets or overall (Eisenhauer 2009); NA = no such lesions."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NON_CR_NON_PD = "NON_CR_NON_PD"
    NE = "NE"
    NA = "NA"


class IrecistResponse(StrEnum):
    """iRECIST (Seymour 2017)."""

    ICR = "iCR"
    IPR = "iPR"
    ISD = "iSD"
    INON_CR_NON_PD = "iNON_CR_NON_PD"
    IUPD = "iUPD"
    ICPD = "iCPD"
    NE = "NE"


class IrrcResponse(StrEnum):
    """irRC (Wolchok 2009) and irRECIST (Nishino 2013) share these labels."""

    IRCR = "irCR"
    IRPR = "irPR"
    IRSD = "irSD"
    IRPD = "irPD"
    NE = "NE"


def _coerce(record: Any, enums: dict[str, type[StrEnum]]) -> None:
    for name, enum in enums.items():
        value = getattr(record, name)
        if value is not None:
            object.__setattr__(record, name, coerce_enum(enum, value, f"{type(record).__name__}.{name}"))


@dataclass(frozen=True)
class RecistTimepoint:
    """One scan of one patient: target sums and RECIST 1.1 / volumetric / iRECIST responses (on-treatment
    scans only carry responses; pre-baseline and baseline scans carry the sums)."""

    patient_id: str
    scan_date: dt.date
    role: str  # earlier, pre_baseline, baseline, first_eval, follow_up, unassigned
    days_from_ici: int | None
    n_targets: int
    n_targets_not_measured: int
    sld_mm: float | None
    volume_mm3: float | None
    nadir_sld_mm: float | None = None
    sld_change_from_baseline_pct: float | None = None
    sld_change_from_nadir_pct: float | None = None
    volume_change_from_baseline_pct: float | None = None
    target_response: RecistResponse | None = None
    non_target_response: RecistResponse | None = None
    n_new_lesions: int | None = None
    new_lesion_ids: str | None = None
    recist_response: RecistResponse | None = None
    volumetric_target_response: RecistResponse | None = None
    volumetric_response: RecistResponse | None = None
    irecist_response: IrecistResponse | None = None
    irecist_confirmation: str | None = None

    def __post_init__(self) -> None:
        _coerce(
            self,
            {
                "target_response": RecistResponse,
                "non_target_response": RecistResponse,
                "recist_response": RecistResponse,
                "volumetric_target_response": RecistResponse,
                "volumetric_response": RecistResponse,
                "irecist_response": IrecistResponse,
            },
        )

    @property
    def on_treatment(self) -> bool:
        return self.recist_response is not None


@dataclass(frozen=True)
class ImmuneTimepoint:
    """irRC, irRECIST and imRECIST on one on-treatment scan."""

    scan_date: dt.date
    irrc_burden_mm2: float | None
    irrc_response: IrrcResponse
    irrc_confirmation: str
    irrecist_burden_mm: float | None
    irrecist_response: IrrcResponse
    irrecist_confirmation: str
    imrecist_burden_mm: float | None
    imrecist_response: RecistResponse
    imrecist_confirmation: str

    def __post_init__(self) -> None:
        _coerce(
            self,
            {
                "irrc_response": IrrcResponse,
                "irrecist_response": IrrcResponse,
                "imrecist_response": RecistResponse,
            },
        )


@dataclass(frozen=True)
class TimepointResponse:
    """Every criterion on one scan."""

    recist: RecistTimepoint
    immune: ImmuneTimepoint | None = None

    def row(self) -> dict[str, Any]:
        """The response.csv row (enum members are their string values)."""
        out = dataclasses.asdict(self.recist)
        if self.immune is not None:
            out.update({k: v for k, v in dataclasses.asdict(self.immune).items() if k != "scan_date"})
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in out.items()}


@dataclass(frozen=True)
class PatientResponse:
    """What the response stage returns for one course."""

    course: PatientCourse
    timepoints: tuple[TimepointResponse, ...]
    kinetics: PatientFacts
    hpd: tuple[HpdAssessment, ...]
    growth: tuple[tuple[str, Any], ...]  # growth-model fit, (name, value) pairs in growth.csv order

    @property
    def patient_id(self) -> str:
        return self.course.patient_id

    def assessment(self, definition: str) -> HpdAssessment:
        for a in self.hpd:
            if a.definition == definition:
                return a
        raise KeyError(f"patient {self.patient_id}: no HPD definition {definition!r}")
