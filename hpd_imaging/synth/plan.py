"""Everything random about one synthetic patient, drawn up front (no pixels yet).

Each patient has its own ``numpy.random.SeedSequence([seed, index])`` with independent child streams
(design, texture base, pixels), so a patient does not depend on the others (parallel generation gives the
same archive) and the texture base stream never sees the phenotype (needed for ``signal_strength = 0``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from hpd_imaging.settings.synth import PHENOTYPES, SynthSettings
from hpd_imaging.synth.anatomy import Anatomy, Pose, draw_anatomy
from hpd_imaging.synth.clinical import (
    ClinicalDraw,
    Schedule,
    draw_clinical,
    draw_schedule,
    draw_survival,
    survival_stream,
)
from hpd_imaging.synth.kinetics import NEW_LESION_PROBABILITY, Growth, draw_patient_rates, jitter_rate
from hpd_imaging.synth.lesions import LesionShape
from hpd_imaging.synth.texture import TextureParams, apply_signal, draw_base_texture

logger = logging.getLogger(__name__)

ORGANS: tuple[str, ...] = ("lung", "liver", "lymph_node")
#: equivalent diameter (lung, liver) or short axis (node) at ICI start, mm
SIZE_RANGE_MM = {"lung": (10.0, 28.0), "liver": (14.0, 40.0), "lymph_node": (11.0, 20.0)}
LESION_HU_RANGE = {"lung": (30.0, 50.0), "liver": (45.0, 65.0), "lymph_node": (30.0, 50.0)}
NECROTIC_HU_RANGE = (5.0, 20.0)


@dataclass(frozen=True)
class LesionPlan:
    lesion_id: str
    organ: str
    is_new: bool
    shape: LesionShape
    growth: Growth
    v_ref_mm3: float
    hu_mm: float  # mean lesion HU
    necrotic_hu: float

    @property
    def is_lymph_node(self) -> bool:
        return self.organ == "lymph_node"


@dataclass(frozen=True)
class PatientPlan:
    index: int
    patient_id: str
    phenotype: str
    anatomy: Anatomy
    clinical: ClinicalDraw
    schedule: Schedule
    poses: tuple[Pose, ...]
    lesions: tuple[LesionPlan, ...]
    texture_base: TextureParams
    texture: TextureParams
    pixel_seed: np.random.SeedSequence

    @property
    def latent_risk(self) -> float:
        return self.clinical.latent_risk


def patient_id_for(index: int, n_patients: int) -> str:
    return f"SYN{index + 1:0{max(3, len(str(n_patients)))}d}"


def phenotype_for(settings: SynthSettings, index: int, rng: np.random.Generator) -> str:
    if settings.phenotypes:
        return settings.phenotypes[index % len(settings.phenotypes)]
    p = np.array([settings.phenotype_mix[k] for k in PHENOTYPES])
    return str(PHENOTYPES[int(rng.choice(len(PHENOTYPES), p=p))])


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _draw_shape(rng: np.random.Generator, organ: str, size_mm: float, centre: np.ndarray) -> LesionShape:
    if organ == "lymph_node":
        # short axis in the axial plane, long axis roughly cranio-caudal (tilt <= 20 deg): a meaningful
        # short axis
        half = size_mm / 2.0
        axes = np.array([half, half * rng.uniform(1.0, 1.25), half * rng.uniform(1.4, 1.9)])
        tilt = Rotation.from_rotvec(np.r_[_random_unit(rng, 1)[0, :2], 0.0] * np.deg2rad(rng.uniform(0, 20)))
        spin = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True)
        rot = (tilt * spin).as_matrix()
    else:
        aspect = np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0)])
        axes = size_mm / 2.0 * aspect / np.prod(aspect) ** (1.0 / 3.0)
        rot = Rotation.random(random_state=np.random.default_rng(rng.integers(2**63))).as_matrix()
    n_terms = 3
    amps = rng.uniform(-1.0, 1.0, n_terms)
    amps *= rng.uniform(0.04, 0.15) / np.abs(amps).sum()
    w = 1.0 / 3.0 + rng.uniform(-0.07, 0.07, 3)
    return LesionShape(
        centre_body_mm=np.asarray(centre, float),
        rotation=rot,
        axes_ref_mm=axes,
        growth_weights=w / w.sum(),
        perturb_dirs=_random_unit(rng, n_terms),
        perturb_amps=amps,
        perturb_degrees=tuple(int(x) for x in rng.choice([2, 3], n_terms)),
    )


def _candidate_centre(
    rng: np.random.Generator, anatomy: Anatomy, organ: str, stations: list[int]
) -> np.ndarray:
    if organ == "lymph_node":
        st = anatomy.node_stations()
        k = stations.pop(int(rng.integers(len(stations)))) if stations else int(rng.integers(len(st)))
        return st[k] + rng.normal(0.0, 3.0, 3)
    if organ == "lung":
        c, h = anatomy.lung(int(rng.choice([-1, 1])))
    else:
        c, h = anatomy.liver()
    u = _random_unit(rng, 1)[0] * rng.uniform(0.0, 0.65) ** (1 / 3)
    return c + h * u


def _organ_code(organ: str) -> int:
    return {"lung": 4, "liver": 5, "lymph_node": 3}[organ]


def plan_patient(settings: SynthSettings, index: int) -> PatientPlan:
    """Draw every random quantity of patient ``index`` (deterministic for settings.seed)."""
    ss = np.random.SeedSequence([settings.seed, index])
    design_ss, texture_ss, pixel_ss = ss.spawn(3)
    rng = np.random.default_rng(design_ss)
    phenotype = phenotype_for(settings, index, rng)
    pid = patient_id_for(index, settings.n_patients)
    anatomy = draw_anatomy(rng, settings.scan_length_mm)
    clin = draw_clinical(rng, phenotype)
    sched = draw_schedule(rng, phenotype, settings.n_followups, settings.followup_interval_days)
    sched = draw_survival(
        survival_stream(settings.seed, index),
        phenotype,
        sched,
        median_months=settings.survival_median_months,
        hazard_ratio_hpd=settings.survival_hazard_ratio_hpd,
        followup_months=(settings.survival_followup_min_months, settings.survival_followup_max_months),
    )
    poses = tuple(
        Pose(
            shift_mm=tuple(float(x) for x in rng.uniform(-settings.shift_mm, settings.shift_mm, 3)),
            roll_deg=float(rng.uniform(-settings.rotation_deg, settings.rotation_deg)),
        )
        for _ in sched.scan_dates
    )
    k_pre, k_post, k_late = draw_patient_rates(rng, phenotype)
    switch_days = None
    if k_late is not None:  # pseudoprogression: shrinkage starts 1-3 weeks after the first evaluation
        switch_days = float((sched.scan_dates[2] - sched.ici_start).days + rng.integers(7, 22))

    # which organs and how many baseline lesions (n_metastatic_sites = distinct organs at baseline)
    organs = list(rng.choice(ORGANS, size=clin.n_metastatic_sites, replace=False))
    n_lesions = max(int(rng.integers(settings.min_lesions, settings.max_lesions + 1)), len(organs))
    lesion_organs = organs + [organs[int(rng.integers(len(organs)))] for _ in range(n_lesions - len(organs))]
    specs: list[tuple[str, bool]] = [(str(o), False) for o in lesion_organs]
    if rng.random() < NEW_LESION_PROBABILITY[phenotype]:
        specs += [(str(rng.choice(ORGANS)), True) for _ in range(int(rng.integers(1, 3)))]

    stations = list(range(len(anatomy.node_stations())))
    placed: list[LesionPlan] = []
    extents: list[tuple[np.ndarray, float]] = []
    margin_z = settings.shift_mm * math.sqrt(3) + 8.0
    for organ, is_new in specs:
        for _attempt in range(200):
            centre = _candidate_centre(rng, anatomy, organ, stations)
            if organ != "lymph_node":
                code = anatomy.organ_of(*(np.array([v]) for v in centre))[0]
                if code != _organ_code(organ):
                    continue
            if is_new:
                size = float(rng.uniform(9.0, 16.0))
                appear = sched.ici_start + dt.timedelta(days=int(rng.integers(7, 29)))
                k_new = jitter_rate(rng, max(k_post, 0.3))
                growth = Growth(
                    sched.ici_start,
                    k_new,
                    k_new,
                    None,
                    None,
                    ref_date=sched.scan_dates[2],
                    appear_date=appear,
                )
            else:
                size = float(rng.uniform(*SIZE_RANGE_MM[organ]))
                growth = Growth(
                    sched.ici_start,
                    jitter_rate(rng, k_pre),
                    jitter_rate(rng, k_post),
                    None if k_late is None else jitter_rate(rng, k_late),
                    switch_days,
                )
            shape = _draw_shape(rng, organ, size, centre)
            v_ref = shape.volume_mm3(shape.axes_ref_mm)
            r_max = (
                max(float(shape.axes_at(growth.log_volume_ratio(d, v_ref)).max()) for d in sched.scan_dates)
                * shape.max_radial
            )
            if centre[2] - r_max < margin_z or centre[2] + r_max > settings.scan_length_mm - margin_z:
                continue
            if any(np.linalg.norm(centre - c) < r_max + r + 3.0 for c, r in extents):
                continue
            lo, hi = LESION_HU_RANGE[organ]
            placed.append(
                LesionPlan(
                    lesion_id="",
                    organ=organ,
                    is_new=is_new,
                    shape=shape,
                    growth=growth,
                    v_ref_mm3=v_ref,
                    hu_mm=float(rng.uniform(lo, hi)),
                    necrotic_hu=float(rng.uniform(*NECROTIC_HU_RANGE)),
                )
            )
            extents.append((centre, r_max))
            break
        else:
            logger.debug("%s: no room for a %s lesion after 200 attempts; skipped", pid, organ)
    lesions = tuple(
        LesionPlan(f"L{i + 1:02d}", p.organ, p.is_new, p.shape, p.growth, p.v_ref_mm3, p.hu_mm, p.necrotic_hu)
        for i, p in enumerate(sorted(placed, key=lambda p: p.is_new))
    )
    base = draw_base_texture(np.random.default_rng(texture_ss))
    return PatientPlan(
        index=index,
        patient_id=pid,
        phenotype=phenotype,
        anatomy=anatomy,
        clinical=clin,
        schedule=sched,
        poses=poses,
        lesions=lesions,
        texture_base=base,
        texture=apply_signal(base, clin.latent_risk, settings.signal_strength),
        pixel_seed=pixel_ss,
    )
