"""Pixels of one exam: anatomy in its pose, lesions with partial volume, texture, rim and noise.

A lesion is drawn and segmented only when it is "present": it exists at that date (new lesions appear after
the ICI start), its equivalent-sphere diameter is at least ``min_detectable_mm`` (5 mm or 1.5 x the largest
voxel side, whichever is larger) and its CT-grid mask is not empty. The mask is the set of voxels whose centre
lies
inside the smooth shape (an unbiased voxel-count volume estimator); the voxel intensity mixes lesion and
background by the partial-volume fraction (from sub-voxel sampling of boundary voxels).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from hpd_imaging.settings.synth import SynthSettings
from hpd_imaging.synth.anatomy import add_noise, render_anatomy
from hpd_imaging.synth.plan import LesionPlan, PatientPlan
from hpd_imaging.synth.texture import LUNG_RIM_FACTOR, RIM_WIDTH_MM, texture_field

RESCALE_INTERCEPT = -1024.0
STORED_MAX = 4095


@dataclass(frozen=True)
class ExamGrid:
    shape: tuple[int, int, int]  # [k, j, i]
    spacing_mm: tuple[float, float, float]  # (i, j, k)
    origin_mm: tuple[float, float, float]  # LPS of voxel [0, 0, 0]

    @classmethod
    def from_settings(cls, s: SynthSettings) -> ExamGrid:
        px = s.pixel_spacing_mm
        half = s.fov_mm / 2.0
        return cls(
            shape=(s.n_slices, s.matrix, s.matrix),
            spacing_mm=(px, px, s.slice_thickness_mm),
            origin_mm=(-half + px / 2.0, -half + px / 2.0, s.slice_thickness_mm / 2.0),
        )

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing_mm))


@dataclass
class ExamRender:
    date: dt.date
    stored: np.ndarray  # uint16 [k,j,i], HU = stored + RESCALE_INTERCEPT
    masks: dict[str, np.ndarray]  # lesion_id -> bool [k,j,i], only present lesions
    log_volume_ratio: dict[str, float]  # lesion_id -> ln(V/V_ref) for every lesion existing at this date


def min_detectable_mm(grid: ExamGrid) -> float:
    return max(5.0, 1.5 * max(grid.spacing_mm))


def lesion_axes(lesion: LesionPlan, date: dt.date) -> tuple[np.ndarray, float] | None:
    """Semi-axes at ``date`` and ln(V/V_ref), or None when the lesion does not exist yet."""
    if not lesion.growth.is_present(date):
        return None
    L = lesion.growth.log_volume_ratio(date, lesion.v_ref_mm3)
    return lesion.shape.axes_at(L), L


def render_exam(plan: PatientPlan, exam_index: int, settings: SynthSettings, grid: ExamGrid) -> ExamRender:
    date = plan.schedule.scan_dates[exam_index]
    pose = plan.poses[exam_index]
    rng = np.random.default_rng(plan.pixel_seed.spawn(len(plan.schedule.scan_dates))[exam_index])
    hu = render_anatomy(plan.anatomy, pose, grid.shape, grid.spacing_mm, grid.origin_mm)
    spacing = np.array(grid.spacing_mm)
    origin = np.array(grid.origin_mm)
    spacing_kji = (grid.spacing_mm[2], grid.spacing_mm[1], grid.spacing_mm[0])
    tex = plan.texture
    core_r = tex.necrotic_fraction ** (1.0 / 3.0)
    masks: dict[str, np.ndarray] = {}
    log_ratios: dict[str, float] = {}
    d_min = min_detectable_mm(grid)
    for lesion in plan.lesions:
        lesion_rng = np.random.default_rng(rng.integers(2**63))  # one draw per lesion: stable streams
        state = lesion_axes(lesion, date)
        if state is None:
            continue
        axes, L = state
        log_ratios[lesion.lesion_id] = L
        volume = lesion.shape.volume_mm3(axes)
        if (6.0 * volume / math.pi) ** (1.0 / 3.0) < d_min:
            continue
        margin = RIM_WIDTH_MM + 1.0 if tex.rim_hu > 0 else 0.0
        bbox, frac, centres = lesion.shape.fraction_on_grid(
            pose, axes, spacing, origin, grid.shape, margin_mm=margin
        )
        body = pose.scanner_to_body(centres.reshape(-1, 3))
        rn = lesion.shape.normalised_radius(body, axes).reshape(frac.shape)
        inside = rn <= 1.0  # voxel-centre rule: unbiased voxel-count volume
        if not inside.any():
            continue
        mask = np.zeros(grid.shape, bool)
        mask[bbox] = inside
        masks[lesion.lesion_id] = mask
        region = hu[bbox]
        if tex.rim_hu > 0:
            dist = lesion.shape.ray_distance_mm(body, axes).reshape(frac.shape)
            weight = np.clip(1.0 - dist / RIM_WIDTH_MM, 0.0, 1.0) * (dist > 0)
            amp = tex.rim_hu * (LUNG_RIM_FACTOR if lesion.organ == "lung" else 1.0)
            region = region + amp * weight * (1.0 - frac)
        field = texture_field(lesion_rng, frac.shape, tex.corr_len_mm, spacing_kji)
        value = lesion.hu_mm + tex.sd_hu * field
        if core_r > 0:
            core = rn <= core_r
            value = np.where(core, lesion.necrotic_hu + 0.5 * tex.sd_hu * field, value)
        hu[bbox] = (1.0 - frac) * region + frac * value
    hu = add_noise(hu, rng, settings.noise_hu)
    stored = np.clip(np.rint(hu - RESCALE_INTERCEPT), 0, STORED_MAX).astype(np.uint16)
    return ExamRender(date=date, stored=stored, masks=masks, log_volume_ratio=log_ratios)
