"""Label stability: measurement uncertainty carried into every kinetic metric and every HPD label (issue 17).

Why Monte Carlo through the stage's own code: an HPD label is a chain of thresholds (RECIST PD at +20 % and
+5 mm, TGR ratio >= 2, ΔTGR > 50, ...) over sums, logs and ratios, with policies for zeros and negative
references; a closed form would re-implement every rule and drift from it. Instead each draw perturbs the
course's measurements by their SDs (measure/uncertainty.py) and runs the very functions that produced the
reported label (recist -> kinetics -> hpd). What is cached: the course's index (roles, target selection,
lesion table) is built once and only its measurement lookup is swapped per draw; the draws themselves are
one vectorised normal sample per patient. Deterministic: the generator is seeded by (settings seed,
patient id), so a patient's intervals never depend on the other patients of the table.

Outputs per patient: for each kinetic metric a central ``confidence`` interval (percentiles of the draws);
for each definition the share of hpd among the draws that were evaluable (``probability``) and whether at
least ``stable_agreement`` of all draws gave the reported label (``stable``). Docs: docs/label_stability.md.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from typing import Any

import numpy as np

from hpd_imaging.domain import HpdAssessment, HpdLabel, LesionMeasurement, PatientCourse
from hpd_imaging.measure.uncertainty import resolve_sds
from hpd_imaging.response.hpd import DEFINITIONS, evaluate, missing_inputs
from hpd_imaging.response.kinetics import compute_facts
from hpd_imaging.response.patient import PatientData
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


def selection_is_robust(course: PatientCourse, cfg: ResponseConfig) -> bool:
    """Whether an automatic target selection would survive the measurement error.

    The draws perturb sizes but keep the course's lesion roles (set once when the course was built), so a
    baseline lesion whose RECIST diameter is within ``mdc_z`` SDs of the measurability limit (10 mm; 15 mm
    short axis for nodes) could have been selected differently from the exact sizes: then the labels cannot
    be called stable. Declared targets (an ``is_target`` column) are the reader's choice and always robust.
    (Ranking among more than 5 candidates, or 2 per organ, is not checked.)"""
    if course.targets_declared:
        return True
    patient = PatientData(course)
    base = patient.roles.baseline
    if base is None:
        return True
    z = cfg.stability.mdc_z
    for lid, lesion in patient.lesions.items():
        size = patient.size(lid, base)
        if lesion.is_new or size is None or not size.is_present:
            continue
        sds = resolve_sds(size, cfg.stability)
        if lesion.is_lymph_node:
            value, sd, limit = size.short_axis_mm, sds.short_axis_sd_mm, cfg.node_measurable_min_sa_mm
        else:
            value, sd, limit = (
                size.longest_axial_diameter_mm,
                sds.longest_axial_diameter_sd_mm,
                cfg.measurable_min_mm,
            )
        if value is not None and abs(value - limit) <= z * sd:
            return False
    return True


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
    keys = [(m.lesion_id, m.scan_date) for m in course.measurements]
    measurements = course.measurements
    # a definition not evaluable for want of a scan, a date, a target or volumes is so in every draw (draws
    # change sizes, never which scans or values exist): not re-evaluated, its agreement is 1 by construction
    varying = [
        DEFINITIONS[a.definition]
        for a in reported
        if a.definition in DEFINITIONS
        and not missing_inputs(facts, DEFINITIONS[a.definition].required_inputs)
    ]
    metric_draws: dict[str, list[float | None]] = {name: [] for name in METRICS}
    label_draws: dict[str, list[HpdLabel]] = {a.definition: [] for a in reported}
    done = 0
    for i in range(n):
        if i and i == settings.early_stop_draws and all(len(set(v)) <= 1 for v in label_draws.values()):
            break  # every label unanimous so far: more draws would only refine the intervals
        done += 1
        patient = copy.copy(base)  # the index (roles, lesions, selection) is shared; only sizes change
        drawn = sizes[i].tolist()
        draw_sizes: dict[Any, Any] = {  # duck-typed sizes (see _DrawnSize)
            key: _DrawnSize(m, *drawn[j]) for j, (key, m) in enumerate(zip(keys, measurements, strict=True))
        }
        patient._sizes = draw_sizes
        recist = assess_recist(patient, patient.roles, patient.selection, cfg)
        f = compute_facts(patient, patient.roles, patient.selection, recist, cfg)
        for name, field_name in METRICS.items():
            metric_draws[name].append(getattr(f, field_name))
        for definition in varying:
            label_draws[definition.key].append(evaluate(definition, f, cfg).label)
    intervals = tuple(
        MetricInterval(name, *(_interval(values, settings.confidence)))
        if getattr(facts, METRICS[name]) is not None
        else MetricInterval(name, None, None)
        for name, values in metric_draws.items()
    )
    robust = selection_is_robust(course, cfg)
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
                stable=robust and agreement >= settings.stable_agreement,
                n_evaluable=len(evaluable),
            )
        )
    return PatientStability(done, settings.seed, source, intervals, tuple(labels), robust)


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
