"""The domain's enumerations, the ``Enum | str`` coercion and the size rule every record shares."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TypeVar

import numpy as np


class TimepointRole(StrEnum):
    """Role of an exam relative to the first immune-checkpoint-inhibitor dose (specs/hpd_kinetics.md 0).

    One rule (hpd_imaging/course/roles.py): BASELINE = last scan on or before the ICI start; PRE_BASELINE =
    the scan just before it (the reference period of the kinetics); EARLIER = scans before the pre-baseline
    scan; FOLLOW_UP = every scan after the ICI start (the first of them is the first evaluation).
    """

    EARLIER = "earlier"
    PRE_BASELINE = "pre_baseline"
    BASELINE = "baseline"
    FOLLOW_UP = "follow_up"
    UNASSIGNED = "unassigned"  # roles need the ICI start date; without it exams stay unassigned


class LesionRole(StrEnum):
    """RECIST 1.1 role of a lesion, fixed once at baseline (NEW for lesions first seen after it).

    Besides TARGET / NON_TARGET / NEW, three states say why a lesion takes no part in the assessment:
    NORMAL_NODE (short axis < 10 mm at baseline: not disease), NOT_AT_BASELINE (absent on the baseline scan,
    e.g. seen only before it) and FRAGMENT (a piece of another lesion, summed into its parent).
    """

    TARGET = "target"
    NON_TARGET = "non_target"
    NEW = "new"
    NORMAL_NODE = "normal_node"
    NOT_AT_BASELINE = "not_at_baseline"
    FRAGMENT = "fragment"


class MaskSource(StrEnum):
    """Where a lesion mask came from (column ``mask_source`` of lesions.csv)."""

    SEG = "seg"
    RTSTRUCT = "rtstruct"
    LABELMAP = "labelmap"
    RULER_SR = "ruler_sr"  # a TID 1500 SR of linear measurements (io/rulers.py): measurements, no mask


class HpdLabel(StrEnum):
    """Outcome of one HPD definition for one patient."""

    HPD = "hpd"
    NO_HPD = "no_hpd"
    NOT_EVALUABLE = "not_evaluable"


E = TypeVar("E", bound=StrEnum)


def coerce_enum(enum: type[E], value: E | str, what: str) -> E:
    """``Enum | str`` -> the enum member (as highdicom accepts options); a wrong string names the choices."""
    if isinstance(value, enum):
        return value
    text = str(value).strip()
    for member in enum:  # the value as written, then case-insensitively (values and names alike)
        if text == member.value:
            return member
    for member in enum:
        if text.lower() in (member.value.lower(), member.name.lower()):
            return member
    choices = ", ".join(m.value for m in enum)
    raise ValueError(f"{what}: expected one of {choices}, got {value!r}")


def _optional_size(owner: str, name: str, value: float | None) -> float | None:
    """A size is a finite number >= 0 or None (missing); NaN is refused: it must never pass as a value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{owner}: expected {name} to be a number or None, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{owner}: expected {name} >= 0 and finite (or None when missing), got {value!r}")
    return number


