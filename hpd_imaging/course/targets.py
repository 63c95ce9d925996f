"""Lesion roles, set once per course: RECIST 1.1 target selection at baseline (Eisenhauer 2009, section 3.2).

Targets are declared by the data (``is_target`` column) or chosen by RECIST 1.1: measurable at baseline
(non-nodal long axis >= 10 mm, node short axis >= 15 mm), at most 5 in all and 2 per organ, largest first,
ties broken by lesion id so that the choice is reproducible. Pathological nodes (10 to < 15 mm) and
non-measurable lesions are non-targets; normal nodes (< 10 mm) take no part. Every lesion's role carries
its reason, which targets.csv shows. Radiomics aggregation, the report and the DICOM SR read these roles
from the course.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from hpd_imaging.course.roles import roles_from_timepoints
from hpd_imaging.domain import Lesion, LesionMeasurement, LesionRole, PatientCourse
from hpd_imaging.settings.hpd import ResponseConfig


def _at(course: PatientCourse, lesion_id: str, date: object) -> LesionMeasurement | None:
    for m in course.measurements:
        if m.lesion_id == lesion_id and m.scan_date == date:
            return m
    return None


def automatic_roles(
    baseline: Sequence[tuple[Lesion, float | None]], cfg: ResponseConfig
) -> dict[str, tuple[LesionRole, str]]:
    """RECIST 1.1 automatic selection over the lesions present at baseline: lesion id -> (role, reason).

    ``baseline``: (lesion, its RECIST diameter at baseline: short axis for nodes, long axis otherwise) of
    every lesion present on the baseline scan that is neither new nor a fragment. The one rule for the
    course (:func:`assign_lesion_roles`) and for the label-stability draws, which re-run it on every drawn
    set of sizes (response/stability.py): a selection that the measurement error could change is then
    reflected in the labels' probabilities instead of being held fixed."""
    out: dict[str, tuple[LesionRole, str]] = {}
    candidates: list[tuple[float, str]] = []
    organs: dict[str, str] = {}
    for lesion, diameter in baseline:
        lid = lesion.lesion_id
        organs[lid] = lesion.organ
        size = diameter or 0.0
        if lesion.is_lymph_node:
            if size >= cfg.node_measurable_min_sa_mm:
                candidates.append((size, lid))
            elif size >= cfg.node_pathological_min_sa_mm:
                out[lid] = (
                    LesionRole.NON_TARGET,
                    f"pathological node, short axis {size:g} mm in "
                    f"[{cfg.node_pathological_min_sa_mm:g}, {cfg.node_measurable_min_sa_mm:g}) mm",
                )
            else:
                out[lid] = (
                    LesionRole.NORMAL_NODE,
                    f"node short axis {size:g} mm < {cfg.node_pathological_min_sa_mm:g} mm is normal",
                )
        elif size >= cfg.measurable_min_mm:
            candidates.append((size, lid))
        else:
            out[lid] = (
                LesionRole.NON_TARGET,
                f"non-measurable: long axis {size:g} mm < {cfg.measurable_min_mm:g} mm",
            )
    per_organ: dict[str, int] = {}
    n_targets = 0
    for rank, (_diameter, lid) in enumerate(sorted(candidates, key=lambda c: (-c[0], c[1])), start=1):
        organ = organs[lid]
        if n_targets >= cfg.max_targets_total:
            out[lid] = (
                LesionRole.NON_TARGET,
                f"measurable, rank {rank}: already {cfg.max_targets_total} targets",
            )
        elif per_organ.get(organ, 0) >= cfg.max_targets_per_organ:
            out[lid] = (
                LesionRole.NON_TARGET,
                f"measurable, rank {rank}: already {cfg.max_targets_per_organ} targets in organ {organ!r}",
            )
        else:
            per_organ[organ] = per_organ.get(organ, 0) + 1
            n_targets += 1
            out[lid] = (LesionRole.TARGET, f"measurable, rank {rank} by size")
    return out


def assign_lesion_roles(
    course: PatientCourse, cfg: ResponseConfig, declared: dict[str, bool | None] | None = None
) -> PatientCourse:
    """The course with every lesion's RECIST role and reason set (NEW and FRAGMENT roles are kept).

    ``declared``: lesion id -> is_target from the data; None to select automatically.
    """
    roles = roles_from_timepoints(
        ((t.scan_date, t.role) for t in course.timepoints), course.clinical.ici_start_date
    )
    base = roles.baseline
    out: dict[str, Lesion] = {}
    at_baseline: list[tuple[Lesion, float | None]] = []

    def put(lesion: Lesion, role: LesionRole, reason: str) -> None:
        out[lesion.lesion_id] = dataclasses.replace(lesion, role=role, role_reason=reason)

    for lesion in sorted(course.lesions, key=lambda x: x.lesion_id):
        lid = lesion.lesion_id
        if lesion.role in (LesionRole.NEW, LesionRole.FRAGMENT):
            reason = lesion.role_reason or "first seen after the baseline scan"
            put(lesion, lesion.role, reason)
            continue
        size = _at(course, lid, base) if base is not None else None
        diameter = size.recist_diameter_mm if size is not None else None
        if size is None or not size.is_present:
            put(lesion, LesionRole.NOT_AT_BASELINE, "not present on the baseline scan")
            continue
        if declared is not None:
            if declared.get(lid):
                if diameter is None:
                    put(
                        lesion, LesionRole.NON_TARGET, "declared target without a RECIST diameter at baseline"
                    )
                else:
                    put(lesion, LesionRole.TARGET, "declared target (is_target column)")
            else:
                put(lesion, LesionRole.NON_TARGET, "declared non-target (is_target column)")
            continue
        at_baseline.append((lesion, diameter))
    by_id = {lesion.lesion_id: lesion for lesion, _ in at_baseline}
    for lid, (role, reason) in automatic_roles(at_baseline, cfg).items():
        put(by_id[lid], role, reason)
    lesions = tuple(out[lesion.lesion_id] for lesion in course.lesions)
    return dataclasses.replace(course, lesions=lesions, targets_declared=declared is not None)
