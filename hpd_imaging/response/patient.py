"""One patient's measurements organised for RECIST: timepoint roles, lesion roles, target selection, sums.

Why a separate module: every criterion (RECIST 1.1, iRECIST, irRC, irRECIST, imRECIST) and every kinetic
metric
reads the same facts (which scan is the baseline, which lesions are targets, which are new, the sums), and
they
must agree on them. Rules: specs/hpd_kinetics.md sections 0 and 3 (RECIST 1.1, Eisenhauer 2009).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from hpd_imaging.settings.hpd import ResponseConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LesionInfo:
    lesion_id: str
    organ: str
    is_lymph_node: bool
    is_new: bool
    declared_target: bool | None  # from the is_target column, None when the column is absent


@dataclass(frozen=True)
class Size:
    """One lesion on one scan (mm, mm3); None where the table has no value."""

    ld_mm: float | None
    sa_mm: float | None
    volume_mm3: float | None


@dataclass(frozen=True)
class Roles:
    """Timepoint roles from dates (section 0): baseline = last scan on/before ICI start, etc."""

    ici_start: dt.date | None
    baseline: dt.date | None
    pre_baseline: dt.date | None
    first_eval: dt.date | None
    follow_ups: tuple[dt.date, ...]  # every scan after ICI start, first evaluation included
    earlier: tuple[dt.date, ...]  # scans before the pre-baseline scan

    def role_of(self, date: dt.date) -> str:
        if date == self.baseline:
            return "baseline"
        if date == self.pre_baseline:
            return "pre_baseline"
        if date == self.first_eval:
            return "first_eval"
        if date in self.follow_ups:
            return "follow_up"
        return "earlier"


@dataclass
class PatientData:
    patient_id: str
    scan_dates: list[dt.date]
    lesions: dict[str, LesionInfo]
    sizes: dict[tuple[str, dt.date], Size]
    clinical: dict = field(default_factory=dict)

    def size(self, lesion_id: str, date: dt.date) -> Size | None:
        return self.sizes.get((lesion_id, date))


def recist_diameter(info: LesionInfo, size: Size | None) -> float | None:
    """RECIST 1.1 diameter: short axis for lymph nodes, longest axial diameter otherwise."""
    if size is None:
        return None
    return size.sa_mm if info.is_lymph_node else size.ld_mm


def diameter_sum(patient: PatientData, lesion_ids: Iterable[str], date: dt.date) -> float:
    """Sum of RECIST diameters on ``date``; a lesion without a row (or without the diameter) counts as 0."""
    return sum(recist_diameter(patient.lesions[lid], patient.size(lid, date)) or 0.0 for lid in lesion_ids)


def is_present(info: LesionInfo, size: Size | None) -> bool:
    """A lesion is present when any measurement is positive (a row of zeros records a disappearance)."""
    if size is None:
        return False
    return any(v is not None and v > 0 for v in (size.ld_mm, size.sa_mm, size.volume_mm3))


def build_patients(measurements: pd.DataFrame, clinical: pd.DataFrame) -> dict[str, PatientData]:
    """Group validated tables by patient; new lesions are derived when ``is_new`` is absent."""
    clin = {str(r["patient_id"]): r for r in clinical.to_dict("records")} if len(clinical) else {}
    patients: dict[str, PatientData] = {}
    for pid, group in measurements.groupby("patient_id", sort=True):
        dates = sorted(set(group["scan_date"]))
        sizes: dict[tuple[str, dt.date], Size] = {}
        raw_info: dict[str, dict] = {}
        for rec in group.to_dict("records"):
            sizes[(rec["lesion_id"], rec["scan_date"])] = Size(
                rec["longest_axial_diameter_mm"], rec["short_axis_mm"], rec["volume_mm3"]
            )
            info = raw_info.setdefault(
                rec["lesion_id"],
                {"organ": rec["organ"], "node": rec["is_lymph_node"], "new": None, "target": None},
            )
            if rec["is_new"] is not None:
                info["new"] = bool(info["new"]) or rec["is_new"]
            if rec["is_target"] is not None:
                info["target"] = bool(info["target"]) or rec["is_target"]
        clinical_row = clin.get(str(pid), {})
        ici = clinical_row.get("ici_start_date")
        baseline = max((d for d in dates if ici is not None and d <= ici), default=None)
        lesions = {}
        for lid, info in raw_info.items():
            is_new = info["new"]
            if is_new is None:  # derived: absent at baseline, seen later
                tmp = LesionInfo(lid, info["organ"], info["node"], False, None)
                at_baseline = baseline is not None and is_present(tmp, sizes.get((lid, baseline)))
                seen_after = baseline is not None and any(
                    is_present(tmp, sizes.get((lid, d))) for d in dates if d > baseline
                )
                seen_before = any(
                    is_present(tmp, sizes.get((lid, d)))
                    for d in dates
                    if baseline is not None and d < baseline
                )
                is_new = bool(not at_baseline and seen_after and not seen_before)
            lesions[lid] = LesionInfo(lid, info["organ"], bool(info["node"]), bool(is_new), info["target"])
        patients[str(pid)] = PatientData(str(pid), dates, lesions, sizes, dict(clinical_row))
    return patients


def assign_roles(dates: list[dt.date], ici_start: dt.date | None) -> Roles:
    if ici_start is None:
        return Roles(None, None, None, None, (), tuple(dates))
    before = [d for d in dates if d <= ici_start]
    after = tuple(d for d in dates if d > ici_start)
    baseline = before[-1] if before else None
    pre = before[-2] if len(before) >= 2 else None
    earlier = tuple(before[:-2])
    return Roles(ici_start, baseline, pre, after[0] if after else None, after, earlier)


# --------------------------------------------------------------------------------------------------
# Target selection (RECIST 1.1 section 3.2)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSelection:
    targets: tuple[str, ...]
    non_targets: tuple[str, ...]
    new: tuple[str, ...]
    records: tuple[dict, ...]  # one row per lesion: role and why (the "recorded selection")
    automatic: bool


def select_targets(patient: PatientData, roles: Roles, cfg: ResponseConfig) -> TargetSelection:
    """Baseline targets: declared by ``is_target``, or chosen by RECIST 1.1 (measurable, <= 5, <= 2 per organ,
    largest first; ties broken by lesion id so the choice is reproducible)."""
    base = roles.baseline
    records: list[dict] = []
    new = tuple(sorted(lid for lid, info in patient.lesions.items() if info.is_new))
    declared = any(info.declared_target is not None for info in patient.lesions.values())
    candidates: list[tuple[float, str]] = []
    non_targets: list[str] = []
    targets: list[str] = []

    def record(lid: str, role: str, reason: str, diameter: float | None) -> None:
        info = patient.lesions[lid]
        records.append(
            {
                "patient_id": patient.patient_id,
                "lesion_id": lid,
                "organ": info.organ,
                "is_lymph_node": info.is_lymph_node,
                "baseline_date": base,
                "baseline_diameter_mm": diameter,
                "role": role,
                "reason": reason,
                "selection": "declared" if declared else "automatic",
            }
        )

    for lid in sorted(patient.lesions):
        info = patient.lesions[lid]
        if info.is_new:
            record(lid, "new", "first seen after the baseline scan", None)
            continue
        size = patient.size(lid, base) if base is not None else None
        diameter = recist_diameter(info, size)
        if base is None or not is_present(info, size):
            record(lid, "not_at_baseline", "not present on the baseline scan", diameter)
            continue
        if declared:
            if info.declared_target:
                if diameter is None:
                    record(
                        lid, "non_target", "declared target without a RECIST diameter at baseline", diameter
                    )
                    non_targets.append(lid)
                else:
                    targets.append(lid)
                    record(lid, "target", "declared target (is_target column)", diameter)
            else:
                non_targets.append(lid)
                record(lid, "non_target", "declared non-target (is_target column)", diameter)
            continue
        if info.is_lymph_node:
            sa = diameter or 0.0
            if sa >= cfg.node_measurable_min_sa_mm:
                candidates.append((sa, lid))
            elif sa >= cfg.node_pathological_min_sa_mm:
                non_targets.append(lid)
                record(
                    lid,
                    "non_target",
                    f"pathological node, short axis {sa:g} mm in "
                    f"[{cfg.node_pathological_min_sa_mm:g}, {cfg.node_measurable_min_sa_mm:g}) mm",
                    diameter,
                )
            else:
                record(
                    lid,
                    "normal_node",
                    f"node short axis {sa:g} mm < {cfg.node_pathological_min_sa_mm:g} mm is normal",
                    diameter,
                )
        else:
            ld = diameter or 0.0
            if ld >= cfg.measurable_min_mm:
                candidates.append((ld, lid))
            else:
                non_targets.append(lid)
                record(
                    lid,
                    "non_target",
                    f"non-measurable: long axis {ld:g} mm < {cfg.measurable_min_mm:g} mm",
                    diameter,
                )
    if not declared:
        per_organ: dict[str, int] = {}
        for rank, (diameter, lid) in enumerate(sorted(candidates, key=lambda c: (-c[0], c[1])), start=1):
            organ = patient.lesions[lid].organ
            if len(targets) >= cfg.max_targets_total:
                non_targets.append(lid)
                record(
                    lid,
                    "non_target",
                    f"measurable, rank {rank}: already {cfg.max_targets_total} targets",
                    diameter,
                )
            elif per_organ.get(organ, 0) >= cfg.max_targets_per_organ:
                non_targets.append(lid)
                record(
                    lid,
                    "non_target",
                    f"measurable, rank {rank}: already {cfg.max_targets_per_organ} targets "
                    f"in organ {organ!r}",
                    diameter,
                )
            else:
                per_organ[organ] = per_organ.get(organ, 0) + 1
                targets.append(lid)
                record(lid, "target", f"measurable, rank {rank} by size", diameter)
    return TargetSelection(tuple(targets), tuple(non_targets), new, tuple(records), not declared)


def baseline_organs(patient: PatientData, selection: TargetSelection) -> set[str]:
    return {patient.lesions[lid].organ for lid in (*selection.targets, *selection.non_targets)}


# --------------------------------------------------------------------------------------------------
# Sums
# --------------------------------------------------------------------------------------------------


def target_value(
    patient: PatientData, lid: str, date: dt.date, roles: Roles, cfg: ResponseConfig, kind: str = "diameter"
) -> float | None:
    """One target's contribution on one scan, applying the missing-measurement policies."""
    info = patient.lesions[lid]
    size = patient.size(lid, date)
    if kind == "diameter":
        value = recist_diameter(info, size)
    else:
        value = None if size is None else size.volume_mm3
        if size is not None and value is None:
            return None  # a row without a volume: volumetric metrics not evaluable
    if size is None:
        policy = (
            cfg.missing_target_at_prebaseline
            if date < (roles.baseline or date)
            else cfg.missing_target_at_followup
        )
        if policy == "zero":
            return 0.0
        if policy == "too_small":
            d = cfg.too_small_to_measure_mm
            return d if kind == "diameter" else math.pi / 6 * d**3
        return None
    return value


def sum_over(
    patient: PatientData,
    lesion_ids: tuple[str, ...],
    date: dt.date,
    roles: Roles,
    cfg: ResponseConfig,
    kind: str = "diameter",
) -> float | None:
    total = 0.0
    for lid in lesion_ids:
        value = target_value(patient, lid, date, roles, cfg, kind)
        if value is None:
            return None
        total += value
    return total


def new_lesions_present(patient: PatientData, date: dt.date, cfg: ResponseConfig) -> list[str]:
    """New lesions visible on ``date`` (new nodes count only when pathological, short axis >= 10 mm)."""
    present = []
    for lid, info in patient.lesions.items():
        if not info.is_new:
            continue
        size = patient.size(lid, date)
        if not is_present(info, size):
            continue
        if info.is_lymph_node and (size is None or (size.sa_mm or 0.0) < cfg.node_pathological_min_sa_mm):
            continue
        present.append(lid)
    return sorted(present)


def is_measurable(info: LesionInfo, size: Size | None, cfg: ResponseConfig) -> bool:
    d = recist_diameter(info, size)
    if d is None:
        return False
    return d >= (cfg.node_measurable_min_sa_mm if info.is_lymph_node else cfg.measurable_min_mm)


def new_measurable_lesions(
    patient: PatientData,
    dates: list[dt.date],
    cfg: ResponseConfig,
    max_total: int | None = None,
    max_per_organ: int | None = None,
) -> list[str]:
    """New lesions measurable when first seen, in order of appearance then size (iRECIST new-lesion targets,
    irRECIST/imRECIST additions)."""
    chosen: list[str] = []
    per_organ: dict[str, int] = {}
    for date in dates:
        appearing = []
        for lid in new_lesions_present(patient, date, cfg):
            if lid in chosen or any(
                is_present(patient.lesions[lid], patient.size(lid, d)) for d in dates if d < date
            ):
                continue
            info = patient.lesions[lid]
            size = patient.size(lid, date)
            if is_measurable(info, size, cfg):
                appearing.append((-(recist_diameter(info, size) or 0.0), lid))
        for _, lid in sorted(appearing):
            organ = patient.lesions[lid].organ
            if max_total is not None and len(chosen) >= max_total:
                break
            if max_per_organ is not None and per_organ.get(organ, 0) >= max_per_organ:
                continue
            per_organ[organ] = per_organ.get(organ, 0) + 1
            chosen.append(lid)
    return chosen
