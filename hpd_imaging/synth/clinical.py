"""Clinical variables of a synthetic patient, and clinical.csv.

Risk factors reported for HPD (age > 65, >= 2 metastatic sites, LDH above the upper limit of normal) are drawn
*conditionally on the phenotype* so that their association is known exactly: P(factor | hyperprogressor) vs
P(factor | other) below gives odds ratios of about 2.5-3.7, the range reported in the HPD literature
(e.g. Champiat 2017: age > 65; Kim CG 2019 / Lo Russo 2019: LDH, number of sites).

Dates follow specs/synthetic_archives.md: baseline CT 1-28 days before the first ICI dose, pre-baseline CT
6-12 weeks before baseline, first evaluation 6-9 weeks after the start (6-7.5 weeks for hyperprogressors,
whose treatment then stops within days, so TTF < 2 months), later scans every ``followup_interval_days``
(+/- 7 days).

Survival (issue 19) is drawn from a documented proportional-hazards model so that a survival analysis of the
archive has a known answer: after the patient's last scan, death comes at an exponential time with hazard
``ln 2 / survival_median_months`` per month for every phenotype except hyperprogressors, whose hazard is
``survival_hazard_ratio_hpd`` times larger (the true hazard ratio of hyperprogressors vs the others). Nobody
dies before the last scan (a scanned patient is alive), so from the first evaluation on the hazards are zero
for every patient until the last scan (about the same time for all phenotypes) and proportional after it.
Follow-up ends (administrative censoring) uniformly ``survival_followup_months`` after the last scan; a death
after that is not observed. ``last_followup_date`` is the death date for the dead, the censoring date for the
others. Survival uses its own random stream (:func:`survival_stream`), so changing its settings changes
clinical.csv and ground_truth.json only, never an image.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpd_imaging.settings.base import MONTH_DAYS

CLINICAL_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "ici_start_date",
    "treatment_stop_date",
    "death_date",
    "death_from_progression",
    "last_followup_date",
    "ecog_baseline",
    "ecog_worst_first_2_months",
    "age",
    "sex",
    "ldh_above_uln",
    "n_metastatic_sites",
    "prior_radiotherapy",
)

FIRST_ICI_DATE = dt.date(2021, 1, 4)

#: P(factor | phenotype is hyperprogressor), P(factor | any other phenotype)
P_LDH_HIGH = (0.55, 0.30)
P_TWO_OR_MORE_SITES = (0.75, 0.45)
AGE_MEAN_SD = ((69.0, 8.0), (63.0, 9.0))  # gives P(age > 65) ~ 0.65 vs 0.37
LATENT_MEAN: dict[str, float] = {
    "hyperprogressor": 1.0,
    "progressor": 0.3,
    "stable": 0.0,
    "pseudoprogression": 0.0,
    "responder": -0.3,
}


@dataclass(frozen=True)
class ClinicalDraw:
    age: int
    sex: str
    ldh_above_uln: bool
    n_metastatic_sites: int
    prior_radiotherapy: bool
    ecog_baseline: int
    ecog_worst_first_2_months: int
    latent_risk: float


@dataclass(frozen=True)
class Schedule:
    ici_start: dt.date
    scan_dates: tuple[dt.date, ...]  # pre-baseline, baseline, follow-ups
    treatment_stop: dt.date | None
    death: dt.date | None
    death_from_progression: bool | None
    last_followup: dt.date | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        return ("pre_baseline", "baseline") + ("follow_up",) * (len(self.scan_dates) - 2)


def draw_clinical(rng: np.random.Generator, phenotype: str) -> ClinicalDraw:
    h = 0 if phenotype == "hyperprogressor" else 1
    mean, sd = AGE_MEAN_SD[h]
    age = int(np.clip(round(rng.normal(mean, sd)), 30, 90))
    two_plus = bool(rng.random() < P_TWO_OR_MORE_SITES[h])
    n_sites = int(rng.integers(2, 4)) if two_plus else 1
    ecog_p = (0.2, 0.5, 0.3) if h == 0 else (0.35, 0.5, 0.15)
    ecog = int(rng.choice(3, p=ecog_p))
    worse = int(rng.choice([1, 2])) if h == 0 else int(rng.choice([0, 0, 0, 1]))
    return ClinicalDraw(
        age=age,
        sex="M" if rng.random() < 0.6 else "F",
        ldh_above_uln=bool(rng.random() < P_LDH_HIGH[h]),
        n_metastatic_sites=n_sites,
        prior_radiotherapy=bool(rng.random() < 0.3),
        ecog_baseline=ecog,
        ecog_worst_first_2_months=min(4, ecog + worse),
        latent_risk=float(rng.normal(LATENT_MEAN[phenotype], 1.0)),
    )


def draw_schedule(rng: np.random.Generator, phenotype: str, n_followups: int, interval_days: int) -> Schedule:
    ici = FIRST_ICI_DATE + dt.timedelta(days=int(rng.integers(0, 730)))
    baseline = ici - dt.timedelta(days=int(rng.integers(1, 29)))
    pre = baseline - dt.timedelta(days=int(rng.integers(42, 85)))
    first_eval_days = (
        int(rng.integers(42, 54)) if phenotype == "hyperprogressor" else int(rng.integers(42, 64))
    )
    dates = [pre, baseline, ici + dt.timedelta(days=first_eval_days)]
    for _ in range(n_followups - 1):
        dates.append(dates[-1] + dt.timedelta(days=interval_days + int(rng.integers(-7, 8))))
    last = dates[-1]
    stop: dt.date | None
    # The conditional draws marked "stream" below once drew the death date; death now comes from
    # draw_survival on its own stream, but these draws stay so that everything drawn after the schedule from
    # the design stream (poses, growth rates, lesion shapes) - and so every image - is unchanged.
    if phenotype == "hyperprogressor":
        stop = dates[2] + dt.timedelta(days=int(rng.integers(1, 6)))
        _stream(rng, 0.6, 14, 91)
    elif phenotype == "progressor":
        stop_scan = dates[2] if rng.random() < 0.5 or len(dates) == 3 else dates[3]
        stop = stop_scan + dt.timedelta(days=int(rng.integers(1, 11)))
        _stream(rng, 0.3, 30, 301)
    else:
        stop = None if rng.random() < 0.7 else last + dt.timedelta(days=int(rng.integers(14, 121)))
        _stream(rng, 0.1, 60, 401)
    return Schedule(ici, tuple(dates), stop, None, None)


def _stream(rng: np.random.Generator, p: float, low: int, high: int) -> None:
    """Consume the design stream exactly as the former death draw did (see draw_schedule)."""
    if rng.random() < p:
        rng.integers(low, high)


def survival_stream(seed: int, index: int) -> np.random.Generator:
    """The survival draws' own stream: independent of the image streams of ``SeedSequence([seed, index])``."""
    return np.random.default_rng([seed, index, 104729])


def hazard_per_month(phenotype: str, median_months: float, hazard_ratio_hpd: float) -> float:
    """Death hazard per month (30.4375 days) after the last scan, of the module docstring's model."""
    base = math.log(2.0) / median_months
    return base * hazard_ratio_hpd if phenotype == "hyperprogressor" else base


def draw_survival(
    rng: np.random.Generator,
    phenotype: str,
    sched: Schedule,
    *,
    median_months: float,
    hazard_ratio_hpd: float,
    followup_months: tuple[float, float],
) -> Schedule:
    """``sched`` with death (or censoring) drawn from the module docstring's proportional-hazards model."""
    last = sched.scan_dates[-1]
    rate = hazard_per_month(phenotype, median_months, hazard_ratio_hpd)
    death_days = max(1, int(round(rng.exponential(1.0 / rate) * MONTH_DAYS)))
    censor_days = int(round(rng.uniform(*followup_months) * MONTH_DAYS))
    stop = sched.treatment_stop
    if death_days <= censor_days:
        death = last + dt.timedelta(days=death_days)
        from_prog = phenotype in ("hyperprogressor", "progressor")
        if stop is None or stop > death:
            stop = death
        return Schedule(sched.ici_start, sched.scan_dates, stop, death, from_prog, death)
    followup = last + dt.timedelta(days=censor_days)
    if stop is not None and stop > followup:
        stop = None  # a stop after the end of follow-up is not known yet
    return Schedule(sched.ici_start, sched.scan_dates, stop, None, None, followup)


def clinical_row(patient_id: str, clin: ClinicalDraw, sched: Schedule) -> dict[str, str]:
    """One clinical.csv row; missing values are empty cells."""

    def d(x: dt.date | None) -> str:
        return x.isoformat() if x is not None else ""

    def b(x: bool | None) -> str:
        return "" if x is None else str(bool(x)).lower()

    return {
        "patient_id": patient_id,
        "ici_start_date": d(sched.ici_start),
        "treatment_stop_date": d(sched.treatment_stop),
        "death_date": d(sched.death),
        "death_from_progression": b(sched.death_from_progression),
        "last_followup_date": d(sched.last_followup),
        "ecog_baseline": str(clin.ecog_baseline),
        "ecog_worst_first_2_months": str(clin.ecog_worst_first_2_months),
        "age": str(clin.age),
        "sex": clin.sex,
        "ldh_above_uln": b(clin.ldh_above_uln),
        "n_metastatic_sites": str(clin.n_metastatic_sites),
        "prior_radiotherapy": b(clin.prior_radiotherapy),
    }


def write_clinical_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CLINICAL_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
