"""Settings of lesion tracking (hpd_imaging/tracking/): identity matching and image registration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpd_imaging.settings.base import Section


class TrackingSettings(Section):
    """How lesion identity is carried across timepoints (hpd_imaging/tracking/)."""

    # largest distance (mm, in baseline space after registration) between centroids of one lesion at two scans
    max_match_distance_mm: float = Field(20.0, gt=0)
    # identity from the data when every mask of the patient declares it (tracking UID, then lesion id)
    use_declared_identity: bool = True
    # segment / ROI labels: "evidence" (a bonus of label_weight_mm in the position cost), "trust" (identity,
    # like a tracking UID) or "ignore"; labels are not trusted by default because exports renumber them
    label_identity: Literal["evidence", "trust", "ignore"] = "evidence"
    label_weight_mm: float = Field(2.0, ge=0)
    # register each exam's CT to the reference (baseline) CT before comparing positions
    register_images: bool = True
    # registration runs on images resampled to this isotropic spacing (mm), for speed
    registration_spacing_mm: float = Field(5.0, gt=0)
    registration_iterations: int = Field(100, gt=0)
    registration_sampling_fraction: float = Field(0.05, gt=0, le=1)
    registration_seed: int = 12345
    # a transform moving the image centre by more than this (mm) is refused (registration diverged)
    max_registration_shift_mm: float = Field(60.0, gt=0)
    # cost = centroid distance - overlap_weight_mm * dice (overlap counts as evidence of identity)
    overlap_weight_mm: float = Field(10.0, ge=0)
    # a pair with at least this Dice is admissible even beyond max_match_distance_mm (large growth)
    min_overlap_dice: float = Field(0.1, ge=0, le=1)
    # fraction of a mask (mapped to baseline space) inside a lesion's previous mask that marks a fragment /
    # the fraction of a previous mask covered by a merged mask that marks coalescence
    containment_fraction: float = Field(0.5, gt=0, le=1)
    # cell size (mm) of the grid on which mask footprints are compared in baseline space (Dice, containment)
    evidence_spacing_mm: float = Field(2.0, gt=0)
    # margin (mm) by which a previous mask is grown before testing containment (registration error, growth)
    containment_margin_mm: float = Field(3.0, ge=0)
