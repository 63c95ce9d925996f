"""Typed, enum-valued, frozen records the response stage returns (issue 14).

One :class:`RecistTimepoint` per scan (RECIST 1.1, volumetric RECIST, iRECIST), one :class:`ImmuneTimepoint`
per on-treatment scan (irRC, irRECIST, imRECIST), the :class:`PatientFacts`
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
from typing import Any

from hpd_imaging.domain import HpdAssessment, PatientCourse, coerce_enum


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
        if value is not None and type(value) is not enum:  # already a member: nothing to check
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
class PatientFacts:
    """Everything an HPD rule may read for one patient (growth kinetics with the inputs that produced them);
    every number is also written to kinetics.csv. Frozen: built once by :func:`compute_facts`."""

    patient_id: str
    ici_start: dt.date | None = None
    pre_baseline_date: dt.date | None = None
    baseline_date: dt.date | None = None
    first_eval_date: dt.date | None = None
    n_targets: int = 0
    n_targets_not_measured_pre_baseline: int | None = None  # baseline targets without a row on that scan
    n_targets_not_measured_first_eval: int | None = None
    t_ref_days: int | None = None
    t_exp_days: int | None = None
    days_pre_baseline_to_ici: int | None = None
    days_ici_to_first_eval: int | None = None
    sld_pre_baseline_mm: float | None = None
    sld_baseline_mm: float | None = None
    sld_first_eval_mm: float | None = None
    burden_pre: float | None = None
    burden_base: float | None = None
    burden_first: float | None = None
    volume_pre_baseline_mm3: float | None = None
    volume_baseline_mm3: float | None = None
    volume_first_eval_mm3: float | None = None
    tgr_ref: float | None = None
    tgr_exp: float | None = None
    tgr_ratio: float | None = None
    delta_tgr: float | None = None
    tgk_ref: float | None = None
    tgk_exp: float | None = None
    tgk_ratio: float | None = None
    vol_tgr_ref: float | None = None
    vol_tgr_exp: float | None = None
    vol_tgr_ratio: float | None = None
    vol_delta_tgr: float | None = None
    vol_tgk_ref: float | None = None
    vol_tgk_exp: float | None = None
    vol_tgk_ratio: float | None = None
    pace_ref: float | None = None
    pace_exp: float | None = None
    pace_ratio: float | None = None
    sld_change_pct: float | None = None
    sld_change_mm: float | None = None
    burden_change_pct: float | None = None
    volume_change_pct: float | None = None
    volume_change_mm3: float | None = None
    # minimum detectable change of the target sums over the experimental period: mdc_z x SD of the change
    # (issue 17; None when a sum or its SD is unknown)
    sld_change_mdc_mm: float | None = None
    volume_change_mdc_mm3: float | None = None
    recist_first_eval: str = "NE"
    target_response_first_eval: str = "NE"
    irecist_first_eval: str = "NE"
    volumetric_response_first_eval: str = "NE"
    pd1: bool | None = None
    vol_pd1: bool | None = None
    n_new_first_eval: int = 0
    n_new_organs_first_eval: int = 0
    max_new_in_involved_organ: int = 0
    n_organs_with_new: int = 0
    ttf_days: int | None = None
    ttf_event: bool = False  # True when a stop (or death) date is known; False: censored / on treatment
    death_days: int | None = None
    death_from_progression: bool | None = None
    ecog_baseline: int | None = None
    ecog_worst_first_2_months: int | None = None
    post_baseline_scans: tuple[tuple[int, float | None], ...] = ()  # (days from ICI, ΔS %)
    month_days: float = 30.4375


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
class MetricInterval:
    """Central interval of one kinetic metric over the draws (None: undefined in too many draws)."""

    metric: str  # kinetics.csv column
    low: float | None
    high: float | None


@dataclass(frozen=True)
class LabelStability:
    """How robust one definition's reported label is to the measurement error."""

    definition: str
    probability: float | None  # share of hpd among evaluable draws; None when no draw was evaluable
    agreement: float  # share of all draws giving the reported label
    stable: bool  # agreement >= stable_agreement
    n_evaluable: int


@dataclass(frozen=True)
class PatientStability:
    """The stability analysis of one patient (response/stability.py, issue 17)."""

    draws: int
    seed: int
    uncertainty_source: str  # where the SDs came from: grid, table, literature (";"-joined when mixed)
    intervals: tuple[MetricInterval, ...]
    labels: tuple[LabelStability, ...]
    # whether >= stable_agreement of the draws, each re-running the automatic RECIST target selection on its
    # drawn baseline sizes, selected the reported targets (always True for declared targets); informative:
    # the labels' own agreement already carries the selection's effect
    target_selection_stable: bool = True

    def label(self, definition: str) -> LabelStability:
        for item in self.labels:
            if item.definition == definition:
                return item
        raise KeyError(f"no stability record for definition {definition!r}")


@dataclass(frozen=True)
class PatientResponse:
    """What the response stage returns for one course."""

    course: PatientCourse
    timepoints: tuple[TimepointResponse, ...]
    kinetics: PatientFacts
    hpd: tuple[HpdAssessment, ...]
    growth: tuple[tuple[str, Any], ...]  # growth-model fit, (name, value) pairs in growth.csv order
    stability: PatientStability | None = None  # label stability under measurement error (issue 17)

    @property
    def patient_id(self) -> str:
        return self.course.patient_id

    def assessment(self, definition: str) -> HpdAssessment:
        for a in self.hpd:
            if a.definition == definition:
                return a
        raise KeyError(f"patient {self.patient_id}: no HPD definition {definition!r}")
