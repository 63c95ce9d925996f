"""RECIST 1.1 and iRECIST per timepoint, plus the volumetric equivalents (+72.8 % / -65.7 %).

Sources: Eisenhauer EA et al., Eur J Cancer 2009;45:228 (RECIST 1.1); Seymour L et al., Lancet Oncol
2017;18:e143 (iRECIST). Rules as summarised in specs/hpd_kinetics.md section 3. PD is judged against the nadir
(smallest sum on study including baseline, before the current scan); PR against the baseline sum.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from hpd_imaging.response.patient import (
    PatientData,
    Roles,
    TargetSelection,
    diameter_sum,
    is_present,
    new_lesions_present,
    new_measurable_lesions,
    recist_diameter,
    role_name,
    sum_over,
)
from hpd_imaging.response.records import RecistTimepoint
from hpd_imaging.settings.hpd import ResponseConfig, compare


def pct_change(value: float | None, reference: float | None) -> float | None:
    """100 * (value - reference) / reference; +inf when growing from zero, None when undefined."""
    if value is None or reference is None:
        return None
    if reference == 0:
        return None if value == 0 else float("inf")
    return 100.0 * (value - reference) / reference


@dataclass(frozen=True)
class NonTargetState:
    response: str  # CR, NON_CR_NON_PD, PD, NA, NE
    diameter_sum_mm: float | None
    volume_sum_mm3: float | None


def non_target_state(
    patient: PatientData,
    selection: TargetSelection,
    date: dt.date,
    history: list[dt.date],
    roles: Roles,
    cfg: ResponseConfig,
) -> NonTargetState:
    """Non-target response. "Unequivocal progression" is operationalised (there is no numeric rule in RECIST
    1.1):
    non-target volume x cfg.non_target_pd_volume_ratio (sphere equivalent of diameters when volumes are
    absent)
    vs its nadir AND the diameter sum up by >= cfg.non_target_pd_min_abs_mm."""
    lesion_ids = selection.non_targets
    if not lesion_ids:
        return NonTargetState("NA", None, None)

    def sums(d: dt.date) -> tuple[float | None, float | None]:
        diam = 0.0
        vol: float | None = 0.0
        for lid in lesion_ids:
            info = patient.lesions[lid]
            size = patient.size(lid, d)
            if size is None and d != roles.baseline and cfg.missing_target_at_followup == "not_evaluable":
                return None, None
            diam += recist_diameter(info, size) or 0.0
            if size is not None and size.volume_mm3 is None:
                vol = None
            elif vol is not None:
                vol += 0.0 if size is None else (size.volume_mm3 or 0.0)
        return diam, vol

    diam, vol = sums(date)
    if diam is None:
        return NonTargetState("NE", None, None)
    gone = all(
        (recist_diameter(patient.lesions[lid], patient.size(lid, date)) or 0.0)
        < cfg.node_pathological_min_sa_mm
        if patient.lesions[lid].is_lymph_node
        else not is_present(patient.lesions[lid], patient.size(lid, date))
        for lid in lesion_ids
    )
    prior = [sums(d) for d in history]
    prior_valid = [p for p in prior if p[0] is not None]
    if prior_valid:
        use_volume = vol is not None and all(p[1] is not None for p in prior_valid)
        nadir_d = min(p[0] for p in prior_valid if p[0] is not None)
        if use_volume:
            nadir_v = min(p[1] for p in prior_valid if p[1] is not None)
            assert vol is not None  # use_volume implies it
            ratio_ok = (
                vol > 0 if nadir_v == 0 else compare(vol / nadir_v, ">=", cfg.non_target_pd_volume_ratio)
            )
        else:
            ratio_ok = (
                diam > 0
                if nadir_d == 0
                else compare(_cubed(diam / nadir_d), ">=", cfg.non_target_pd_volume_ratio)
            )
        if ratio_ok and compare(diam - nadir_d, ">=", cfg.non_target_pd_min_abs_mm):
            return NonTargetState("PD", diam, vol)
    return NonTargetState("CR" if gone else "NON_CR_NON_PD", diam, vol)


def _cubed(ratio: float) -> float:
    """``ratio ** 3`` without OverflowError: a nadir of 1e-137 mm against a sum of 288 mm is an unbounded
    volume ratio (inf), which every threshold comparison then treats as exceeded."""
    return ratio**3 if ratio < 1e100 else math.inf


def target_response(
    patient: PatientData,
    targets: tuple[str, ...],
    date: dt.date,
    s_now: float | None,
    s_base: float | None,
    nadir: float | None,
    cfg: ResponseConfig,
    s_measured: float | None = None,
) -> str:
    """``s_measured``: the sum over the targets that have a row on ``date`` (used when ``s_now`` is None
    because a target was not measured: RECIST 1.1 still calls PD when the measured ones alone give it)."""
    if not targets:
        return "NA"
    if s_now is None and s_measured is not None and s_base is not None and nadir is not None:
        pct = pct_change(s_measured, nadir)
        if (
            pct is not None
            and compare(pct, ">=", cfg.pd_pct)
            and compare(s_measured - nadir, ">=", cfg.pd_min_abs_mm)
        ):
            return "PD"
        return "NE"
    if s_now is None or s_base is None or nadir is None:
        return "NE"
    increase = s_now - nadir
    pct_nadir = pct_change(s_now, nadir)
    if (
        pct_nadir is not None
        and compare(pct_nadir, ">=", cfg.pd_pct)
        and compare(increase, ">=", cfg.pd_min_abs_mm)
    ):
        return "PD"
    all_gone = True
    for lid in targets:
        info = patient.lesions[lid]
        d = recist_diameter(info, patient.size(lid, date)) or 0.0
        if (info.is_lymph_node and d >= cfg.node_pathological_min_sa_mm) or (
            not info.is_lymph_node and d > 0
        ):
            all_gone = False
    if all_gone:
        return "CR"
    pct_base = pct_change(s_now, s_base)
    if pct_base is not None and compare(pct_base, "<=", -cfg.pr_pct):
        return "PR"
    return "SD"


def overall_response(target: str, non_target: str, n_new: int) -> str:
    """RECIST 1.1 overall response table (Eisenhauer 2009, table 1 and 2)."""
    if target == "PD" or non_target == "PD" or n_new > 0:
        return "PD"
    if target == "NE":
        return "NE"
    if non_target == "NE":  # table 1: non-targets "non-PD or not all evaluated": CR -> PR, PR/SD unchanged
        return {"CR": "PR", "NA": "NE"}.get(target, target)
    if target == "NA":
        return {"CR": "CR", "NA": "NE"}.get(non_target, "NON_CR_NON_PD")
    if target == "CR":
        return "CR" if non_target in ("CR", "NA") else "PR"
    return target


def volumetric_target_response(
    v_now: float | None, v_base: float | None, v_nadir: float | None, targets_cr: bool, cfg: ResponseConfig
) -> str:
    """Volumetric equivalents of RECIST: PD = volume x1.728 vs nadir (+ optional absolute increase), PR =
    x0.343."""
    if v_now is None or v_base is None or v_nadir is None:
        return "NE"
    if (v_now > 0 if v_nadir == 0 else compare(v_now / v_nadir, ">=", cfg.volumetric_pd_ratio)) and compare(
        v_now - v_nadir, ">=", cfg.min_abs_volume_increase_mm3
    ):
        return "PD"
    if targets_cr:
        return "CR"
    if v_base > 0 and compare(v_now / v_base, "<=", cfg.volumetric_pr_ratio):
        return "PR"
    return "SD"


def assess_recist(
    patient: PatientData, roles: Roles, selection: TargetSelection, cfg: ResponseConfig
) -> list[RecistTimepoint]:
    """One row per scan (pre-baseline, baseline and every on-treatment scan) with RECIST 1.1, volumetric
    RECIST
    and iRECIST columns. Scans before the pre-baseline scan are listed with role ``earlier``."""
    rows: list[dict[str, Any]] = []  # private builders; each becomes a frozen RecistTimepoint at the end
    targets = selection.targets
    base = roles.baseline
    s_base = sum_over(patient, targets, base, roles, cfg) if base and targets else None
    v_base = sum_over(patient, targets, base, roles, cfg, "volume") if base and targets else None
    ici = roles.ici_start

    def scan_row(date: dt.date, s: float | None, v: float | None) -> dict[str, Any]:
        """The columns every scan's row has (pre-baseline, baseline and on-treatment alike)."""
        return {
            "patient_id": patient.patient_id,
            "scan_date": date,
            "role": role_name(roles, date),
            "days_from_ici": (date - ici).days if ici else None,
            "sld_mm": s,
            "volume_mm3": v,
            "n_targets": len(targets),
            "n_targets_not_measured": sum(1 for lid in targets if patient.size(lid, date) is None),
        }

    for date in (
        *roles.earlier,
        *([roles.pre_baseline] if roles.pre_baseline else []),
        *([base] if base else []),
    ):
        s = sum_over(patient, targets, date, roles, cfg) if targets else None
        v = sum_over(patient, targets, date, roles, cfg, "volume") if targets else None
        rows.append(scan_row(date, s, v))
    history: list[dt.date] = [base] if base else []
    sums_hist: list[float] = [s_base] if s_base is not None else []
    vols_hist: list[float] = [v_base] if v_base is not None else []
    on_treatment = [d for d in roles.follow_ups] if base else []
    nl_targets = new_measurable_lesions(patient, on_treatment, cfg, max_total=5, max_per_organ=2)
    irecist = _IrecistTracker(cfg)
    for date in on_treatment:
        s = sum_over(patient, targets, date, roles, cfg) if targets else None
        v = sum_over(patient, targets, date, roles, cfg, "volume") if targets else None
        nadir = min(sums_hist) if sums_hist else None
        v_nadir = min(vols_hist) if vols_hist else None
        s_measured = diameter_sum(patient, targets, date)  # not-measured targets count as 0
        t_resp = target_response(patient, targets, date, s, s_base, nadir, cfg, s_measured)
        nt = non_target_state(patient, selection, date, history, roles, cfg)
        new_now = new_lesions_present(patient, date, cfg)
        overall = overall_response(t_resp, nt.response, len(new_now))
        v_resp = volumetric_target_response(v, v_base, v_nadir, t_resp == "CR", cfg) if targets else "NA"
        v_overall = overall_response(v_resp, nt.response, len(new_now))
        nlt_sum = diameter_sum(patient, nl_targets, date)
        new_nt_sum = diameter_sum(patient, (lid for lid in new_now if lid not in nl_targets), date)
        i_resp, i_status = irecist.step(
            date,
            overall,
            _Assessment(t_resp, nt.response, s, nt.diameter_sum_mm, nlt_sum, new_nt_sum, len(new_now)),
        )
        rows.append(
            {
                **scan_row(date, s, v),
                "nadir_sld_mm": nadir,
                "sld_change_from_baseline_pct": pct_change(s, s_base),
                "sld_change_from_nadir_pct": pct_change(s, nadir),
                "volume_change_from_baseline_pct": pct_change(v, v_base),
                "target_response": t_resp,
                "non_target_response": nt.response,
                "n_new_lesions": len(new_now),
                "new_lesion_ids": ";".join(new_now),
                "recist_response": overall,
                "volumetric_target_response": v_resp,
                "volumetric_response": v_overall,
                "irecist_response": i_resp,
                "irecist_confirmation": i_status,
            }
        )
        history.append(date)
        if s is not None:
            sums_hist.append(s)
        if v is not None:
            vols_hist.append(v)
    irecist.finalise(rows)
    return [RecistTimepoint(**row) for row in rows]


@dataclass(frozen=True)
class _Assessment:
    """What iRECIST compares between the iUPD scan and a later one (Seymour 2017, Table 2)."""

    target_response: str
    non_target_response: str
    target_sum_mm: float | None
    non_target_sum_mm: float | None
    new_target_sum_mm: float  # new-lesion targets (<= 5, <= 2 per organ), apart from the baseline sum
    new_non_target_sum_mm: float
    n_new: int

    def iupd_categories(self) -> dict[str, bool]:
        """The categories in which RECIST 1.1 progression is met on this scan."""
        return {
            "targets": self.target_response == "PD",
            "non-targets": self.non_target_response == "PD",
            "new lesions": self.n_new > 0,
        }


class _IrecistTracker:
    """iRECIST state machine (Seymour L et al., Lancet Oncol 2017;18:e143, Table 2).

    The first RECIST-type PD is iUPD; the categories in which progression was met then (targets, non-targets,
    new lesions) are remembered. A later assessment >= 4 weeks after iUPD confirms it (iCPD) by either
    * a further increase in a category that was iUPD: target sum +5 mm; any non-target increase; new-lesion
      target sum +5 mm, any increase of new non-target lesions or additional new lesions; or
    * RECIST 1.1 progression newly met in a category that was not iUPD (target PD vs nadir, unequivocal
      non-target progression, a first new lesion).
    Increases are measured from the iUPD scan, so sequential small increases add up (4 mm then 2 mm = iCPD).
    The bar is reset only by an assessment of iSD/iPR/iCR/non-CR-non-PD; a not-evaluable (NE) assessment
    after iUPD leaves it unconfirmed and pending.
    """

    def __init__(self, cfg: ResponseConfig) -> None:
        self.cfg = cfg
        self.confirmed = False
        self.ref: tuple[dt.date, _Assessment, dict[str, bool]] | None = None  # the iUPD opening the episode
        self.episodes: list[tuple[dt.date, str]] = []  # (iUPD date, outcome)

    def step(self, date: dt.date, overall: str, now: _Assessment) -> tuple[str, str]:
        if self.confirmed:
            return "iCPD", "confirmed"
        if overall == "NE" and self.ref is not None:
            return "NE", f"not evaluable: iUPD of {self.ref[0]} stays unconfirmed (NE does not reset it)"
        if overall != "PD":
            if self.ref is not None:
                self.episodes.append((self.ref[0], "not_confirmed"))
                self.ref = None
            return {"CR": "iCR", "PR": "iPR", "SD": "iSD", "NON_CR_NON_PD": "iNON_CR_NON_PD"}.get(
                overall, "NE"
            ), ""
        if self.ref is None:
            categories = now.iupd_categories()
            self.ref = (date, now, categories)
            return "iUPD", "unconfirmed (iUPD in " + ", ".join(k for k, v in categories.items() if v) + ")"
        ref_date, ref, categories = self.ref
        days = (date - ref_date).days
        more_new = now.n_new > ref.n_new
        if days < self.cfg.confirmation_min_days and not more_new:
            return "iUPD", f"unconfirmed (scan {days} d after iUPD < {self.cfg.confirmation_min_days} d)"
        reasons = self._confirming(ref, now, categories)
        if reasons:
            self.confirmed = True
            self.episodes.append((ref_date, "confirmed"))
            self.ref = None
            late = ""
            if days > self.cfg.irecist_confirmation_max_days:  # due 4-8 weeks after iUPD; later still counts
                late = (
                    f" (scan {days} d after iUPD > {self.cfg.irecist_confirmation_max_days} d: "
                    "outside the recommended window)"
                )
            return "iCPD", "confirmed: " + ", ".join(reasons) + late
        return "iUPD", "unconfirmed (no further increase in an iUPD category, no new RECIST progression)"

    def _confirming(self, ref: _Assessment, now: _Assessment, categories: dict[str, bool]) -> list[str]:
        five = self.cfg.pd_min_abs_mm
        reasons = []
        if categories["targets"]:
            if (
                now.target_sum_mm is not None
                and ref.target_sum_mm is not None
                and compare(now.target_sum_mm - ref.target_sum_mm, ">=", five)
            ):
                reasons.append(f"target sum +{now.target_sum_mm - ref.target_sum_mm:.1f} mm")
        elif now.target_response == "PD":
            reasons.append("target progression newly met (RECIST 1.1)")
        if categories["non-targets"]:
            if (
                now.non_target_sum_mm is not None
                and ref.non_target_sum_mm is not None
                and now.non_target_sum_mm > ref.non_target_sum_mm
            ):
                reasons.append("non-target increase")
        elif now.non_target_response == "PD":
            reasons.append("unequivocal non-target progression newly met")
        if categories["new lesions"]:
            if compare(now.new_target_sum_mm - ref.new_target_sum_mm, ">=", five):
                increase = now.new_target_sum_mm - ref.new_target_sum_mm
                reasons.append(f"new-lesion target sum +{increase:.1f} mm")
            if now.new_non_target_sum_mm > ref.new_non_target_sum_mm:
                reasons.append("new non-target increase")
            if now.n_new > ref.n_new:
                reasons.append("additional new lesions")
        elif now.n_new > 0:
            reasons.append("new lesions newly appeared")
        return reasons

    def finalise(self, rows: list[dict[str, Any]]) -> None:
        """Write each iUPD episode's outcome back on its opening row (confirmed / not_confirmed / pending)."""
        outcome = dict(self.episodes)
        if self.ref is not None:
            outcome[self.ref[0]] = "pending"
        for row in rows:
            if row.get("irecist_response") == "iUPD" and row["scan_date"] in outcome:
                row["irecist_confirmation"] = (
                    f"{row['irecist_confirmation']}; episode {outcome[row['scan_date']]}"
                )
