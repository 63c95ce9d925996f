"""Lesion identity across timepoints: one stable ``lesion_id`` per lesion.

Identity comes from the data when it is there (SEG tracking UID, tracking ID / manifest lesion id; segment
or ROI labels count as evidence, or as identity with ``label_identity="trust"``). Otherwise by position: each
exam's CT is registered to the reference (baseline) CT (hpd_imaging.tracking.registration), lesion centroids
and footprints are mapped into the reference space, and lesions are paired by optimal assignment
(Hungarian, ``scipy.optimize.linear_sum_assignment``) on centroid distance, with overlap as evidence.

RECIST 1.1 cases: a mask at follow-up that matches no lesion is a new lesion; a lesion that matches no mask
has disappeared (measured 0); several masks lying inside one lesion's previous extent are its fragments
(measured together, long axes summed); one mask covering several lesions' previous extents is a coalesced
lesion, measured as one and attributed to the largest of them, the others measured 0. Each case is flagged
in ``TrackingMatch.note``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from hpd_imaging.domain import (
    CtImage,
    Lesion,
    LesionMask,
    LesionMeasurement,
    LesionRole,
    PatientCourse,
    Timepoint,
    TimepointRole,
    TrackingMatch,
)
from hpd_imaging.errors import MaskError
from hpd_imaging.measure.lesion import absent_measurement, measure_lesion
from hpd_imaging.settings.measure import MeasureSettings
from hpd_imaging.settings.tracking import TrackingSettings
from hpd_imaging.tracking.registration import IDENTITY, Registration, register_to_reference

logger = logging.getLogger(__name__)

_INFEASIBLE = 1e9
_KEY_BASE = 1 << 20  # footprint keys: (i, j, k) on the evidence grid packed into one int64


class ExamMasks(NamedTuple):
    """One exam of a patient: its date, CT, lesion masks on that CT grid and (optionally) its Timepoint."""

    scan_date: dt.date
    ct: CtImage
    masks: list[LesionMask]
    timepoint: Timepoint | None = None


@dataclass
class _Obs:
    """One mask at one exam, mapped to the reference space."""

    mask: LesionMask
    centroid_ref: np.ndarray
    footprint: np.ndarray  # sorted unique evidence-grid keys
    key: str | None  # declared identity
    key_kind: str  # "tracking_uid" | "manifest" | ""


@dataclass
class _Track:
    lesion_id: str
    tracking_uid: str
    key: str | None
    organ: str
    is_lymph_node: bool
    first_seen: dt.date
    is_new: bool
    label: str
    centroid_ref: np.ndarray
    footprint: np.ndarray
    volume_mm3: float
    measurements: list[LesionMeasurement] = field(default_factory=list)
    merged_into: str | None = None  # coalesced into this lesion (measured 0 while merged)


# --------------------------------------------------------------------------------------------------
# footprints on a common evidence grid (reference orientation, isotropic spacing)
# --------------------------------------------------------------------------------------------------


#: samples mapped at once when building a footprint (~100 MB of work arrays)
_FOOTPRINT_SAMPLES = 1 << 21


def _footprint(
    mask: LesionMask, kji: np.ndarray, registration: Registration, reference: CtImage, spacing_mm: float
) -> np.ndarray:
    """Evidence-grid cells covered by the mask once mapped into the reference space.

    ``kji`` are the mask's voxel indices (``mask.voxel_indices()``, computed once by the caller). Each voxel
    is supersampled so that samples are at most ``spacing_mm`` apart (thick slices leave no gaps), then mapped
    with the registration and binned on a grid aligned with the reference CT.
    """
    spacing = np.asarray(mask.geometry.spacing_mm[::-1])
    steps = np.maximum(1, np.ceil(spacing / spacing_mm)).astype(int)
    offsets = np.stack(np.meshgrid(*[(np.arange(n) + 0.5) / n - 0.5 for n in steps], indexing="ij"), -1)
    offsets = offsets.reshape(-1, 3)
    ref = reference.geometry
    # voxels in chunks, so that the work arrays (samples x 3 doubles, several of them) stay bounded for a
    # multi-litre lesion (issue 21); the cells are the same, np.unique of their union is the same set
    chunk = max(1, _FOOTPRINT_SAMPLES // len(offsets))
    parts = []
    for start in range(0, len(kji), chunk):
        samples = (kji[start : start + chunk, None, :] + offsets[None, :, :]).reshape(-1, 3)
        lps = registration.map_points(mask.geometry.index_to_lps(samples[:, ::-1]))
        local = (lps - np.asarray(ref.origin_mm)) @ ref.direction_matrix  # reference-aligned mm
        cells = np.floor(local / spacing_mm).astype(np.int64) + _KEY_BASE // 2
        parts.append(np.unique((cells[:, 0] * _KEY_BASE + cells[:, 1]) * _KEY_BASE + cells[:, 2]))
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _dilate(footprint: np.ndarray, radius_cells: int) -> np.ndarray:
    if radius_cells <= 0 or footprint.size == 0:
        return footprint
    from scipy import ndimage

    cells = np.stack(
        [footprint // (_KEY_BASE * _KEY_BASE), (footprint // _KEY_BASE) % _KEY_BASE, footprint % _KEY_BASE],
        -1,
    )
    low = cells.min(0) - radius_cells
    grid = np.zeros(tuple(cells.max(0) - low + radius_cells + 1), dtype=bool)
    grid[tuple((cells - low).T)] = True
    r = np.arange(-radius_cells, radius_cells + 1)
    ball = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius_cells**2
    grown = np.argwhere(ndimage.binary_dilation(grid, structure=ball)) + low
    return np.unique((grown[:, 0] * _KEY_BASE + grown[:, 1]) * _KEY_BASE + grown[:, 2])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    if a.size + b.size == 0:
        return 0.0
    return 2.0 * np.intersect1d(a, b, assume_unique=True).size / (a.size + b.size)


def _covered(part: np.ndarray, container: np.ndarray) -> float:
    """Fraction of ``part`` inside ``container``."""
    return np.intersect1d(part, container, assume_unique=True).size / part.size if part.size else 0.0


# --------------------------------------------------------------------------------------------------
# identity helpers
# --------------------------------------------------------------------------------------------------


def _declared_uids(patient_id: str, exams: Sequence[ExamMasks], settings: TrackingSettings) -> dict[str, str]:
    """The one Tracking UID each declared lesion id (TrackingIdentifier / masks.csv) stands for.

    A lesion id that comes with a Tracking UID in one file and without one in another (a SEG at baseline, a
    NIfTI + masks.csv at follow-up) is the same declared lesion, so the UID-less masks are keyed by that UID:
    keyed apart, they would become two lesions under one id (a "new" lesion and a "disappeared" one). A lesion
    id declared with two different UIDs contradicts itself (some tools write new UIDs on every export); which
    one is right cannot be known, so it is refused, never guessed.
    """
    if not settings.use_declared_identity:
        return {}
    seen: dict[str, dict[str, list[str]]] = {}
    for exam in exams:
        for m in exam.masks:
            if m.lesion_id and m.tracking_uid:
                where = f"{exam.scan_date} {m.source_path or m.label}"
                seen.setdefault(m.lesion_id, {}).setdefault(m.tracking_uid, []).append(where)
    for lesion_id, uids in seen.items():
        if len(uids) > 1:
            listed = "; ".join(f"{uid} ({', '.join(where)})" for uid, where in sorted(uids.items()))
            raise MaskError(
                f"patient {patient_id}: lesion id {lesion_id!r} is declared with {len(uids)} different "
                f"Tracking UIDs: {listed}; expected one UID per tracked lesion. Fix the UIDs, or set "
                "tracking.use_declared_identity: false to track these masks by position"
            )
    return {lesion_id: next(iter(uids)) for lesion_id, uids in seen.items()}


def _declared_key(
    mask: LesionMask, settings: TrackingSettings, uid_of_id: dict[str, str] | None = None
) -> tuple[str | None, str]:
    if not settings.use_declared_identity:
        return None, ""
    if mask.tracking_uid:
        return f"uid:{mask.tracking_uid}", "tracking_uid"
    if mask.lesion_id and uid_of_id and mask.lesion_id in uid_of_id:
        return f"uid:{uid_of_id[mask.lesion_id]}", "manifest"
    if mask.lesion_id:
        return f"id:{mask.lesion_id}", "manifest"
    if settings.label_identity == "trust" and mask.label:
        return f"label:{mask.label}", "label"
    return None, ""


def _any_undeclared(exams: Sequence[ExamMasks], settings: TrackingSettings) -> bool:
    """Some mask without a declared identity: its lesion must be matched by position."""
    return any(_declared_key(m, settings)[0] is None for e in exams for m in e.masks)


def registration_needed(exams: Sequence[ExamMasks], settings: TrackingSettings | None = None) -> bool:
    """Whether :func:`track_lesions` registers images, and so reads every exam's CT voxels: registration on,
    more than one exam, and some mask matched by position (no declared identity)."""
    settings = settings or TrackingSettings()
    return settings.register_images and len(exams) > 1 and _any_undeclared(exams, settings)


def _tracking_uid(patient_id: str, lesion_id: str) -> str:
    """Deterministic UID for a lesion without a declared one (same patient and id -> same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=None, entropy_srcs=["hpd-imaging", patient_id, lesion_id]))


def _reference_index(exams: Sequence[ExamMasks]) -> int:
    for n, exam in enumerate(exams):
        if exam.timepoint is not None and exam.timepoint.role == TimepointRole.BASELINE:
            return n
    return 0


def _union_crop(masks: list[LesionMask]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The union of masks on one grid as a crop over the box enclosing theirs, and its (k, j, i) offset."""
    present = [m for m in masks if not m.is_empty]
    if not present:
        return np.zeros((0, 0, 0), dtype=bool), (0, 0, 0)
    lo = np.min([m.offset for m in present], axis=0)
    hi = np.max([np.add(m.offset, m.crop.shape) for m in present], axis=0)
    union = np.zeros(tuple(int(n) for n in hi - lo), dtype=bool)
    for m in present:
        union[tuple(slice(o - a, o - a + n) for o, a, n in zip(m.offset, lo, m.crop.shape, strict=True))] |= (
            m.crop
        )
    return union, (int(lo[0]), int(lo[1]), int(lo[2]))


def _measure(
    track: _Track,
    masks: list[LesionMask],
    exam: ExamMasks,
    patient_id: str,
    measure_settings: MeasureSettings,
) -> LesionMeasurement:
    if len(masks) == 1:
        merged = masks[0]
    else:  # fragments: one mask with several pieces; measure_lesion sums their long axes
        for m in masks:
            if not m.geometry.is_close(masks[0].geometry):
                raise MaskError(
                    f"{m.source_path or m.label}: fragments of lesion {track.lesion_id} are on "
                    f"different grids: {masks[0].geometry.describe_difference(m.geometry)}"
                )
        union, start = _union_crop(masks)
        merged = replace(masks[0], crop=union, offset=start, label="+".join(m.label for m in masks))
    m = measure_lesion(merged, lesion_id=track.lesion_id, settings=measure_settings)
    return replace(
        m,
        patient_id=patient_id,
        scan_date=exam.scan_date,
        is_new=track.is_new,
        organ=m.organ or track.organ,
        is_lymph_node=m.is_lymph_node or track.is_lymph_node,
        series_uid=exam.ct.series_instance_uid,
        is_fragmented=m.is_fragmented or len(masks) > 1,
    )


def _absent(track: _Track, exam: ExamMasks, patient_id: str) -> LesionMeasurement:
    m = absent_measurement(track.lesion_id, organ=track.organ, is_lymph_node=track.is_lymph_node)
    return replace(
        m,
        patient_id=patient_id,
        scan_date=exam.scan_date,
        is_new=track.is_new,
        series_uid=exam.ct.series_instance_uid,
    )


# --------------------------------------------------------------------------------------------------
# the tracker
# --------------------------------------------------------------------------------------------------


def track_lesions(
    patient_id: str,
    exams: Sequence[ExamMasks],
    settings: TrackingSettings | None = None,
    *,
    measure_settings: MeasureSettings | None = None,
    registrations: dict[dt.date, Registration] | None = None,
    baseline_date: dt.date | None = None,
) -> PatientCourse:
    """Give each lesion of a patient one identity over its exams and measure every mask.

    ``exams`` may come in any order (sorted by date here). The reference space is the baseline exam's CT
    (``baseline_date`` when given, else the exam whose Timepoint role is BASELINE, else the first); lesions
    first seen after it are new. Lesion ids are the declared ones, else
    ``L1``, ``L2``, ... in order of first appearance (and mask order within an exam): deterministic for the
    same input. ``registrations`` (date -> exam-to-reference mapping) can be given to skip registration
    (tests, or a registration computed elsewhere); otherwise it runs when some mask needs position matching.
    """
    settings = settings or TrackingSettings()
    measure_settings = measure_settings or MeasureSettings()
    exams = sorted(exams, key=lambda e: e.scan_date)
    if len({e.scan_date for e in exams}) != len(exams):
        dates = [e.scan_date.isoformat() for e in exams]
        raise MaskError(f"patient {patient_id}: expected one exam per scan date, got {dates}")
    if not exams:
        return PatientCourse(patient_id=patient_id, lesions=(), measurements=())
    ref_n = _reference_index(exams)
    if baseline_date is not None:
        dates = [e.scan_date for e in exams]
        if baseline_date not in dates:
            raise MaskError(
                f"patient {patient_id}: expected the baseline date {baseline_date} among the exam "
                f"dates, got {[d.isoformat() for d in dates]}"
            )
        ref_n = dates.index(baseline_date)
    reference = exams[ref_n].ct
    baseline_date = exams[ref_n].scan_date
    uid_of_id = _declared_uids(patient_id, exams, settings)
    keyed = [[_declared_key(m, settings, uid_of_id) for m in e.masks] for e in exams]
    need_position = _any_undeclared(exams, settings)

    tracks: list[_Track] = []
    decisions: list[TrackingMatch] = []
    used_ids: set[str] = {
        m.lesion_id for e in exams for m in e.masks if m.lesion_id and settings.use_declared_identity
    }
    counter = 0

    def next_id() -> str:
        nonlocal counter
        while True:
            counter += 1
            if f"L{counter}" not in used_ids:
                used_ids.add(f"L{counter}")
                return f"L{counter}"

    for n, exam in enumerate(exams):
        for m in exam.masks:
            if not m.geometry.is_close(exam.ct.geometry):
                raise MaskError(
                    f"{m.source_path or m.label}: mask grid differs from its CT "
                    f"{exam.ct.source}: {exam.ct.geometry.describe_difference(m.geometry)}"
                )
        if registrations is not None and exam.scan_date in registrations:
            reg = registrations[exam.scan_date]
        elif n == ref_n:
            reg = IDENTITY
        elif need_position and settings.register_images:
            reg = register_to_reference(exam.ct, reference, settings)
        else:
            reg = Registration(matrix=np.eye(4), method="none", note="registration not run")
        obs = []
        for m, (key, kind) in zip(exam.masks, keyed[n], strict=True):
            kji = m.voxel_indices()  # = np.argwhere of the whole-grid mask, from the crop
            if not len(kji):
                logger.warning("%s: empty mask %r skipped", m.source_path or exam.ct.source, m.label)
                continue
            centroid = m.geometry.index_to_lps(kji.mean(0)[::-1])
            footprint = _footprint(m, kji, reg, reference, settings.evidence_spacing_mm)
            obs.append(_Obs(m, reg.map_points(centroid), footprint, key, kind))
        _match_exam(
            patient_id,
            exam,
            obs,
            tracks,
            decisions,
            reg,
            settings,
            measure_settings,
            is_after_baseline=exam.scan_date > baseline_date,
            next_id=next_id,
        )

    lesions = tuple(
        Lesion(
            lesion_id=t.lesion_id,
            tracking_uid=t.tracking_uid,
            organ=t.organ,
            is_lymph_node=t.is_lymph_node,
            role=LesionRole.NEW if t.is_new else LesionRole.NON_TARGET,
            first_seen=t.first_seen,
        )
        for t in tracks
    )
    measurements = tuple(m for t in tracks for m in t.measurements)
    return PatientCourse(
        patient_id=patient_id,
        lesions=lesions,
        measurements=measurements,
        timepoints=tuple(e.timepoint for e in exams if e.timepoint is not None),
        tracking=tuple(decisions),
    )


def _match_exam(
    patient_id: str,
    exam: ExamMasks,
    obs: list[_Obs],
    tracks: list[_Track],
    decisions: list[TrackingMatch],
    reg: Registration,
    settings: TrackingSettings,
    measure_settings: MeasureSettings,
    *,
    is_after_baseline: bool,
    next_id,
) -> None:
    from scipy.optimize import linear_sum_assignment

    assigned: dict[int, list[tuple[_Obs, str, float | None, float | None, str]]] = {}  # track idx -> obs
    reg_note = f"registration: {reg.method}" + (f" ({reg.note})" if reg.note else "")

    def assign(t: int, o: _Obs, method: str, note: str = "") -> None:
        dist = float(np.linalg.norm(o.centroid_ref - tracks[t].centroid_ref))
        dice = _dice(o.footprint, tracks[t].footprint)
        assigned.setdefault(t, []).append((o, method, dist, dice, note))

    # 1. declared identity
    by_key = {t.key: i for i, t in enumerate(tracks) if t.key}
    free: list[_Obs] = []
    for o in obs:
        if o.key is not None and o.key in by_key:
            t = by_key[o.key]
            assign(t, o, o.key_kind)
            d = float(np.linalg.norm(o.centroid_ref - tracks[t].centroid_ref))
            if d > settings.max_match_distance_mm and reg.method not in ("none",):
                logger.warning(
                    "patient %s %s: declared identity %s pairs lesions %.1f mm apart",
                    patient_id,
                    exam.scan_date,
                    o.key,
                    d,
                )
        else:
            free.append(o)

    # 2. position: Hungarian on (distance - overlap bonus - label bonus) among the keyless ones
    keyless = [o for o in free if o.key is None]
    open_tracks = [
        i
        for i, t in enumerate(tracks)
        if i not in assigned and (t.key is None or not t.key.startswith(("uid:", "id:")))
    ]
    matched_obs: set[int] = set()
    if keyless and open_tracks:
        cost = np.full((len(keyless), len(open_tracks)), _INFEASIBLE)
        for a, o in enumerate(keyless):
            for b, t in enumerate(open_tracks):
                tr = tracks[t]
                dist = float(np.linalg.norm(o.centroid_ref - tr.centroid_ref))
                dice = _dice(o.footprint, tr.footprint)
                if dist <= settings.max_match_distance_mm or dice >= settings.min_overlap_dice:
                    bonus = (
                        settings.label_weight_mm
                        if (settings.label_identity != "ignore" and o.mask.label and o.mask.label == tr.label)
                        else 0.0
                    )
                    cost[a, b] = dist - settings.overlap_weight_mm * dice - bonus
        rows, cols = linear_sum_assignment(cost)
        for a, b in zip(rows, cols, strict=True):
            if cost[a, b] >= _INFEASIBLE:
                continue
            o, t = keyless[a], open_tracks[b]
            same_label = bool(o.mask.label) and o.mask.label == tracks[t].label
            assign(t, o, "label" if same_label and settings.label_identity != "ignore" else "position")
            matched_obs.add(id(o))

    # 3. leftovers: fragments of a lesion (inside its previous extent) or new lesions
    margin = int(round(settings.containment_margin_mm / settings.evidence_spacing_mm))
    grown = {}

    def grown_fp(t: int) -> np.ndarray:
        if t not in grown:
            grown[t] = _dilate(tracks[t].footprint, margin)
        return grown[t]

    new_obs: list[_Obs] = []
    for o in free:
        if id(o) in matched_obs:
            continue
        host = None
        if o.key is None:
            cover = [
                (_covered(o.footprint, grown_fp(t)), t)
                for t in range(len(tracks))
                if t in assigned and tracks[t].footprint.size
            ]
            cover = [c for c in cover if c[0] >= settings.containment_fraction]
            host = max(cover)[1] if cover else None
        if host is not None:  # step 5 writes the fragment note (the host has two or more masks now)
            assign(host, o, "position")
        else:
            new_obs.append(o)

    # 4. coalescence: one mask covering the previous extent of several lesions
    for t, items in list(assigned.items()):
        if len(items) != 1:
            continue
        o = items[0][0]
        o_grown = _dilate(o.footprint, margin)
        partners = [
            u
            for u in range(len(tracks))
            if u != t
            and u not in assigned
            and tracks[u].volume_mm3 > 0
            and tracks[u].merged_into is None
            and _covered(tracks[u].footprint, o_grown) >= settings.containment_fraction
        ]
        if not partners:
            continue
        group = [t, *partners]
        keeper = max(group, key=lambda u: tracks[u].volume_mm3)  # the merged lesion goes to the larger one
        names = ", ".join(tracks[u].lesion_id for u in group if u != keeper)
        del assigned[t]
        assign(
            keeper,
            o,
            items[0][1] if keeper == t else "position",
            note=f"coalesced: merged with {names}, measured as one (RECIST 1.1)",
        )
        for u in group:
            if u != keeper:
                tracks[u].merged_into = tracks[keeper].lesion_id

    # 5. record measurements and decisions, update track states
    for t, items in sorted(assigned.items()):
        tr = tracks[t]
        masks = [o.mask for o, *_ in items]
        measurement = _measure(tr, masks, exam, patient_id, measure_settings)
        tr.measurements.append(measurement)
        footprint = np.unique(np.concatenate([o.footprint for o, *_ in items]))
        weights = np.array([o.mask.voxel_count for o, *_ in items], dtype=float)
        centroid = np.average(np.stack([o.centroid_ref for o, *_ in items]), axis=0, weights=weights)
        fragment_note = (
            f"fragment: {len(items)} masks of one lesion, long axes summed (RECIST 1.1)"
            if len(items) > 1
            else ""
        )
        for o, method, dist, dice, note in items:
            text = "; ".join(x for x in (fragment_note or note, reg_note) if x)
            decisions.append(
                TrackingMatch(
                    lesion_id=tr.lesion_id,
                    scan_date=exam.scan_date,
                    label=o.mask.label,
                    method=method,
                    distance_mm=dist,
                    dice=dice,
                    note=text,
                )
            )
        tr.centroid_ref, tr.footprint = centroid, footprint
        tr.volume_mm3 = measurement.volume_mm3 or 0.0  # measured from a mask: never None
        tr.merged_into = None  # seen on its own (again)
        if not tr.label:
            tr.label = masks[0].label
    for t, tr in enumerate(tracks):
        if t in assigned:
            continue
        tr.measurements.append(_absent(tr, exam, patient_id))
        if tr.merged_into is not None:
            note = f"coalesced into {tr.merged_into}: measured 0 (RECIST 1.1)"
            method = "position"
        else:
            note, method = "not found at this exam: measured 0", "disappeared"
        decisions.append(
            TrackingMatch(
                lesion_id=tr.lesion_id,
                scan_date=exam.scan_date,
                label="",
                method=method,
                note=f"{note}; {reg_note}",
            )
        )

    for o in new_obs:
        m = o.mask
        lesion_id = m.lesion_id if (m.lesion_id and settings.use_declared_identity) else next_id()
        tr = _Track(
            lesion_id=lesion_id,
            # the declared UID, also for a UID-less mask whose lesion id another file gives a UID
            tracking_uid=m.tracking_uid
            or (o.key[4:] if o.key and o.key.startswith("uid:") else _tracking_uid(patient_id, lesion_id)),
            key=o.key,
            organ=m.organ,
            is_lymph_node=m.is_lymph_node,
            first_seen=exam.scan_date,
            is_new=is_after_baseline,
            label=m.label,
            centroid_ref=o.centroid_ref,
            footprint=o.footprint,
            volume_mm3=0.0,
        )
        measurement = _measure(tr, [m], exam, patient_id, measure_settings)
        tr.measurements.append(measurement)
        tr.volume_mm3 = measurement.volume_mm3 or 0.0  # measured from a mask: never None
        tracks.append(tr)
        why = "new lesion after baseline" if is_after_baseline else "first seen at or before baseline"
        decisions.append(
            TrackingMatch(
                lesion_id=lesion_id,
                scan_date=exam.scan_date,
                label=m.label,
                method=o.key_kind or "new",
                note=f"{why}; {reg_note}",
            )
        )


def tracking_table(courses: Sequence[PatientCourse]):  # -> pandas.DataFrame
    """tracking.csv: one row per identity decision, with its evidence (distance, Dice, note)."""
    import pandas as pd

    rows = [
        {
            "patient_id": c.patient_id,
            "scan_date": d.scan_date,
            "lesion_id": d.lesion_id,
            "label": d.label,
            "method": d.method,
            "distance_mm": d.distance_mm,
            "dice": d.dice,
            "note": d.note,
        }
        for c in courses
        for d in c.tracking
    ]
    return pd.DataFrame(
        rows,
        columns=["patient_id", "scan_date", "lesion_id", "label", "method", "distance_mm", "dice", "note"],
    )
