"""The codes, identifiers and colours that the SEG and the SR share, so that both say the same thing.

* **One finding code** for the SEG segment (SegmentedPropertyCategory/Type) and the SR group (Finding
  Category /
  Finding): (49755003, SCT, "Morphologically Abnormal Structure") / (52988006, SCT, "Lesion").
* **Tracking identifier** ``Cornerstone3DTools@^0.1.0:Bidirectional:<lesion_id>``: OHIF picks the tool that
  rehydrates a measurement group from this text (``MeasurementReport.getAdapterForTrackingIdentifier`` in
  @cornerstonejs/adapters matches the ``Cornerstone3DTools@^0.1.0:Bidirectional`` prefix; older adapters
  split at
  ``:`` and compare the second field), and the lesion id after it keeps the text human-readable in 3D Slicer's
  table. The same text, with the lesion's tracking UID, is written for the lesion at every timepoint, in
  the SEG
  (TrackingID) and in the SR.
* **Colour** per lesion: RecommendedDisplayCIELabValue from a fixed palette indexed by the lesion's
  position in the
  patient's lesion list (the same list at every timepoint), so one lesion keeps its colour over time and
  lesions
  of one patient differ (up to the palette size).
* **Not segmented**: a lesion measured 0 on an exam that had no segmentation at all
  (``run.follow_up_without_mask: no_lesions``) is *assumed* absent, not seen to be gone; its group says so in
  a TEXT item "Comment" (DCM 121106), so a reader does not take it for a confirmed disappearance. No DICOM or
  SNOMED code says "not segmented, assumed absent", and a local coding scheme draws dciodvfy warnings, hence
  text.
* **Time point** (TID 1502): the exam's role (pre-baseline / baseline / follow-up) as Time Point Type from
  CID 6146.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

import highdicom as hd
from pydicom.sr.codedict import codes

from hpd_imaging.domain import Lesion, TimepointRole

logger = logging.getLogger(__name__)

CORNERSTONE_3D_TAG = "Cornerstone3DTools@^0.1.0"
BIDIRECTIONAL_TRACKING_PREFIX = f"{CORNERSTONE_3D_TAG}:Bidirectional"
_MAX_TRACKING_ID_CHARS = 64  # SEG TrackingID is LO

# SNOMED CT 103339001 / 103340004 with the code meanings that OHIF's Bidirectional adapter matches literally
# ("Long Axis", "Short Axis"; pydicom spells them "Long axis", "Short axis"). A code meaning is display text,
# not part of the code's identity, so this spelling is as valid and is what OHIF-written SRs carry.
LONG_AXIS = hd.sr.CodedConcept(value="103339001", scheme_designator="SCT", meaning="Long Axis")
SHORT_AXIS = hd.sr.CodedConcept(value="103340004", scheme_designator="SCT", meaning="Short Axis")

#: TEXT "Comment" (DCM 121106) of a lesion measured 0 on an exam that had no segmentation (module docstring)
NOT_SEGMENTED_COMMENT = (
    "Exam not segmented: lesion assumed absent (0 mm) by setting run.follow_up_without_mask = no_lesions, "
    "not seen to be gone"
)


FINDING_CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
FINDING_TYPE = codes.SCT.Lesion

# Anatomic region per organ (SNOMED CT codes from pydicom's code dictionary, so no code is typed by hand);
# the keys are our lower-case organ names (lesions.csv ``organ``). Unknown organs get no region, not a guess.
ORGAN_CODES: dict[str, hd.sr.CodedConcept] = {
    organ: hd.sr.CodedConcept.from_code(code)
    for organ, code in {
        "lung": codes.SCT.Lung,
        "liver": codes.SCT.Liver,
        "lymph_node": codes.SCT.LymphNode,
        "adrenal": codes.SCT.AdrenalGland,
        "adrenal_gland": codes.SCT.AdrenalGland,
        "bone": codes.SCT.Bone,
        "brain": codes.SCT.Brain,
        "kidney": codes.SCT.Kidney,
        "pleura": codes.SCT.Pleura,
        "spleen": codes.SCT.Spleen,
        "pancreas": codes.SCT.Pancreas,
        "soft_tissue": codes.SCT.SoftTissue,
        "skin": codes.SCT.Skin,
        "breast": codes.SCT.Breast,
        "mediastinum": codes.SCT.Mediastinum,
        "muscle": codes.SCT.SkeletalMuscle,
    }.items()
}

# Twelve well-separated colours (sRGB 0-255: ColorBrewer Set1 without its grey, then Dark2) for lesion
# segments; converted to CIELab by highdicom. Lesion n of a patient gets PALETTE_RGB[n % 12].
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (228, 26, 28),
    (55, 126, 184),
    (77, 175, 74),
    (152, 78, 163),
    (255, 127, 0),
    (255, 255, 51),
    (166, 86, 40),
    (247, 129, 191),
    (27, 158, 119),
    (217, 95, 2),
    (117, 112, 179),
    (102, 166, 30),
)

# CID 6146 "Time Point Types" for our exam roles; UNASSIGNED (no ICI start date) gets no type rather than a
# guess.
TIME_POINT_TYPES: dict[TimepointRole, hd.sr.CodedConcept] = {
    TimepointRole.PRE_BASELINE: hd.sr.CodedConcept.from_code(codes.UMLS.Pretreatment),
    TimepointRole.BASELINE: hd.sr.CodedConcept.from_code(codes.UMLS.Baseline),
    TimepointRole.FOLLOW_UP: hd.sr.CodedConcept.from_code(codes.DCM.Posttreatment),
}


def tracking_identifier_text(lesion: Lesion) -> str:
    """``Cornerstone3DTools@^0.1.0:Bidirectional:<lesion_id>``, within the 64 characters of DICOM LO.

    A lesion_id longer than the 23 characters left is shortened to its first 14 characters, ``~`` and 8 hex
    digits of its SHA-256: the same text at every timepoint, distinct for distinct ids (the full id stays in
    the SEG's SegmentLabel and in lesions.csv; the tracking UID is the identity).
    """
    room = _MAX_TRACKING_ID_CHARS - len(BIDIRECTIONAL_TRACKING_PREFIX) - 1
    lesion_id = lesion.lesion_id
    if len(lesion_id) > room:
        digest = hashlib.sha256(lesion_id.encode()).hexdigest()[:8]
        short = f"{lesion_id[: room - 9]}~{digest}"
        logger.warning(
            "lesion %r: id longer than %d characters; tracking identifier uses %r", lesion_id, room, short
        )
        lesion_id = short
    return f"{BIDIRECTIONAL_TRACKING_PREFIX}:{lesion_id}"


def tracking_identifier(lesion: Lesion) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=lesion.tracking_uid, identifier=tracking_identifier_text(lesion))


def lesion_colour(index: int) -> hd.color.CIELabColor:
    """Recommended display colour of the patient's lesion number ``index`` (0-based position in its list)."""
    return hd.color.CIELabColor.from_rgb(*PALETTE_RGB[index % len(PALETTE_RGB)])


def organ_code(lesion: Lesion) -> hd.sr.CodedConcept | None:
    return ORGAN_CODES.get("lymph_node" if lesion.is_lymph_node else lesion.organ)


@dataclass(frozen=True)
class TimePointInfo:
    """Longitudinal context of one exam (TID 1502): ``order`` is 1 for the first exam of the patient, 2 next.

    ``time_point`` is the Time Point text (default: the ISO scan date); the Subject Time Point Identifier is
    ``T<order>`` so that a reader can line up the SRs of one patient without parsing dates. The TID 1502 "Time
    Point Order" row is *not* written: it is a NUM at group level, which OHIF takes for the measurement's
    first NUM (and then finds no SCOORD) and dcmqi's table lists as a measurement column.
    """

    role: TimepointRole = TimepointRole.UNASSIGNED
    order: int | None = None
    time_point: str | None = None

    def __post_init__(self) -> None:
        if self.order is not None and self.order < 1:
            raise ValueError(f"expected a time point order >= 1, got {self.order}")

    def context(self, scan_date: dt.date) -> hd.sr.TimePointContext:
        return hd.sr.TimePointContext(
            time_point=self.time_point or scan_date.isoformat(),
            time_point_type=TIME_POINT_TYPES.get(self.role),
            subject_time_point_identifier=f"T{self.order}" if self.order is not None else None,
        )
