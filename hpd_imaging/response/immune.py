"""Immune-related response criteria per timepoint: irRC, irRECIST and imRECIST (issue #11).

* irRC (Wolchok JD et al., Clin Cancer Res 2009;15:7412): bidimensional products (long axis x perpendicular
  short axis) of up to 10 index lesions (<= 5 per organ, >= 5 x 5 mm) summed; measurable new lesions (>= 5 x
  5 mm)
  are added to the tumour burden instead of meaning PD; irPD = burden >= +25 % vs nadir, confirmed by a scan
  >= 4 weeks later; irPR = >= 50 % decrease vs baseline; irCR = disappearance of all lesions.
* irRECIST (Nishino M et al., Clin Cancer Res 2013;19:3936; Bohnsack O et al., Ann Oncol 2014;25 suppl 4):
  unidimensional RECIST sums with measurable new lesions (>= 10 mm, nodes >= 15 mm short axis; up to 5, <= 2
  per
  organ) incorporated; irPD = >= 20 % and >= 5 mm vs nadir (or unequivocal non-target progression), confirmed
  by
  a scan 4-12 weeks later.
* imRECIST (Hodi FS et al., J Clin Oncol 2018;36:850): new and non-target lesions do not by themselves define
PD;
  measurable new lesions are added to the sum; PD = >= 20 % (and >= 5 mm) vs nadir, confirmed >= 4 weeks
  later.

Each criterion gives ``<crit>_burden``, ``<crit>_response`` and ``<crit>_confirmation`` per on-treatment scan
(an :class:`~hpd_imaging.response.records.ImmuneTimepoint`; the RECIST records are read, never changed).
Confirmation status of a PD row: ``confirmed`` (the first scan >= 4 weeks later also shows PD),
``not_confirmed``, ``not_confirmed_outside_window`` (irRECIST: that scan is > 12 weeks later) or
``pending`` (no later scan yet).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hpd_imaging.response.patient import (
    PatientData,
    Roles,
    TargetSelection,
    diameter_sum,
    is_present,
    new_measurable_lesions,
)
from hpd_imaging.response.recist import pct_change
from hpd_imaging.response.records import ImmuneTimepoint, RecistTimepoint
from hpd_imaging.settings.hpd import ResponseConfig, compare


def _product(patient: PatientData, lid: str, date: dt.date) -> float | None:
    """Bidimensional product LD x SA (mm2); 0 when the lesion is absent, None when a diameter is missing."""
    size = patient.size(lid, date)
    if size is None or not is_present(patient.lesions[lid], size):
        return 0.0
    if size.longest_axial_diameter_mm is None or size.short_axis_mm is None:
        return None
    return size.longest_axial_diameter_mm * size.short_axis_mm


def irrc_index_lesions(
    patient: PatientData, roles: Roles, selection: TargetSelection, cfg: ResponseConfig
) -> tuple[str, ...]:
    """irRC index lesions: declared targets when given, else the largest products >= 5 x 5 mm at baseline."""
    if not selection.automatic:
        return selection.targets
    base = roles.baseline
    if base is None:
        return ()
    candidates = []
    for lid, info in patient.lesions.items():
        size = patient.size(lid, base)
        if (
            info.is_new
            or size is None
            or size.longest_axial_diameter_mm is None
            or size.short_axis_mm is None
        ):
            continue
        if (
            size.longest_axial_diameter_mm >= cfg.irrc_min_lesion_mm
            and size.short_axis_mm >= cfg.irrc_min_lesion_mm
        ):
            candidates.append((-size.longest_axial_diameter_mm * size.short_axis_mm, lid))
    chosen: list[str] = []
    per_organ: dict[str, int] = {}
    for _, lid in sorted(candidates):
        organ = patient.lesions[lid].organ
        if len(chosen) >= cfg.irrc_max_index_total or per_organ.get(organ, 0) >= cfg.irrc_max_index_per_organ:
            continue
        per_organ[organ] = per_organ.get(organ, 0) + 1
        chosen.append(lid)
    return tuple(chosen)


def _irrc_new(patient: PatientData, dates: list[dt.date], cfg: ResponseConfig) -> list[str]:
    """irRC new measurable lesions (>= 5 x 5 mm) added to the tumour burden, with the index-lesion caps of
    Wolchok 2009: at most ``irrc_max_index_per_organ`` per organ and ``irrc_max_index_total`` in all (5 and
    10), taken in order of appearance, then largest product first (ties by lesion id)."""
    chosen: list[str] = []
    per_organ: dict[str, int] = {}
    for d in dates:
        appearing = []
        for lid, info in patient.lesions.items():
            if not info.is_new or lid in chosen:
                continue
            size = patient.size(lid, d)
            if (
                size is not None
                and (size.longest_axial_diameter_mm or 0) >= cfg.irrc_min_lesion_mm
                and (size.short_axis_mm or 0) >= cfg.irrc_min_lesion_mm
            ):
                product = (size.longest_axial_diameter_mm or 0) * (size.short_axis_mm or 0)
                appearing.append((-product, lid))
        for _, lid in sorted(appearing):
            organ = patient.lesions[lid].organ
            full = len(chosen) >= cfg.irrc_max_index_total
            if full or per_organ.get(organ, 0) >= cfg.irrc_max_index_per_organ:
                continue
            per_organ[organ] = per_organ.get(organ, 0) + 1
            chosen.append(lid)
    return chosen


IMMUNE_FIELDS = (
    "irrc_burden_mm2",
    "irrc_response",
    "irrc_confirmation",
    "irrecist_burden_mm",
    "irrecist_response",
    "irrecist_confirmation",
    "imrecist_burden_mm",
    "imrecist_response",
    "imrecist_confirmation",
)


def assess_immune(
    patient: PatientData,
    roles: Roles,
    selection: TargetSelection,
    recist: list[RecistTimepoint],
    cfg: ResponseConfig,
) -> dict[dt.date, ImmuneTimepoint]:
    """irRC, irRECIST and imRECIST for every on-treatment scan (reads the RECIST records, changes none)."""
    base = roles.baseline
    if base is None:
        return {}
    # private working rows (one per on-treatment scan), turned into frozen records at the end
    on_rows: list[dict[str, Any]] = [
        {
            "scan_date": r.scan_date,
            "sld_mm": r.sld_mm,
            "target_response": r.target_response,
            "non_target_response": r.non_target_response,
            "n_new_lesions": r.n_new_lesions or 0,
        }
        for r in recist
        if r.scan_date > (roles.ici_start or base)
    ]
    dates = [r["scan_date"] for r in on_rows]
    index = irrc_index_lesions(patient, roles, selection, cfg)
    new_measurable = new_measurable_lesions(patient, dates, cfg, max_total=5, max_per_organ=2)

    # ---- irRC -------------------------------------------------------------------------------------------
    def irrc_burden(d: dt.date) -> float | None:
        total = 0.0
        for lid in (*index, *[n for n in _irrc_new(patient, [x for x in dates if x <= d], cfg)]):
            if (
                lid in index
                and d > base
                and patient.size(lid, d) is None
                and cfg.missing_target_at_followup == "not_evaluable"
            ):
                return None  # an index lesion not measured on this scan (a disappeared one has a 0 mm row)
            p = _product(patient, lid, d)
            if p is None:
                return None
            total += p
        return total

    b0 = irrc_burden(base) if index else None
    history = [b0] if b0 is not None else []
    for row in on_rows:
        d = row["scan_date"]
        tb = irrc_burden(d) if index else None
        nadir = min(history) if history else None
        row["irrc_burden_mm2"] = tb
        if tb is None or b0 is None or nadir is None:
            row["irrc_response"], row["_irrc_pd"] = "NE", False
            continue
        pct_nadir = pct_change(tb, nadir)
        nt_gone = row.get("non_target_response") in ("CR", "NA")
        new_gone = row.get("n_new_lesions", 0) == 0
        if pct_nadir is not None and compare(pct_nadir, ">=", cfg.irrc_pd_pct):
            resp = "irPD"
        elif tb == 0 and nt_gone and new_gone:
            resp = "irCR"
        elif b0 > 0 and compare(pct_change(tb, b0) or 0.0, "<=", -cfg.irrc_pr_pct):
            resp = "irPR"
        else:
            resp = "irSD"
        row["irrc_response"], row["_irrc_pd"] = resp, resp == "irPD"
        history.append(tb)
    _confirm_response(on_rows, cfg.confirmation_min_days)

    # ---- irRECIST and imRECIST: unidimensional sums incorporating measurable new lesions -------------------
    targets = selection.targets
    s0 = diameter_sum(patient, targets, base) if targets else None
    for crit, nt_counts in (("irrecist", True), ("imrecist", False)):
        history = [s0] if s0 is not None else []
        for row in on_rows:
            d = row["scan_date"]
            if row.get("sld_mm") is None or s0 is None:
                row[f"{crit}_burden_mm"], row[f"{crit}_response"], row[f"_{crit}_pd"] = None, "NE", False
                continue
            burden = row["sld_mm"] + diameter_sum(patient, new_measurable, d)
            nadir = min(history)
            pct_nadir = pct_change(burden, nadir)
            pd_sum = (
                pct_nadir is not None
                and compare(pct_nadir, ">=", cfg.pd_pct)
                and compare(burden - nadir, ">=", cfg.pd_min_abs_mm)
            )
            pd_nt = nt_counts and row.get("non_target_response") == "PD"
            prefix = "ir" if crit == "irrecist" else ""
            if pd_sum or pd_nt:
                resp = "PD"
            elif (
                row.get("target_response") == "CR"
                and row.get("non_target_response") in ("CR", "NA")
                and row.get("n_new_lesions", 0) == 0
            ):
                resp = "CR"
            elif s0 > 0 and compare(pct_change(burden, s0) or 0.0, "<=", -cfg.pr_pct):
                resp = "PR"
            else:
                resp = "SD"
            row[f"{crit}_burden_mm"] = burden
            row[f"{crit}_response"] = prefix + resp
            row[f"_{crit}_pd"] = resp == "PD"
            history.append(burden)

    _confirm(on_rows, "irrc", cfg.confirmation_min_days, None)
    _confirm(on_rows, "irrecist", cfg.confirmation_min_days, cfg.irrecist_confirmation_max_days)
    _confirm(on_rows, "imrecist", cfg.confirmation_min_days, None)
    return {
        row["scan_date"]: ImmuneTimepoint(scan_date=row["scan_date"], **{k: row[k] for k in IMMUNE_FIELDS})
        for row in on_rows
    }


def _confirm_response(rows: list[dict[str, Any]], min_days: int) -> None:
    """irRC irCR / irPR (Wolchok 2009): confirmed by the first assessment >= 4 weeks later showing irCR (for
    irCR) or irCR / irPR (for irPR)."""
    for i, row in enumerate(rows):
        resp = row.get("irrc_response")
        if resp not in ("irCR", "irPR"):
            continue
        accepted = ("irCR",) if resp == "irCR" else ("irCR", "irPR")
        status = "pending"
        for later in rows[i + 1 :]:
            if (later["scan_date"] - row["scan_date"]).days >= min_days:
                status = "confirmed" if later.get("irrc_response") in accepted else "not_confirmed"
                break
        row["_irrc_confirmation"] = status


def _confirm(rows: list[dict[str, Any]], crit: str, min_days: int, max_days: int | None) -> None:
    for i, row in enumerate(rows):
        if not row.pop(f"_{crit}_pd", False):
            row[f"{crit}_confirmation"] = row.pop(f"_{crit}_confirmation", "")
            continue
        status = "pending"
        for later in rows[i + 1 :]:
            gap = (later["scan_date"] - row["scan_date"]).days
            if gap < min_days:
                continue
            if max_days is not None and gap > max_days:
                status = "not_confirmed_outside_window"
            else:
                status = (
                    "confirmed"
                    if later.get(f"_{crit}_pd", later.get(f"{crit}_response", "").endswith("PD"))
                    else "not_confirmed"
                )
            break
        row[f"{crit}_confirmation"] = status
