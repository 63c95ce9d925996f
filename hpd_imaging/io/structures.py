"""Which structures of a segmentation file are lesions, and why.

A planning-system RTSTRUCT holds the body outline, organs at risk, markers and the target volumes; a Slicer
segmentation holds named anatomy next to a tumour. Only lesions enter tracking, measurement and radiomics
(radiomics of a 6.9-litre BODY took a run to 11 GB). The rules, first that decides wins, each configurable in
:class:`~hpd_imaging.settings.io.LoaderSettings`:

1. RTSTRUCT ``RTROIInterpretedType`` (PS3.3 C.8.8.8.1): GTV, CTV (and ITV) are lesions; EXTERNAL, ORGAN,
   AVOIDANCE, MARKER, PTV, BOLUS, SUPPORT, ... are not;
2. SEG / Slicer terminology: segmented property category "Morphologically abnormal structure" (SCT 49755003)
   is a lesion; "Anatomical structure", "Body substance", "Physical object", "Device", "Spatial and relational
   concept" (the Label Map SEG's "Background") are not; "Tissue" and others fall through;
3. name patterns (ROI name, segment label, property type meaning): ``lesion_name_pattern`` (gtv, lesion,
   tumour, met, node, ...) then ``non_lesion_name_pattern`` (body, external, couch, PTV, ...);
4. otherwise ``unclassified_structures`` (default: lesion, as a lesion-only annotation tool writes them).

The decision and its reason are recorded on the mask (``is_lesion``, ``lesion_rule``) and written to
lesions.csv / the archive's series table; ``measure`` reports every structure with its type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from hpd_imaging.domain import LesionMask
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def normalise_name(name: str) -> str:
    """Lower case, every run of non-letters one space ('GTV_Mass_CT' -> 'gtv mass ct', 'Met1' -> 'met')."""
    return " ".join(re.sub(r"[^a-z]+", " ", name.lower()).split())


def classify_structure(
    *,
    name: str,
    rt_roi_type: str = "",
    category_code: str = "",
    category_meaning: str = "",
    property_meaning: str = "",
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
) -> tuple[bool, str]:
    """(is_lesion, reason) of one ROI / segment / label by the rules of the module docstring."""
    rt_type = rt_roi_type.strip().upper()
    if rt_type:
        if rt_type in {t.upper() for t in settings.lesion_rt_roi_types}:
            return True, f"RT ROI Interpreted Type {rt_type} is a lesion type"
        if rt_type in {t.upper() for t in settings.non_lesion_rt_roi_types}:
            return False, f"RT ROI Interpreted Type {rt_type} is not a lesion type"
    code = category_code.strip()
    if code:
        label = f"{category_meaning or '?'} ({code})"
        if code in settings.lesion_category_codes:
            return True, f"segmented property category {label} is a lesion category"
        if code in settings.non_lesion_category_codes:
            return False, f"segmented property category {label} is not a lesion category"
    for text in (name, property_meaning):
        words = normalise_name(text)
        if words and _compiled(settings.lesion_name_pattern).search(words):
            return True, f"name {text!r} matches the lesion name pattern"
    for text in (name, property_meaning):
        words = normalise_name(text)
        if words and _compiled(settings.non_lesion_name_pattern).search(words):
            return False, f"name {text!r} matches the non-lesion name pattern"
    what = "no type or category" if not (rt_type or code) else f"type {rt_type or code} decides nothing"
    if settings.unclassified_structures == "lesion":
        return True, f"{what}, name {name!r} matches no pattern: kept as lesion (unclassified_structures)"
    return False, f"{what}, name {name!r} matches no pattern: not a lesion (unclassified_structures)"


def classified(
    mask: LesionMask, settings: LoaderSettings = DEFAULT_LOADER_SETTINGS, **evidence: str
) -> LesionMask:
    """``mask`` with ``is_lesion`` / ``lesion_rule`` set from ``evidence`` (:func:`classify_structure`)."""
    is_lesion, reason = classify_structure(name=mask.label, settings=settings, **evidence)
    return replace(mask, is_lesion=is_lesion, lesion_rule=reason)


def lesions_only(masks: list[LesionMask]) -> list[LesionMask]:
    """The masks the rules count as lesions (what ``run`` tracks, measures and gives to radiomics)."""
    return [m for m in masks if m.is_lesion]


@dataclass(frozen=True)
class StructureProblem:
    """A structure that cannot become a lesion mask (degenerate ROI, zero-voxel segment): one error row.

    Readers append these to the ``problems`` list they are given (the pipeline turns each into an errors.csv
    row naming the file, the structure, the rule and the value) instead of measuring the lesion as 0.
    """

    path: str
    structure: str
    rule: str
    value: str
    is_lesion: bool = True

    @property
    def message(self) -> str:
        return f"{self.path}: {self.structure}: {self.rule}; got {self.value}"


def report_problem(problems: list[StructureProblem] | None, problem: StructureProblem, log: object) -> None:
    """Append ``problem`` to ``problems`` when the caller collects them; log it as a warning either way."""
    getattr(log, "warning")("%s", problem.message)  # noqa: B009 - any logger-like object
    if problems is not None:
        problems.append(problem)
