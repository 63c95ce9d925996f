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

from hpd_imaging.course.roles import roles_from_timepoints
from hpd_imaging.domain import Lesion, LesionMeasurement, LesionRole, PatientCourse
from hpd_imaging.settings.hpd import ResponseConfig


def _at(course: PatientCourse, lesion_id: str, date: object) -> LesionMeasurement | None:
    for m in course.measurements:
        if m.lesion_id == lesion_id and m.scan_date == date:
            return m
    return None


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
    candidates: list[tuple[float, str]] = []

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
        if lesion.is_lymph_node:
            sa = diameter or 0.0
            if sa >= cfg.node_measurable_min_sa_mm:
                candidates.append((sa, lid))
            elif sa >= cfg.node_pathological_min_sa_mm:
                put(
                    lesion,
                    LesionRole.NON_TARGET,
                    f"pathological node, short axis {sa:g} mm in "
                    f"[{cfg.node_pathological_min_sa_mm:g}, {cfg.node_measurable_min_sa_mm:g}) mm",
                )
            else:
                put(
                    lesion,
                    LesionRole.NORMAL_NODE,
                    f"node short axis {sa:g} mm < {cfg.node_pathological_min_sa_mm:g} mm is normal",
                )
        else:
            ld = diameter or 0.0
            if ld >= cfg.measurable_min_mm:
                candidates.append((ld, lid))
            else:
                put(
                    lesion,
                    LesionRole.NON_TARGET,
                    f"non-measurable: long axis {ld:g} mm < {cfg.measurable_min_mm:g} mm",
                )
    by_id = {lesion.lesion_id: lesion for lesion in course.lesions}
    per_organ: dict[str, int] = {}
    n_targets = 0
    for rank, (_diameter, lid) in enumerate(sorted(candidates, key=lambda c: (-c[0], c[1])), start=1):
        lesion = by_id[lid]
        if n_targets >= cfg.max_targets_total:
            put(
                lesion,
                LesionRole.NON_TARGET,
                f"measurable, rank {rank}: already {cfg.max_targets_total} targets",
            )
        elif per_organ.get(lesion.organ, 0) >= cfg.max_targets_per_organ:
            put(
                lesion,
                LesionRole.NON_TARGET,
                f"measurable, rank {rank}: already {cfg.max_targets_per_organ} targets "
                f"in organ {lesion.organ!r}",
            )
        else:
            per_organ[lesion.organ] = per_organ.get(lesion.organ, 0) + 1
            n_targets += 1
            put(lesion, LesionRole.TARGET, f"measurable, rank {rank} by size")
    lesions = tuple(out[lesion.lesion_id] for lesion in course.lesions)
    return dataclasses.replace(course, lesions=lesions, targets_declared=declared is not None)
