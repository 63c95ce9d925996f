"""Base class for typed, validated settings sections (pydantic).

Unknown keys are refused (``extra="forbid"``) so that a typo in a YAML file fails loudly instead of being
silently ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
