"""Base class for typed, validated settings sections (pydantic).

Unknown keys are refused (``extra="forbid"``) so that a typo in a YAML file fails loudly instead of being
silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

#: one month in days (365.25 / 12), specs/hpd_kinetics.md section 1.3 and Ferté's TGR_calculator.R: the one
#: constant every stage uses for "per month" and "months" (the response stage's ``month_days`` defaults to it)
MONTH_DAYS = 365.25 / 12


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
