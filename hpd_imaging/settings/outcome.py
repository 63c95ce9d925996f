"""Settings of the outcome stage (a section of the pipeline config)."""

from __future__ import annotations

from pydantic import Field

from hpd_imaging.settings.base import Section


class OutcomeSettings(Section):
    # RECIST 1.1 section 4.4: confirmation of CR/PR is required in non-randomised trials whose primary end
    # point is response, not in randomised trials (the default here); intervals are protocol choices
    confirmation_required: bool = False
    confirmation_days: int = Field(
        default=28, ge=1, le=365, description="CR/PR confirmed by a scan >= this later"
    )
    sd_min_days: int = Field(
        default=42, ge=0, le=365, description="SD counts as best response from this day on"
    )
    # mixed response (outcome/lesion_kinetics.py): a new lesion counts as a growing one
    new_lesions_count_as_growing: bool = True
