"""Growth kinetics: TGR (Ferté), volumetric TGR, TGK (Saâda-Bouzid / Le Tourneau), ratios, ΔTGR, pace, TTF.

Formulas (specs/hpd_kinetics.md section 1):

    TG  = exponent * ln(D_t / D_0) / Δt_months       exponent 3 for diameters (one sphere of diameter D), 1
    for volumes
    TGR = 100 * (exp(TG) - 1)                        computed as 100 * expm1(TG) for stability near zero
    TGK = (S_t - S_0) / Δt_months                    mm per month

Conventions: month = cfg.month_days (default 365.25/12 = 30.4375 d, as in Ferté's TGR_calculator.R); undefined
values are None (0/0, ÷0) and limits are kept as limits (D_t = 0 → TGR = −100; D_0 = 0 < D_t → +inf) so that
the
HPD rules can reason on them; the CSV writer turns any non-finite value into an empty cell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from types import SimpleNamespace

from hpd_imaging.measure.uncertainty import resolve_sds
from hpd_imaging.response.patient import (
    PatientData,
    Roles,
    TargetSelection,
    baseline_organs,
    new_lesions_present,
    new_measurable_lesions,
    recist_diameter,
    sum_over,
)
from hpd_imaging.response.recist import pct_change
from hpd_imaging.response.records import PatientFacts, RecistTimepoint
from hpd_imaging.settings.hpd import ResponseConfig

INF = math.inf


def months(days: float, cfg: ResponseConfig) -> float:
    return days / cfg.month_days


def tgr_pct_per_month(
    d0: float | None, d1: float | None, delta_months: float | None, exponent: float = 3.0
) -> float | None:
    """Ferté TGR (% volume per month). exponent=3 for a diameter (sphere), 1 for a measured volume.

    Limits: d1 = 0 < d0 → −100 exactly; d0 = 0 < d1 → +inf; 0/0 → None (undefined); Δt <= 0 → None.
    """
    if d0 is None or d1 is None or delta_months is None or delta_months <= 0:
        return None
    if d0 < 0 or d1 < 0:
        return None
    if d0 == 0:
        return None if d1 == 0 else INF
    if d1 == 0:
        return -100.0
    # log difference, not log of the ratio: d1/d0 can underflow to 0 (or overflow) for extreme inputs
    tg = exponent * (math.log(d1) - math.log(d0)) / delta_months
    try:
        return 100.0 * math.expm1(tg)
    except OverflowError:  # growth beyond e^709 per month: keep the limit
        return INF


def tgk_per_month(s0: float | None, s1: float | None, delta_months: float | None) -> float | None:
    """Linear slope of the burden (mm or mm3 per month)."""
    if s0 is None or s1 is None or delta_months is None or delta_months <= 0:
        return None
    return (s1 - s0) / delta_months


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Naive ratio; None when undefined (÷0, inf/inf). a/±inf = 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isinf(numerator) and math.isinf(denominator):
        return None
    return numerator / denominator


def difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if math.isinf(a) and math.isinf(b) and (a > 0) == (b > 0):
        return None
    return a - b


def pace_pct_per_month(s0: float | None, s1: float | None, delta_months: float | None) -> float | None:
    """Kato's progression pace (default reading): % change of the burden per month, (S1/S0 − 1)·100 / Δt."""
    change = pct_change(s1, s0)
    if change is None or delta_months is None or delta_months <= 0:
        return None
    return change / delta_months


def _burden_ids(
    patient: PatientData, selection: TargetSelection, roles: Roles, cfg: ResponseConfig
) -> tuple[str, ...]:
    if cfg.burden_lesion_set == "baseline_targets":
        return selection.targets
    if cfg.burden_lesion_set == "targets_plus_new":
        return (*selection.targets, *new_measurable_lesions(patient, list(roles.follow_ups), cfg))
    return tuple(sorted(patient.lesions))


def _burden(
    patient: PatientData,
    ids: tuple[str, ...],
    date: dt.date | None,
    roles: Roles,
    cfg: ResponseConfig,
    selection: TargetSelection,
    basis: str | None = None,
) -> tuple[float | None, float]:
    """(burden, exponent) on the kinetic basis (``basis``, else the configured one); non-target and new
    lesions absent on a scan count as 0."""
    if date is None or not ids:
        return None, 3.0
    basis = basis or cfg.kinetic_basis
    targets = set(selection.targets)
    if basis in ("sld_power3", "sum_ld_cubed"):
        diameters = [
            sum_over(patient, (lid,), date, roles, cfg)
            if lid in targets
            else (recist_diameter(patient.lesions[lid], patient.size(lid, date)) or 0.0)
            for lid in ids
        ]
        sld = basis == "sld_power3"
        exponent = 3.0 if sld else 1.0
        measured = [d for d in diameters if d is not None]
        if len(measured) < len(diameters):  # a target not evaluable on this scan
            return None, exponent
        return (sum(measured) if sld else sum(d**3 for d in measured)), exponent
    vols = []
    for lid in ids:
        size = patient.size(lid, date)
        if size is None:
            v = sum_over(patient, (lid,), date, roles, cfg, "volume") if lid in targets else 0.0
        else:
            v = size.volume_mm3
        if v is None:
            return None, 1.0
        vols.append(v)
    if basis == "volume_power1":
        return sum(vols), 1.0
    return sum((6.0 * v / math.pi) ** (1.0 / 3.0) for v in vols), 3.0  # sphere-equivalent diameters


def compute_facts(
    patient: PatientData,
    roles: Roles,
    selection: TargetSelection,
    rows: list[RecistTimepoint],
    cfg: ResponseConfig,
) -> PatientFacts:
    # a private draft with PatientFacts' fields and defaults, frozen into PatientFacts at the end
    f = SimpleNamespace(
        **{x.name: x.default for x in dataclasses.fields(PatientFacts)},
    )
    f.patient_id = patient.patient_id
    f.ici_start = roles.ici_start
    f.pre_baseline_date = roles.pre_baseline
    f.baseline_date = roles.baseline
    f.first_eval_date = roles.first_eval
    f.n_targets = len(selection.targets)
    f.month_days = cfg.month_days
    f.post_baseline_scans = []
    targets = selection.targets
    pre, base, first, ici = roles.pre_baseline, roles.baseline, roles.first_eval, roles.ici_start
    if pre is not None:
        f.n_targets_not_measured_pre_baseline = sum(1 for lid in targets if patient.size(lid, pre) is None)
    if first is not None:
        f.n_targets_not_measured_first_eval = sum(1 for lid in targets if patient.size(lid, first) is None)

    def s_at(d: dt.date | None, kind: str = "diameter") -> float | None:
        return sum_over(patient, targets, d, roles, cfg, kind) if d is not None and targets else None

    f.sld_pre_baseline_mm, f.sld_baseline_mm, f.sld_first_eval_mm = s_at(pre), s_at(base), s_at(first)
    f.volume_pre_baseline_mm3 = s_at(pre, "volume")
    f.volume_baseline_mm3 = s_at(base, "volume")
    f.volume_first_eval_mm3 = s_at(first, "volume")
    if pre is not None and base is not None:
        f.t_ref_days = (base - pre).days
    if first is not None and base is not None:
        start = base if cfg.exp_period_start == "baseline_scan" else ici
        f.t_exp_days = None if start is None else (first - start).days
    if pre is not None and ici is not None:
        f.days_pre_baseline_to_ici = (ici - pre).days
    if first is not None and ici is not None:
        f.days_ici_to_first_eval = (first - ici).days
    t_ref = months(f.t_ref_days, cfg) if f.t_ref_days else None
    t_exp = months(f.t_exp_days, cfg) if f.t_exp_days else None

    ids = _burden_ids(patient, selection, roles, cfg)
    (f.burden_pre, exponent), (f.burden_base, _), (f.burden_first, _) = (
        _burden(patient, ids, d, roles, cfg, selection) for d in (pre, base, first)
    )
    f.tgr_ref = tgr_pct_per_month(f.burden_pre, f.burden_base, t_ref, exponent)
    f.tgr_exp = tgr_pct_per_month(f.burden_base, f.burden_first, t_exp, exponent)
    f.tgr_ratio, f.delta_tgr = ratio(f.tgr_exp, f.tgr_ref), difference(f.tgr_exp, f.tgr_ref)
    # TGK: linear slope of the diameter burden (mm/month), whatever the TGR basis
    d_pre, d_base, d_first = (
        _burden(patient, ids, d, roles, cfg, selection, "sld_power3")[0] for d in (pre, base, first)
    )
    f.tgk_ref, f.tgk_exp = tgk_per_month(d_pre, d_base, t_ref), tgk_per_month(d_base, d_first, t_exp)
    f.tgk_ratio = ratio(f.tgk_exp, f.tgk_ref)
    f.vol_tgr_ref = tgr_pct_per_month(f.volume_pre_baseline_mm3, f.volume_baseline_mm3, t_ref, 1.0)
    f.vol_tgr_exp = tgr_pct_per_month(f.volume_baseline_mm3, f.volume_first_eval_mm3, t_exp, 1.0)
    f.vol_tgr_ratio, f.vol_delta_tgr = (
        ratio(f.vol_tgr_exp, f.vol_tgr_ref),
        difference(f.vol_tgr_exp, f.vol_tgr_ref),
    )
    f.vol_tgk_ref = tgk_per_month(f.volume_pre_baseline_mm3, f.volume_baseline_mm3, t_ref)
    f.vol_tgk_exp = tgk_per_month(f.volume_baseline_mm3, f.volume_first_eval_mm3, t_exp)
    f.vol_tgk_ratio = ratio(f.vol_tgk_exp, f.vol_tgk_ref)
    if cfg.kato_pace_basis == "relative":
        f.pace_ref = pace_pct_per_month(d_pre, d_base, t_ref)
        f.pace_exp = pace_pct_per_month(d_base, d_first, t_exp)
    else:
        f.pace_ref, f.pace_exp = f.tgk_ref, f.tgk_exp
    f.pace_ratio = ratio(f.pace_exp, f.pace_ref)
    f.sld_change_pct = pct_change(f.sld_first_eval_mm, f.sld_baseline_mm)
    f.sld_change_mm = difference(f.sld_first_eval_mm, f.sld_baseline_mm)
    f.burden_change_pct = pct_change(d_first, d_base)
    f.volume_change_pct = pct_change(f.volume_first_eval_mm3, f.volume_baseline_mm3)
    f.volume_change_mm3 = difference(f.volume_first_eval_mm3, f.volume_baseline_mm3)
    if base is not None and first is not None and targets:
        z = cfg.stability.mdc_z
        if f.sld_change_mm is not None:
            f.sld_change_mdc_mm = z * math.hypot(*(_sum_sd(patient, targets, d, cfg) for d in (base, first)))
        if f.volume_change_mm3 is not None:
            f.volume_change_mdc_mm3 = z * math.hypot(
                *(_sum_sd(patient, targets, d, cfg, "volume") for d in (base, first))
            )

    first_row = next((r for r in rows if r.scan_date == first), None)
    if first_row is not None and first is not None:
        f.recist_first_eval = _text(first_row.recist_response)
        f.target_response_first_eval = _text(first_row.target_response)
        f.irecist_first_eval = _text(first_row.irecist_response)
        f.volumetric_response_first_eval = _text(first_row.volumetric_response)
        if cfg.pd1_mode == "recist_overall":
            f.pd1 = None if f.recist_first_eval == "NE" else f.recist_first_eval == "PD"
        elif cfg.pd1_mode == "targets_only":
            f.pd1 = (
                None if f.target_response_first_eval in ("NE", "NA") else f.target_response_first_eval == "PD"
            )
        else:
            f.pd1 = None if f.irecist_first_eval == "NE" else f.irecist_first_eval in ("iUPD", "iCPD")
        vol_resp = (
            _text(first_row.volumetric_response)
            if cfg.pd1_mode != "targets_only"
            else _text(first_row.volumetric_target_response)
        )
        f.vol_pd1 = None if vol_resp in ("NE", "NA") else vol_resp == "PD"
        organs = baseline_organs(patient, selection)
        new_now = new_lesions_present(patient, first, cfg)
        f.n_new_first_eval = len(new_now)
        per_organ: dict[str, int] = {}
        for lid in new_now:
            per_organ[patient.lesions[lid].organ] = per_organ.get(patient.lesions[lid].organ, 0) + 1
        f.n_new_organs_first_eval = sum(1 for organ in per_organ if organ not in organs)
        f.max_new_in_involved_organ = max((n for organ, n in per_organ.items() if organ in organs), default=0)
        f.n_organs_with_new = len(per_organ)
    for r in rows:
        if ici is not None and r.scan_date > ici:
            f.post_baseline_scans.append(((r.scan_date - ici).days, r.sld_change_from_baseline_pct))

    clin = patient.clinical
    stop, death = clin.treatment_stop_date, clin.death_date
    if ici is not None:
        ends = [d for d in (stop, death) if d is not None]
        if ends:
            f.ttf_days, f.ttf_event = (min(ends) - ici).days, True
        if death is not None:
            f.death_days = (death - ici).days
    f.death_from_progression = clin.death_from_progression
    f.ecog_baseline = clin.ecog_baseline
    f.ecog_worst_first_2_months = clin.ecog_worst_first_2_months
    f.post_baseline_scans = tuple(f.post_baseline_scans)
    return PatientFacts(**vars(f))


def _sum_sd(
    patient: PatientData,
    lesion_ids: tuple[str, ...],
    date: dt.date,
    cfg: ResponseConfig,
    kind: str = "diameter",
) -> float:
    """SD of a target sum on one scan: the lesions' SDs (measure/uncertainty.py) in quadrature (independent
    errors); a target without a row adds nothing (its policy value is not a measurement)."""
    var = 0.0
    for lid in lesion_ids:
        size = patient.size(lid, date)
        if size is None:
            continue
        sd = resolve_sds(size, cfg.stability)
        if kind == "volume":
            value = sd.volume_sd_mm3
        elif patient.lesions[lid].is_lymph_node:
            value = sd.short_axis_sd_mm
        else:
            value = sd.longest_axial_diameter_sd_mm
        var += value * value
    return math.sqrt(var)


def _text(value: object) -> str:
    """An enum-valued response as its table text ("NE" when the scan has none)."""
    return "NE" if value is None else str(getattr(value, "value", value))
