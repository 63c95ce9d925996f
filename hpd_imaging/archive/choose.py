"""Choosing the CT series of one exam, with the reason written down.

1. A stack that a segmentation was paired with wins (the annotator drew on it; measuring on another
   reconstruction would misplace the mask). Among several, the one with the most masks, then the rules below.
2. Otherwise the rules of ``ArchiveSettings.choice_rules`` are applied in order; the first rule that separates
   the best candidate from the runner-up is recorded as the reason. Default order:
   ``axial`` (RECIST measures on axial images), ``original_image`` (ImageType ORIGINAL over DERIVED:
   reformats, MIP/MinIP slabs and secondary captures are not the acquired reconstruction),
   ``soft_tissue_kernel`` (soft-tissue over lung/bone reconstruction: sharp kernels inflate noise and
   texture features), ``most_slices`` (coverage / thin reconstruction), ``thinnest_slices``,
   ``lowest_series_number``; the series UID breaks a full tie so the choice is deterministic.

Localizers, non-CT stacks, stacks without orientation and stacks below ``min_slices`` are never candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hpd_imaging.archive.stacks import Stack
from hpd_imaging.settings.archive import ArchiveSettings

# Kernel classes from vendor conventions (DICOM ConvolutionKernel is free text):
# Siemens B/Br/Bf/I/Q + number (<= 45 smooth, >= 50 sharp), Canon/Toshiba FC + number (< 30 body, >= 50
# lung/bone), GE/Philips names. Unknown kernels rank between the two classes.
_SHARP_WORDS = ("LUNG", "BONE", "SHARP", "EDGE", "DETAIL", "HIGH RES", "HIGHRES", "ULTRA")
_SOFT_WORDS = ("SOFT", "STANDARD", "STD", "SMOOTH", "ABDOMEN", "BODY", "MEDIASTIN", "BRAIN")
_SIEMENS = re.compile(r"^(?:BR|BF|BV|BL|HR|QR|B|I|Q|J)(\d{2})")
_CANON = re.compile(r"^FC(\d{2})")

KERNEL_SOFT, KERNEL_UNKNOWN, KERNEL_SHARP = 2, 1, 0
_KERNEL_NAMES = {KERNEL_SOFT: "soft tissue", KERNEL_UNKNOWN: "unclassified", KERNEL_SHARP: "lung/bone"}


def kernel_class(kernel: str) -> int:
    """2 = soft tissue, 1 = unknown, 0 = lung/bone (sharp)."""
    text = kernel.upper().replace("\\", " ").strip()
    if not text:
        return KERNEL_UNKNOWN
    first = text.split()[0]
    for pattern, soft_max, sharp_min in ((_SIEMENS, 45, 50), (_CANON, 29, 50)):
        m = pattern.match(first)
        if m:
            number = int(m.group(1))
            if number <= soft_max:
                return KERNEL_SOFT
            if number >= sharp_min:
                return KERNEL_SHARP
            return KERNEL_UNKNOWN
    if any(w in text for w in _SHARP_WORDS):
        return KERNEL_SHARP
    if any(w in text for w in _SOFT_WORDS):
        return KERNEL_SOFT
    return KERNEL_UNKNOWN


def not_candidate_reason(stack: Stack, settings: ArchiveSettings) -> str:
    """Why a stack can never be the exam's CT volume ('' when it can)."""
    if not stack.is_ct:
        return f"not a CT image stack (modality {stack.modality or 'blank'})"
    if stack.is_localizer:
        return "localizer/scout (ImageType LOCALIZER)"
    if stack.orientation is None:
        return "no ImageOrientationPatient"
    if stack.n_slices < settings.min_slices:
        return f"{stack.n_slices} slice(s), fewer than min_slices={settings.min_slices}"
    return ""


@dataclass(frozen=True)
class _Rule:
    value: Callable[[Stack, ArchiveSettings], float]
    describe: Callable[[Stack, ArchiveSettings], str]


def _thickness(stack: Stack) -> float:
    return stack.slice_thickness if stack.slice_thickness else float("inf")


RULES: dict[str, _Rule] = {
    "axial": _Rule(
        lambda s, st: float(s.is_axial(st.axial_tolerance_deg)),
        lambda s, st: "axial" if s.is_axial(st.axial_tolerance_deg) else "not axial",
    ),
    "original_image": _Rule(
        lambda s, st: float(not s.image_type or s.image_type[0] != "DERIVED"),
        lambda s, st: f"ImageType {s.image_type[0] if s.image_type else '(none)'}",
    ),
    "soft_tissue_kernel": _Rule(
        lambda s, st: float(kernel_class(s.kernel)),
        lambda s, st: f"kernel '{s.kernel}' ({_KERNEL_NAMES[kernel_class(s.kernel)]})",
    ),
    "most_slices": _Rule(lambda s, st: float(s.n_slices), lambda s, st: f"{s.n_slices} slices"),
    "thinnest_slices": _Rule(
        lambda s, st: -_thickness(s),
        lambda s, st: (
            f"slice thickness {s.slice_thickness:g} mm" if s.slice_thickness else "no slice thickness"
        ),
    ),
    "lowest_series_number": _Rule(
        lambda s, st: -float(s.series_number if s.series_number is not None else 1e9),
        lambda s, st: f"series number {s.series_number}",
    ),
}


@dataclass
class Choice:
    chosen: Stack | None
    reason: str
    alternatives: list[Stack]  # the other candidates, best first
    excluded: dict[str, str]  # stack_id -> why it is not a candidate


def choose_ct(stacks: Sequence[Stack], masks_per_stack: dict[str, int], settings: ArchiveSettings) -> Choice:
    """Pick the CT stack of one exam (see the module docstring for the rules)."""
    excluded = {s.stack_id: r for s in stacks if (r := not_candidate_reason(s, settings))}
    candidates = [s for s in stacks if s.stack_id not in excluded]
    if not candidates:
        return Choice(None, "no CT volume in this exam", [], excluded)

    def rank(s: Stack) -> tuple[float, ...]:
        return tuple(RULES[name].value(s, settings) for name in settings.choice_rules)

    def key(s: Stack) -> tuple[object, ...]:
        # negate so that sorted() puts the best first; the stack id breaks a full tie deterministically
        return (-masks_per_stack.get(s.stack_id, 0), *(-v for v in rank(s)), s.stack_id)

    ordered = sorted(candidates, key=key)
    best, rest = ordered[0], ordered[1:]
    n_masks = masks_per_stack.get(best.stack_id, 0)
    if n_masks:
        reason = f"referenced by {n_masks} segmentation(s)"
        if rest and masks_per_stack.get(rest[0].stack_id, 0) == n_masks:
            reason += "; " + _rule_reason(best, rest[0], settings)
        return Choice(best, reason, rest, excluded)
    if not rest:
        return Choice(best, "only CT volume of the exam", rest, excluded)
    return Choice(best, _rule_reason(best, rest[0], settings), rest, excluded)


def _rule_reason(best: Stack, runner_up: Stack, settings: ArchiveSettings) -> str:
    for name in settings.choice_rules:
        rule = RULES[name]
        if rule.value(best, settings) != rule.value(runner_up, settings):
            return (
                f"rule {name}: {rule.describe(best, settings)} vs {rule.describe(runner_up, settings)} "
                f"of {runner_up.stack_id}"
            )
    return f"tie on all rules with {runner_up.stack_id}; first by series UID"
