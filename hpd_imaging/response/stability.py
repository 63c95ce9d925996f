"""Label stability: measurement uncertainty carried into every kinetic metric and every HPD label (issue 17).

Why Monte Carlo through the stage's own code: an HPD label is a chain of thresholds (RECIST PD at +20 % and
+5 mm, TGR ratio >= 2, ΔTGR > 50, ...) over sums, logs and ratios, with policies for zeros and negative
references; a closed form would re-implement every rule and drift from it. Instead each draw perturbs the
course's measurements by their SDs (measure/uncertainty.py) and runs the very functions that produced the
reported label: the course's automatic target selection (course/targets.automatic_roles), then recist ->
kinetics -> hpd, where only the labels are read (hpd.evaluate_label: same decision, no reason sentence).
What is cached: the course's index (timepoint roles, lesion table) is built once and only its measurement
lookup (and, when the drawn sizes select other targets, its selection) is swapped per draw; the draws
themselves are one vectorised normal sample per patient, made up front. A sequential stop
(:func:`stop_bounds`) ends a patient's draws once every label's stable/fragile call is settled.
Deterministic: the generator is seeded by (settings seed, patient id), so a patient's intervals never
depend on the other patients of the table.

Outputs per patient: for each kinetic metric a central ``confidence`` interval (percentiles of the draws);
for each definition the share of hpd among the draws that were evaluable (``probability``) and whether at
least ``stable_agreement`` of all draws gave the reported label (``stable``). Docs: docs/label_stability.md.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import math
from typing import Any

import numpy as np
from scipy.stats import binom

from hpd_imaging.course.targets import automatic_roles
from hpd_imaging.domain import HpdAssessment, HpdLabel, Lesion, LesionMeasurement, LesionRole, PatientCourse
from hpd_imaging.measure.uncertainty import resolve_sds
from hpd_imaging.response.hpd import DEFINITIONS, evaluate_label
from hpd_imaging.response.kinetics import compute_facts
from hpd_imaging.response.patient import PatientData, TargetSelection, recist_diameter
from hpd_imaging.response.recist import assess_recist
from hpd_imaging.response.records import LabelStability, MetricInterval, PatientFacts, PatientStability
from hpd_imaging.settings.hpd import ResponseConfig

log = logging.getLogger(__name__)

# kinetics.csv column -> PatientFacts field: every kinetic metric that gets an interval
METRICS: dict[str, str] = {
    "sld_change_pct": "sld_change_pct",
    "burden_change_pct": "burden_change_pct",
    "volume_change_pct": "volume_change_pct",
    "tgr_ref_pct_per_month": "tgr_ref",
    "tgr_exp_pct_per_month": "tgr_exp",
    "tgr_ratio": "tgr_ratio",
    "delta_tgr": "delta_tgr",
    "tgk_ref_mm_per_month": "tgk_ref",
    "tgk_exp_mm_per_month": "tgk_exp",
    "tgk_ratio": "tgk_ratio",
    "vol_tgr_ref_pct_per_month": "vol_tgr_ref",
    "vol_tgr_exp_pct_per_month": "vol_tgr_exp",
    "vol_tgr_ratio": "vol_tgr_ratio",
    "vol_delta_tgr": "vol_delta_tgr",
    "vol_tgk_ref_mm3_per_month": "vol_tgk_ref",
    "vol_tgk_exp_mm3_per_month": "vol_tgk_exp",
    "vol_tgk_ratio": "vol_tgk_ratio",
    "pace_ref": "pace_ref",
    "pace_exp": "pace_exp",
    "pace_ratio": "pace_ratio",
}


def patient_seed(seed: int, patient_id: str) -> np.random.Generator:
    """A generator of its own per patient: (settings seed, sha256 of the id), independent of table order."""
    digest = int.from_bytes(hashlib.sha256(patient_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


class _DrawnSize:
    """One lesion's sizes in one draw: the attributes the criteria read from a LesionMeasurement (sizes,
    presence, SDs). A slotted stand-in rather than a copy of the frozen record: this is the hot loop (one per
    lesion per scan per draw) and the values are finite and >= 0 by construction of the draw."""

    __slots__ = (
        "lesion_id",
        "scan_date",
        "longest_axial_diameter_mm",
        "short_axis_mm",
        "volume_mm3",
        "is_present",
        "longest_axial_diameter_sd_mm",
        "short_axis_sd_mm",
        "volume_sd_mm3",
        "uncertainty_source",
    )

    def __init__(self, m: LesionMeasurement, ld: float, sa: float, vol: float) -> None:
        self.lesion_id, self.scan_date = m.lesion_id, m.scan_date
        self.longest_axial_diameter_mm = None if m.longest_axial_diameter_mm is None else ld
        self.short_axis_mm = None if m.short_axis_mm is None else sa
        self.volume_mm3 = None if m.volume_mm3 is None else vol
        self.is_present = m.is_present  # draws never make a seen lesion vanish nor a vanished one appear
        self.longest_axial_diameter_sd_mm = m.longest_axial_diameter_sd_mm
        self.short_axis_sd_mm = m.short_axis_sd_mm
        self.volume_sd_mm3 = m.volume_sd_mm3
        self.uncertainty_source = m.uncertainty_source


def _draw_sizes(
    course: PatientCourse, cfg: ResponseConfig, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, str]:
    """(n draws x measurements x 3 sizes) around the measured sizes, and the SD source label. Sizes are
    reflected at 0 (|x|): a lesion seen stays seen; a size of 0 has SD 0 and stays 0."""
    values = np.array(
        [
            [m.longest_axial_diameter_mm or 0.0, m.short_axis_mm or 0.0, m.volume_mm3 or 0.0]
            for m in course.measurements
        ],
        dtype=float,
    ).reshape(-1, 3)
    resolved = [resolve_sds(m, cfg.stability) for m in course.measurements]
    sds = np.array(
        [[r.longest_axial_diameter_sd_mm, r.short_axis_sd_mm, r.volume_sd_mm3] for r in resolved], dtype=float
    ).reshape(-1, 3)
    sources = sorted({r.source for r, m in zip(resolved, course.measurements, strict=True) if m.is_present})
    draws = np.abs(values[None, :, :] + sds[None, :, :] * rng.standard_normal((n, *values.shape)))
    return draws, ";".join(sources) or "none"


def _interval(samples: list[float | None], level: float) -> tuple[float | None, float | None]:
    """Percentile interval; undefined draws (None) count as missing; +-inf limits are kept (written empty)."""
    finite = np.array([v for v in samples if v is not None], dtype=float)
    if finite.size == 0 or finite.size < 0.5 * len(samples):
        return None, None
    tail = 100.0 * (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        low, high = np.percentile(finite, [tail, 100.0 - tail], method="linear")
    return (
        None if np.isnan(low) else float(low),
        None if np.isnan(high) else float(high),
    )


@functools.cache
def stop_bounds(
    draws: int, first_look: int, every: int, stable_agreement: float, alpha: float
) -> dict[int, tuple[int, int]]:
    """The sequential stop's bounds: at each look ``k`` (``first_look``, then every ``every`` draws before
    ``draws``), (most disagreeing draws for a settled stable call, fewest for a settled fragile call).

    A one-sided exact binomial test at level ``alpha`` of the label's disagreement rate against the limit
    ``p0 = 1 - stable_agreement`` (5 %) in each direction: settled stable when P(X <= d | k, p0) <= alpha
    (so few disagreements are unlikely for a label at the limit), settled fragile when P(X >= d | k, p0) <=
    alpha. At k = 60 and alpha = 0.05 the stable bound is d = 0 (0.95^60 = 4.6 %): the previous "unanimous
    after 60 draws" rule is its first look. Error rates over all looks: docs/label_stability.md section 2."""
    p0 = 1.0 - stable_agreement
    bounds = {}
    for k in range(first_look, draws, every):
        low = int(binom.ppf(alpha, k, p0))  # smallest d with CDF(d) >= alpha
        stable_max = low if binom.cdf(low, k, p0) <= alpha else low - 1
        fragile_min = int(binom.isf(alpha, k, p0)) + 1  # smallest d with P(X >= d) <= alpha
        # more disagreements than all ``draws`` may have for a stable call: fragile with certainty
        certain = math.floor((1.0 - stable_agreement) * draws + 1e-9) + 1
        bounds[k] = (stable_max, min(fragile_min, certain))
    return bounds


CHECK_EVERY = 10  # draws between two looks of the sequential stop


class _Selector:
    """Re-runs the course's own automatic RECIST target selection (course/targets.automatic_roles) on each
    draw's baseline sizes. The lesions it ranks are the course's: those present at baseline that are
    neither new nor fragments (draws never change presence)."""

    def __init__(self, patient: PatientData, cfg: ResponseConfig) -> None:
        self.cfg = cfg
        self.base = patient.selection
        self.baseline = patient.roles.baseline
        ranked = (LesionRole.TARGET, LesionRole.NON_TARGET, LesionRole.NORMAL_NODE)
        self.lesions: list[Lesion] = sorted(
            (x for x in patient.course.lesions if x.role in ranked), key=lambda x: x.lesion_id
        )
        self.order = [x.lesion_id for x in patient.course.lesions]

    def select(self, sizes: dict[Any, Any]) -> TargetSelection:
        at_baseline = []
        for lesion in self.lesions:
            size = sizes.get((lesion.lesion_id, self.baseline))
            at_baseline.append((lesion, recist_diameter(lesion, size)))
        roles = automatic_roles(at_baseline, self.cfg)
        targets = tuple(lid for lid in self.order if roles.get(lid, (None,))[0] is LesionRole.TARGET)
        non_targets = tuple(lid for lid in self.order if roles.get(lid, (None,))[0] is LesionRole.NON_TARGET)
        if targets == self.base.targets and non_targets == self.base.non_targets:
            return self.base
        return TargetSelection(targets, non_targets, self.base.new, self.base.automatic)


def assess_stability(
    course: PatientCourse,
    cfg: ResponseConfig,
    reported: tuple[HpdAssessment, ...],
    facts: PatientFacts,
) -> PatientStability | None:
    """Monte Carlo of the labels of one course under its measurement error (None when draws = 0)."""
    settings = cfg.stability
    n = settings.draws
    if n == 0:
        return None
    rng = patient_seed(settings.seed, course.patient_id)
    sizes, source = _draw_sizes(course, cfg, rng, n)
    base = PatientData(course)
    selector = _Selector(base, cfg) if base.selection.automatic and base.roles.baseline else None
    keys = [(m.lesion_id, m.scan_date) for m in course.measurements]
    measurements = course.measurements
    # every definition is evaluated in every draw by the same decision code as the reported label (only its
    # reason sentence is not written): with an automatic selection even "no target lesion at baseline" can
    # change from draw to draw
    definitions = [DEFINITIONS[a.definition] for a in reported if a.definition in DEFINITIONS]
    reported_label = {a.definition: a.label for a in reported}
    metric_draws: dict[str, list[float | None]] = {name: [] for name in METRICS}
    label_draws: dict[str, list[HpdLabel]] = {a.definition: [] for a in reported}
    disagree = dict.fromkeys(label_draws, 0)
    same_selection = 0
    done = 0
    looks = (
        stop_bounds(n, settings.early_stop_draws, CHECK_EVERY, settings.stable_agreement, settings.stop_alpha)
        if settings.early_stop_draws > 0
        else {}
    )
    for i in range(n):
        if i in looks:
            stable_max, fragile_min = looks[i]
            if all(d <= stable_max or d >= fragile_min for d in disagree.values()):
                break  # every label's stable/fragile call is settled (docs: sequential stop)
        done += 1
        patient = copy.copy(base)  # the index (roles, lesions) is shared; only sizes (and selection) change
        drawn = sizes[i].tolist()
        draw_sizes: dict[Any, Any] = {  # duck-typed sizes (see _DrawnSize)
            key: _DrawnSize(m, *drawn[j]) for j, (key, m) in enumerate(zip(keys, measurements, strict=True))
        }
        patient._sizes = draw_sizes
        selection = base.selection if selector is None else selector.select(draw_sizes)
        same_selection += selection is base.selection
        patient.selection = selection
        recist = assess_recist(patient, patient.roles, selection, cfg)
        f = compute_facts(patient, patient.roles, selection, recist, cfg)
        for name, field_name in METRICS.items():
            metric_draws[name].append(getattr(f, field_name))
        for definition in definitions:
            label = evaluate_label(definition, f, cfg)
            label_draws[definition.key].append(label)
            if label is not reported_label[definition.key]:
                disagree[definition.key] += 1
    intervals = tuple(
        MetricInterval(name, *(_interval(values, settings.confidence)))
        if getattr(facts, METRICS[name]) is not None
        else MetricInterval(name, None, None)
        for name, values in metric_draws.items()
    )
    labels = []
    for a in reported:
        drawn = label_draws[a.definition] or [a.label] * done
        evaluable = [x for x in drawn if x is not HpdLabel.NOT_EVALUABLE]
        agreement = sum(1 for x in drawn if x is a.label) / done
        labels.append(
            LabelStability(
                definition=a.definition,
                probability=(sum(1 for x in evaluable if x is HpdLabel.HPD) / len(evaluable))
                if evaluable
                else None,
                agreement=agreement,
                stable=agreement >= settings.stable_agreement,
                n_evaluable=len(evaluable),
            )
        )
    selection_stable = same_selection / done >= settings.stable_agreement
    return PatientStability(done, settings.seed, source, intervals, tuple(labels), selection_stable)


def stability_columns(stability: PatientStability | None, definitions: list[str]) -> dict[str, Any]:
    """The kinetics.csv columns of one patient's stability (empty cells when the analysis is off)."""
    row: dict[str, Any] = {
        "stability_draws": 0 if stability is None else stability.draws,
        "stability_seed": None if stability is None else stability.seed,
        "uncertainty_source": None if stability is None else stability.uncertainty_source,
        "target_selection_stable": None if stability is None else stability.target_selection_stable,
    }
    for name in METRICS:
        interval = None if stability is None else next(i for i in stability.intervals if i.metric == name)
        row[f"{name}_ci_low"] = None if interval is None else interval.low
        row[f"{name}_ci_high"] = None if interval is None else interval.high
    for key in definitions:
        item = None
        if stability is not None:
            item = next((x for x in stability.labels if x.definition == key), None)
        row[f"hpd_{key}_probability"] = None if item is None else item.probability
        row[f"hpd_{key}_stable"] = None if item is None else item.stable
    return row
