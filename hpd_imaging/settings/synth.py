"""Settings of the synthetic archive generator (``hpd-imaging synth``).

Every choice that changes the output is a field here, and the whole model is recorded in
ground_truth.json (``generator.settings``) so that an archive can be regenerated bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hpd_imaging.settings.base import Section

PHENOTYPES: tuple[str, ...] = ("hyperprogressor", "progressor", "stable", "responder", "pseudoprogression")

DEFAULT_PHENOTYPE_MIX: dict[str, float] = {
    "hyperprogressor": 0.15,
    "progressor": 0.25,
    "stable": 0.25,
    "responder": 0.25,
    "pseudoprogression": 0.10,
}


SURVIVAL_FIELDS = (
    "survival_median_months",
    "survival_hazard_ratio_hpd",
    "survival_followup_min_months",
    "survival_followup_max_months",
)


class SynthSettings(Section):
    """What to generate. Defaults: a small chest/upper-abdomen CT, 128x128 in-plane, 5 mm slices."""

    n_patients: int = Field(3, ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    matrix: int = Field(128, ge=32, le=1024, description="in-plane voxels (rows = columns)")
    fov_mm: float = Field(360.0, gt=100.0, le=700.0, description="in-plane field of view; pixel = fov/matrix")
    slice_thickness_mm: float = Field(5.0, gt=0.4, le=10.0)
    scan_length_mm: float = Field(240.0, ge=100.0, le=600.0, description="cranio-caudal extent of each scan")
    mask_format: Literal["seg", "rtstruct", "nifti"] = "seg"
    n_followups: int = Field(2, ge=1, le=12)
    followup_interval_days: int = Field(
        56, ge=14, le=365, description="between on-treatment scans after the first"
    )
    phenotype_mix: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PHENOTYPE_MIX))
    phenotypes: list[str] | None = Field(
        None,
        description="explicit phenotype per patient (cycled); overrides phenotype_mix (sample_dicom)",
    )
    signal_strength: float = Field(
        1.0, ge=0.0, le=5.0, description="0 = imaging independent of the phenotype"
    )
    tracking_ids: bool = Field(True, description="False: omit tracking IDs/UIDs and shuffle label values")
    shift_mm: float = Field(5.0, ge=0.0, le=50.0, description="max |shift| of the patient per axis per exam")
    rotation_deg: float = Field(1.5, ge=0.0, le=10.0, description="max roll about the cranio-caudal axis")
    noise_hu: float = Field(12.0, ge=0.0, le=100.0, description="sd of the image noise")
    min_lesions: int = Field(2, ge=1, le=10)
    max_lesions: int = Field(4, ge=1, le=12)
    compression: Literal["none", "rle", "jpeg2000"] = Field(
        "none", description="transfer syntax of the CT slices (lossless only)"
    )
    workers: int = Field(1, ge=1, le=256, description="processes used to generate patients in parallel")
    # survival (synth/clinical.py docstring): clinical.csv and ground_truth.json only, never the images
    survival_median_months: float = Field(
        default=12.0,
        gt=0.0,
        le=600.0,
        description="median survival after the last scan of non-hyperprogressors",
    )
    survival_hazard_ratio_hpd: float = Field(
        default=3.0, gt=0.0, le=100.0, description="true death hazard ratio of hyperprogressors vs the others"
    )
    survival_followup_min_months: float = Field(default=3.0, ge=0.0, le=600.0)
    survival_followup_max_months: float = Field(
        default=36.0,
        ge=0.0,
        le=600.0,
        description="censoring uniform in [min, max] months after the last scan",
    )

    @field_validator("phenotype_mix")
    @classmethod
    def _check_mix(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(PHENOTYPES))
        if unknown:
            raise ValueError(f"expected phenotypes among {', '.join(PHENOTYPES)}, got {unknown}")
        if any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError(f"expected non-negative weights with a positive sum, got {mix}")
        total = sum(mix.values())
        return {k: float(mix.get(k, 0.0)) / total for k in PHENOTYPES}

    @field_validator("phenotypes")
    @classmethod
    def _check_phenotypes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            bad = [p for p in value if p not in PHENOTYPES]
            if bad or not value:
                raise ValueError(f"expected a non-empty list of {', '.join(PHENOTYPES)}, got {value}")
        return value

    @model_validator(mode="after")
    def _check_lesion_counts(self) -> SynthSettings:
        if self.max_lesions < self.min_lesions:
            raise ValueError(
                f"expected max_lesions >= min_lesions, got {self.max_lesions} < {self.min_lesions}"
            )
        if self.survival_followup_max_months < self.survival_followup_min_months:
            raise ValueError(
                "expected survival_followup_max_months >= survival_followup_min_months, got "
                f"{self.survival_followup_max_months} < {self.survival_followup_min_months}"
            )
        return self

    @property
    def pixel_spacing_mm(self) -> float:
        return self.fov_mm / self.matrix

    @property
    def n_slices(self) -> int:
        return int(round(self.scan_length_mm / self.slice_thickness_mm))

    def content_hash(self) -> str:
        """sha256 of the settings that change image content: part of every UID's entropy.

        Not ``workers`` and not the survival model (which changes clinical.csv and ground_truth.json only), so
        archives made with other survival settings keep their UIDs and pixels.
        """
        payload = self.model_dump(mode="json", exclude={"workers", *SURVIVAL_FIELDS})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def parse_phenotype_mix(text: str) -> dict[str, float]:
    """Parse ``"hyperprogressor=0.15,progressor=0.25"`` (the CLI form) into a dict.

    Raises ValueError with the offending item so the CLI can report it as a usage error.
    """
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"phenotype mix: expected name=weight, got {item!r}")
        try:
            mix[name.strip()] = float(value)
        except ValueError as exc:
            raise ValueError(f"phenotype mix: expected a number for {name.strip()!r}, got {value!r}") from exc
    return mix
