"""Survival by HPD definition: a landmark analysis at the first evaluation (lifelines).

Why a landmark: an HPD label is only known at the first on-treatment scan, so counting survival from the ICI
start would credit the "no HPD" group with the time every patient had to survive to be labelled (immortal-time
bias). Survival is therefore counted from ``first_eval_date``; a patient enters when alive on that date:

* no first evaluation                          -> left out ("no first evaluation");
* died or censored *before* the first evaluation -> left out ("died or censored before first evaluation");
* died *on* the first evaluation date           -> kept, with time 0 and an event (alive at the scan that
  labelled them; leaving them out would hide the earliest deaths HPD is meant to predict);
* neither death nor last follow-up date         -> left out ("no follow-up").

Progression-free survival from the same landmark counts a progression only when it is strictly after the
first evaluation. HPD *is* progression at the first evaluation: counting that progression would put every
HPD patient at time 0 with an event, and the PFS comparison would only restate the label. A patient whose
(first) progression is on or before the landmark is followed on to death or last follow-up (clinical.csv has
no later progression date), and the landmark table's ``note`` says so; for such patients PFS from the
landmark is in effect survival, which the report's PFS section should be read with.

For every column ``hpd_<key>`` of the kinetics table (any key; ``_reason``, ``_probability``, ``_stable``
columns are not definitions) the patients labelled ``hpd`` or ``no_hpd`` are compared: Kaplan-Meier medians
(months of 30.4375 days), the log-rank test, Cox hazard ratios (HPD vs no HPD) with 95 % CI, univariable and
adjusted for the clinical covariates present, and Harrell's C-index of the label. Degenerate cases (a group
empty, no events, no events in one group: the Cox likelihood is then monotone and the HR infinite) give None
with a reason, never a crash or a NaN in a number column.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from hpd_imaging.outcome.followup import FollowUp, to_date
from hpd_imaging.settings.base import MONTH_DAYS

logger = logging.getLogger(__name__)

Endpoint = Literal["os", "pfs"]

#: covariates of the adjusted Cox model, taken when present in clinical.csv (issue 19)
COVARIATES = ("age", "ecog_baseline", "ldh_above_uln", "n_metastatic_sites")
_NOT_DEFINITIONS = ("_reason", "_probability", "_stable")

SURVIVAL_COLUMNS = [
    "definition",
    "n_hpd",
    "n_no_hpd",
    "events_hpd",
    "events_no_hpd",
    "median_os_hpd_months",
    "median_os_no_hpd_months",
    "logrank_chi2",
    "logrank_p",
    "hr",
    "hr_ci_low",
    "hr_ci_high",
    "hr_adjusted",
    "hr_adjusted_ci_low",
    "hr_adjusted_ci_high",
    "c_index",
]
LANDMARK_COLUMNS = [
    "patient_id",
    "first_eval_date",
    "end_date",
    "time_months",
    "event",
    "excluded_reason",
    "note",
]


_HPD = {"hpd", "true", "1", "yes", "y"}
_NO_HPD = {"no_hpd", "false", "0", "no", "n"}


def group_of(value: object) -> str | None:
    """``hpd``, ``no_hpd`` or None (not evaluable / blank / anything else). Besides the labels hpd-imaging
    writes, a user's own definition column may hold booleans (true/false, 1/0, yes/no)."""
    text = str(value).strip().lower()
    if text.endswith(".0"):
        text = text[:-2]  # 1.0 / 0.0 from a numeric column
    return "hpd" if text in _HPD else "no_hpd" if text in _NO_HPD else None


def group_labels(kinetics: pd.DataFrame, key: str) -> dict[str, str | None]:
    """patient -> hpd / no_hpd / None under definition ``key``."""
    return {
        str(pid): group_of(v) for pid, v in zip(kinetics["patient_id"], kinetics[f"hpd_{key}"], strict=True)
    }


def definition_keys(kinetics: pd.DataFrame) -> list[str]:
    """Keys of every ``hpd_<key>`` label column, in table order."""
    return [
        c[4:]
        for c in kinetics.columns
        if c.startswith("hpd_") and len(c) > 4 and not c.endswith(_NOT_DEFINITIONS)
    ]


def landmark_table(
    kinetics: pd.DataFrame,
    followup: dict[str, FollowUp],
    endpoint: Endpoint = "os",
    invalid: Collection[str] = (),
) -> pd.DataFrame:
    """One row per kinetics patient: time (months) from first evaluation to the endpoint, event, or the reason
    the patient is left out (``excluded_reason``; time and event then None)."""
    rows: list[list[object]] = []
    for rec in kinetics.to_dict("records"):
        pid = str(rec["patient_id"])
        landmark = to_date(rec.get("first_eval_date"))
        fu = followup.get(pid)
        end = None if fu is None else (fu.os_end if endpoint == "os" else fu.pfs_end_after(landmark))
        reason = note = None
        prog = None if fu is None else fu.progression_date
        if endpoint == "pfs" and prog is not None and landmark is not None and prog <= landmark:
            note = (
                f"progression {prog.isoformat()} on or before the first evaluation: "
                "not counted (only progression after the landmark is a PFS event)"
            )
        if landmark is None:
            reason = "no first evaluation"
        elif pid in invalid:
            reason = "impossible follow-up dates (errors.csv)"
        elif fu is None:
            reason = "not in clinical.csv (or no ici_start_date)"
        elif end is None:
            reason = "no follow-up (neither death_date nor last_followup_date)"
        elif end[0] < landmark:
            reason = "died or censored before first evaluation"
        if reason is not None or end is None or landmark is None:
            rows.append([pid, landmark, end[0] if end else None, None, None, reason, note])
            continue
        rows.append([pid, landmark, end[0], (end[0] - landmark).days / MONTH_DAYS, bool(end[1]), None, note])
    return _none(pd.DataFrame(rows, columns=LANDMARK_COLUMNS))


@dataclass
class DefinitionSurvival:
    """The statistics of one definition; every number None when undefined, with the reason in ``reasons``."""

    definition: str
    n_hpd: int = 0
    n_no_hpd: int = 0
    events_hpd: int = 0
    events_no_hpd: int = 0
    median_hpd_months: float | None = None
    median_no_hpd_months: float | None = None
    logrank_chi2: float | None = None
    logrank_p: float | None = None
    hr: float | None = None
    hr_ci_low: float | None = None
    hr_ci_high: float | None = None
    hr_adjusted: float | None = None
    hr_adjusted_ci_low: float | None = None
    hr_adjusted_ci_high: float | None = None
    adjusted_for: tuple[str, ...] = ()
    c_index: float | None = None
    c_index_ci_low: float | None = None  # percentile bootstrap (patients resampled), ranking table only
    c_index_ci_high: float | None = None
    reasons: list[str] = field(default_factory=list)

    def row(self, endpoint: Endpoint = "os") -> dict[str, object]:
        values = [
            self.definition,
            self.n_hpd,
            self.n_no_hpd,
            self.events_hpd,
            self.events_no_hpd,
            self.median_hpd_months,
            self.median_no_hpd_months,
            self.logrank_chi2,
            self.logrank_p,
            self.hr,
            self.hr_ci_low,
            self.hr_ci_high,
            self.hr_adjusted,
            self.hr_adjusted_ci_low,
            self.hr_adjusted_ci_high,
            self.c_index,
        ]
        names = [c.replace("_os_", f"_{endpoint}_") for c in SURVIVAL_COLUMNS]
        return dict(zip(names, values, strict=True))


def _finite(x: object) -> float | None:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _km_median(times: np.ndarray, events: np.ndarray) -> float | None:
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(times, events)
    return _finite(km.median_survival_time_)  # inf (median not reached) -> None


def _cox(data: pd.DataFrame, covariates: list[str]) -> tuple[float, float, float] | str:
    """HR of ``hpd`` (exp(coef)) and its 95 % CI, or the reason it cannot be estimated."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    columns = ["time", "event", "hpd", *covariates]
    frame = data[columns].astype(float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = CoxPHFitter().fit(frame, duration_col="time", event_col="event")
    except (ConvergenceError, np.linalg.LinAlgError, ValueError) as exc:
        return f"Cox model did not converge ({str(exc).splitlines()[0][:80]})"
    ci = fit.confidence_intervals_.loc["hpd"]
    hr, lo, hi = (
        math.exp(v) if abs(v) < 700 else None
        for v in (float(fit.params_["hpd"]), float(ci.iloc[0]), float(ci.iloc[1]))
    )
    if hr is None or lo is None or hi is None or hi / max(lo, 1e-300) > 1e6:
        return "Cox HR not estimable (separation: the likelihood has no finite maximum)"
    return hr, lo, hi


def analyse_definition(
    key: str, kinetics: pd.DataFrame, landmark: pd.DataFrame, clinical: pd.DataFrame | None = None
) -> DefinitionSurvival:
    """The landmark survival statistics of definition ``key`` (see the module docstring)."""
    from lifelines.statistics import logrank_test
    from lifelines.utils import concordance_index

    out = DefinitionSurvival(key)
    labels = group_labels(kinetics, key)
    usable = landmark[landmark["excluded_reason"].isna()]
    rows = [
        (pid, float(t), float(bool(e)), 1.0 if labels.get(pid) == "hpd" else 0.0)
        for pid, t, e in zip(usable["patient_id"], usable["time_months"], usable["event"], strict=True)
        if labels.get(pid) in ("hpd", "no_hpd")
    ]
    data = pd.DataFrame(rows, columns=["patient_id", "time", "event", "hpd"])
    hpd, no = data[data["hpd"] == 1.0], data[data["hpd"] == 0.0]
    out.n_hpd, out.n_no_hpd = len(hpd), len(no)
    out.events_hpd, out.events_no_hpd = int(hpd["event"].sum()), int(no["event"].sum())
    if len(hpd):
        out.median_hpd_months = _km_median(hpd["time"].to_numpy(), hpd["event"].to_numpy())
    if len(no):
        out.median_no_hpd_months = _km_median(no["time"].to_numpy(), no["event"].to_numpy())
    if not len(hpd) or not len(no):
        out.reasons.append(f"no {'hpd' if not len(hpd) else 'no_hpd'} patient: groups cannot be compared")
        return out
    if out.events_hpd + out.events_no_hpd == 0:
        out.reasons.append("no events in either group: survival cannot be compared")
        return out
    test = logrank_test(hpd["time"], no["time"], hpd["event"], no["event"])
    out.logrank_chi2, out.logrank_p = _finite(test.test_statistic), _finite(test.p_value)
    # Harrell's C of the label as a risk score (higher risk, shorter survival: the score passed is -hpd)
    out.c_index = _finite(concordance_index(data["time"], -data["hpd"], data["event"]))
    out.c_index_ci_low, out.c_index_ci_high = _c_index_ci(data, BOOTSTRAP_RESAMPLES)
    if out.events_hpd == 0 or out.events_no_hpd == 0:
        group = "hpd" if out.events_hpd == 0 else "no_hpd"
        out.reasons.append(f"no events in the {group} group: Cox HR infinite or zero, not estimated")
        return out
    cox = _cox(data, [])
    if isinstance(cox, str):
        out.reasons.append(cox)
    else:
        out.hr, out.hr_ci_low, out.hr_ci_high = cox
    _adjusted(out, data, clinical)
    return out


BOOTSTRAP_RESAMPLES = 200


def _c_index_ci(data: pd.DataFrame, n_resamples: int, seed: int = 0) -> tuple[float | None, float | None]:
    """95 % percentile-bootstrap CI of Harrell's C (patients resampled with replacement; fixed seed, so a
    rerun gives the same table). Resamples without an event or without both groups are skipped."""
    from lifelines.utils import concordance_index

    if n_resamples <= 0 or len(data) < 2:
        return None, None
    rng = np.random.default_rng(seed)
    t, e, h = (data[c].to_numpy(dtype=float) for c in ("time", "event", "hpd"))
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(data), len(data))
        if e[idx].sum() == 0 or h[idx].min() == h[idx].max():
            continue
        try:
            values.append(concordance_index(t[idx], -h[idx], e[idx]))
        except ZeroDivisionError:  # no comparable pair in this resample
            continue
    if len(values) < n_resamples // 2:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return _finite(low), _finite(high)


def _adjusted(out: DefinitionSurvival, data: pd.DataFrame, clinical: pd.DataFrame | None) -> None:
    """Cox HR of HPD adjusted for the covariates present (complete cases; constant columns dropped)."""
    present = [c for c in COVARIATES if clinical is not None and c in clinical.columns]
    if not present or clinical is None:
        out.reasons.append(
            "adjusted HR: none of the covariates " + ", ".join(COVARIATES) + " in clinical.csv"
        )
        return
    cov = clinical[["patient_id", *present]].copy()
    cov["patient_id"] = cov["patient_id"].astype(str)
    for c in present:
        cov[c] = [_finite(1.0 if v is True else 0.0 if v is False else v) for v in cov[c]]
    merged = data.merge(cov, on="patient_id", how="left")
    merged = merged.dropna(subset=present)
    used = [c for c in present if merged[c].astype(float).nunique() > 1]
    n_events = int(merged["event"].sum())
    if not used:
        out.reasons.append("adjusted HR: covariates constant or missing in the analysed patients")
        return
    if n_events < 2 * (len(used) + 1) or merged["hpd"].nunique() < 2:
        out.reasons.append(
            f"adjusted HR: {n_events} events for {len(used) + 1} coefficients (need >= 2 per coefficient)"
        )
        return
    cox = _cox(merged, used)
    if isinstance(cox, str):
        out.reasons.append("adjusted " + cox)
        return
    out.hr_adjusted, out.hr_adjusted_ci_low, out.hr_adjusted_ci_high = cox
    out.adjusted_for = tuple(used)


def survival_by_definition(
    kinetics: pd.DataFrame,
    followup: dict[str, FollowUp],
    clinical: pd.DataFrame | None = None,
    endpoint: Endpoint = "os",
    *,
    invalid: Collection[str] = (),
) -> tuple[list[DefinitionSurvival], pd.DataFrame]:
    """Statistics for every definition column of ``kinetics``, and the landmark table used."""
    landmark = landmark_table(kinetics, followup, endpoint, invalid)
    results = [analyse_definition(k, kinetics, landmark, clinical) for k in definition_keys(kinetics)]
    return results, landmark


def survival_frame(results: list[DefinitionSurvival], endpoint: Endpoint = "os") -> pd.DataFrame:
    """survival.csv: one row per definition, exactly the columns of issue 19 (``_pfs_`` medians for PFS)."""
    columns = [c.replace("_os_", f"_{endpoint}_") for c in SURVIVAL_COLUMNS]
    return _none(pd.DataFrame([r.row(endpoint) for r in results], columns=columns))


RANKING_CAVEAT = (
    "Ranking by log-rank chi-square on this cohort only. With few patients and events the confidence "
    "intervals of the hazard ratios overlap widely and the order is not reliable: a definition ranked first "
    "here may not separate survival better in another cohort (Kas et al. 2020 and Matos et al. 2020 compared "
    "definitions on hundreds of patients)."
)


def ranking(results: list[DefinitionSurvival]) -> pd.DataFrame:
    """Definitions ordered by prognostic separation (log-rank chi-square, then C-index), with HR CIs shown and
    whether the CI excludes 1; definitions without a test are listed last with their reason."""
    rows = []
    for r in results:
        rows.append(
            {
                "definition": r.definition,
                "n_hpd": r.n_hpd,
                "n_no_hpd": r.n_no_hpd,
                "events": r.events_hpd + r.events_no_hpd,
                "logrank_chi2": r.logrank_chi2,
                "logrank_p": r.logrank_p,
                "hr": r.hr,
                "hr_ci_low": r.hr_ci_low,
                "hr_ci_high": r.hr_ci_high,
                "hr_ci_excludes_1": None
                if r.hr_ci_low is None or r.hr_ci_high is None
                else bool(r.hr_ci_low > 1 or r.hr_ci_high < 1),
                "c_index": r.c_index,
                "c_index_ci_low": r.c_index_ci_low,
                "c_index_ci_high": r.c_index_ci_high,
                "adjusted_for": ",".join(r.adjusted_for),
                "note": "; ".join(r.reasons),
            }
        )
    frame = pd.DataFrame(rows)
    if not len(frame):
        return frame
    frame["_chi2"] = [-1.0 if v is None else v for v in frame["logrank_chi2"]]
    frame["_c"] = [-1.0 if v is None else v for v in frame["c_index"]]
    frame = frame.sort_values(["_chi2", "_c"], ascending=False, kind="stable").drop(columns=["_chi2", "_c"])
    # ties (definitions labelling the same patients give the same statistics) share the best rank
    ranks: list[int | None] = []
    previous: tuple[float, float] | None = None
    for i, (chi2, c) in enumerate(zip(frame["logrank_chi2"], frame["c_index"], strict=True)):
        chi2_f, c_f = _finite(chi2), _finite(c)
        if chi2_f is None:
            ranks.append(None)
            continue
        key = (round(chi2_f, 9), round(c_f if c_f is not None else -1.0, 9))
        ranks.append(ranks[-1] if key == previous else i + 1)
        previous = key
    frame.insert(0, "rank", ranks)
    return _none(frame.reset_index(drop=True))


def _none(frame: pd.DataFrame) -> pd.DataFrame:
    """Undefined numbers as None (empty CSV cells), never NaN passing as a number."""
    frame = frame.astype(object)
    return frame.where(frame.notna(), None)
