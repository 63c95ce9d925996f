"""Lesion tracking on a shifted, rotated synthetic body phantom with shuffled labels and no identifiers.

The phantom is defined analytically in a "body" frame; each exam places the body with a known rigid motion
(a few mm and degrees) on its own field of view, so the truth of every mapping and every identity is known.
Scenario over three exams: growth, shrinkage then disappearance, two lesions coalescing, one fragmenting,
a new lesion, a lesion seen by tracking UID, labels renumbered at each exam.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource, Timepoint, TimepointRole
from hpd_imaging.errors import MaskError
from hpd_imaging.measure import lesions_table
from hpd_imaging.settings.tracking import TrackingSettings
from hpd_imaging.tracking import ExamMasks, track_lesions, tracking_table
from hpd_imaging.tracking.registration import register_to_reference

BODY_CENTRE = np.array([0.0, 0.0, 0.0])


def _rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _phantom_hu(q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HU of the body at body-frame points q (..., 3): tapered torso, lungs, spine, liver, kidney."""
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    taper = 1.0 - 0.15 * (z / 80.0)
    body = (x / (135 * taper)) ** 2 + (y / (95 * taper)) ** 2 <= 1
    hu[body] = -100.0  # fat
    hu[body & ((x / (120 * taper)) ** 2 + (y / (82 * taper)) ** 2 <= 1)] = 45.0  # muscle/soft tissue
    for sx in (-1, 1):
        lung = ((x - sx * 55) / 42) ** 2 + ((y + 5) / 55) ** 2 + ((z - 40) / 90) ** 2 <= 1
        hu[lung] = -850.0
    hu[((x + 45) / 55) ** 2 + ((y - 10) / 45) ** 2 + ((z + 70) / 45) ** 2 <= 1] = 65.0  # liver
    hu[((x - 55) / 20) ** 2 + ((y - 45) / 15) ** 2 + ((z + 60) / 25) ** 2 <= 1] = 160.0  # kidney
    hu[(x**2 + (y - 70) ** 2 <= 15**2)] = 400.0  # spine
    hu[((x - 10) ** 2 + (y - 65) ** 2 <= 6**2) & (np.mod(z, 30) < 8)] = 900.0  # vertebral processes
    return hu + rng.normal(0, 10, hu.shape).astype(np.float32)


# lesion shapes per exam in the body frame: name -> list of (centre, semi-axes) pieces (empty = absent)
SCENARIO = {
    "grower": [[((52, -12, 20), (7, 6, 6))], [((52, -12, 20), (9, 8, 8))], [((52, -12, 20), (11, 10, 9))]],
    "shrinker": [[((-58, -2, 50), (6, 6, 5))], [((-58, -2, 50), (4, 4, 4))], []],
    "pair_big": [[((-50, 5, -75), (7, 6, 6))], [((-43, 5, -75), (15, 8, 8))], [((-43, 5, -75), (16, 9, 8))]],
    "pair_small": [[((-34, 5, -75), (5, 5, 5))], [], []],
    "fragmenter": [
        [((60, -20, 60), (10, 8, 8))],
        [((54, -20, 60), (4, 4, 4)), ((66, -20, 60), (4, 4, 4))],
        [((54, -20, 60), (3, 3, 3)), ((66, -20, 60), (3, 3, 3))],
    ],
    "neighbour": [[((52, -12, 0), (5, 5, 5))], [((52, -12, 0), (6, 6, 5))], [((52, -12, 0), (7, 6, 6))]],
    "newcomer": [[], [((-55, -20, 20), (5, 5, 4))], [((-55, -20, 20), (8, 7, 6))]],
}
# fragment and coalescence bookkeeping: which masks exist per exam (fragments are separate masks)
EXAMS = [
    # date, rigid motion (shift mm, rotation deg about z), FOV origin, shape (k, j, i), spacing (i, j, k)
    (dt.date(2024, 1, 10), (0.0, 0.0, 0.0), 0.0, (-144.0, -144.0, -100.0), (50, 96, 96), (3.0, 3.0, 4.0)),
    (dt.date(2024, 3, 20), (9.0, -7.0, 6.0), 2.0, (-150.0, -139.0, -92.0), (46, 100, 94), (3.0, 3.0, 4.0)),
    (dt.date(2024, 5, 30), (-6.0, 8.0, -5.0), -1.5, (-141.0, -147.0, -104.0), (52, 90, 98), (3.2, 3.2, 4.0)),
]


def _exam(n: int, rng: np.random.Generator) -> tuple[ExamMasks, dict[int, str]]:
    date, shift, rot, origin, shape, spacing = EXAMS[n]
    g = ImageGeometry(shape=shape, spacing_mm=spacing, origin_mm=origin)
    k, j, i = np.indices(shape)
    p = g.index_to_lps(np.stack([i, j, k], -1).astype(float))
    r = _rot_z(rot)
    q = (p - np.asarray(shift) - BODY_CENTRE) @ r + BODY_CENTRE  # body frame: q = R^T (p - s)
    hu = _phantom_hu(q, rng)
    pieces = []  # (truth name, mask)
    for name, per_exam in SCENARIO.items():
        for centre, axes in per_exam[n]:
            inside = np.sum(((q - np.asarray(centre)) / np.asarray(axes)) ** 2, -1) <= 1
            hu[inside] = 40.0 + rng.normal(0, 10, int(inside.sum()))
            pieces.append((name, inside))
    if n == 1:  # coalescence: at exam 1 the "pair_big" mask covers both baseline lesions
        pass
    order = rng.permutation(len(pieces))  # labels renumbered at every exam
    masks, truth = [], {}
    for value, idx in enumerate(order, start=1):
        name, inside = pieces[idx]
        masks.append(
            LesionMask(
                mask=inside,
                geometry=g,
                label=f"Lesion {value}",
                source=MaskSource.LABELMAP,
                label_value=value,
                organ="lung",
                source_path=f"exam{n}.nii.gz",
            )
        )
        truth[len(masks) - 1] = name
    ct = CtImage(hu=hu.astype(np.float32), geometry=g, series_instance_uid=f"1.2.3.{n}", source=f"exam{n}")
    role = TimepointRole.BASELINE if n == 0 else TimepointRole.FOLLOW_UP
    return ExamMasks(date, ct, masks, None if n else _timepoint(date, role)), truth


def _timepoint(date: dt.date, role: TimepointRole) -> Timepoint:
    from hpd_imaging.domain import SeriesRef

    ref = SeriesRef("P1", "1.2", "1.2.3.0", "1.2.4", "CT", files=())
    return Timepoint("P1", date, ref, role=role)


@pytest.fixture(scope="module")
def phantom() -> tuple[list[ExamMasks], list[dict[int, str]]]:
    rng = np.random.default_rng(2024)
    made = [_exam(n, rng) for n in range(len(EXAMS))]
    return [m[0] for m in made], [m[1] for m in made]


@pytest.fixture(scope="module")
def course(phantom):
    exams, _ = phantom
    return track_lesions("P1", exams[::-1], TrackingSettings(max_match_distance_mm=15.0))


def test_registration_recovers_the_known_motion(phantom):
    """Exam -> baseline mapping within 1.5 mm of the truth at every lesion position."""
    exams, _ = phantom
    for n in (1, 2):
        _, shift, rot, *_ = EXAMS[n]
        reg = register_to_reference(exams[n].ct, exams[0].ct, TrackingSettings())
        assert reg.method in ("rigid", "affine")
        r = _rot_z(rot)
        for per_exam in SCENARIO.values():
            for centre, _ in per_exam[0]:
                body = np.asarray(centre, dtype=float)
                exam_point = r @ body + np.asarray(shift)  # where the exam sees this body point
                assert np.linalg.norm(reg.map_points(exam_point) - body) < 1.5


def _ids_by_truth(course, phantom) -> dict[str, set[str]]:
    """truth name -> set of lesion ids the tracker gave to its masks (over all exams)."""
    exams, truths = phantom
    out: dict[str, set[str]] = {}
    for exam, truth in zip(exams, truths, strict=True):
        for d in course.tracking:
            if d.scan_date != exam.scan_date or not d.label:
                continue
            idx = next(i for i, m in enumerate(exam.masks) if m.label == d.label)
            out.setdefault(truth[idx], set()).add(d.lesion_id)
    return out


def test_every_lesion_keeps_one_identity(course, phantom):
    ids = _ids_by_truth(course, phantom)
    assert all(len(v) == 1 for v in ids.values()), ids
    one = {name: next(iter(v)) for name, v in ids.items()}
    # distinct lesions have distinct ids
    assert len(set(one.values())) == len(one)
    # baseline lesions are numbered L1.. in baseline mask order, the new one after them
    baseline_order = [phantom[1][0][i] for i in range(len(phantom[0][0].masks))]
    assert [one[name] for name in baseline_order] == [f"L{n}" for n in range(1, 7)]
    assert one["newcomer"] == "L7"


def test_new_disappeared_fragmented_coalesced(course, phantom):
    one = {name: next(iter(v)) for name, v in _ids_by_truth(course, phantom).items()}
    table = lesions_table([course])
    rows = {(r.lesion_id, r.scan_date): r for r in table.itertuples()}
    d0, d1, d2 = (e[0] for e in EXAMS)
    # new lesion: flagged, rows only from its first exam on
    assert rows[(one["newcomer"], d1)].is_new and (one["newcomer"], d0) not in rows
    assert not rows[(one["grower"], d1)].is_new
    # disappeared: measured 0 with voxel_count 0
    gone = rows[(one["shrinker"], d2)]
    assert gone.longest_axial_diameter_mm == 0 and gone.voxel_count == 0 and gone.volume_mm3 == 0
    # fragmented: both pieces measured as one lesion, long axes summed
    frag = rows[(one["fragmenter"], d1)]
    assert frag.is_fragmented and frag.longest_axial_diameter_mm == pytest.approx(2 * 8.0, abs=2 * 1.5)
    # coalesced: merged lesion attributed to the larger baseline lesion, the other measured 0 and flagged
    assert rows[(one["pair_small"], d1)].voxel_count == 0
    assert rows[(one["pair_big"], d1)].longest_axial_diameter_mm == pytest.approx(30.0, abs=2.0)
    notes = {(d.lesion_id, d.scan_date): d for d in course.tracking}
    assert "coalesced into " + one["pair_big"] in notes[(one["pair_small"], d1)].note
    assert "coalesced" in notes[(one["pair_big"], d1)].note
    assert "fragment" in " ".join(d.note for d in course.tracking if d.lesion_id == one["fragmenter"])
    assert notes[(one["shrinker"], d2)].method == "disappeared"
    # one row per lesion per exam from first appearance on: 6 baseline lesions x 3 + new lesion x 2
    assert len(table) == 6 * 3 + 2
    assert set(table.series_uid) == {"1.2.3.0", "1.2.3.1", "1.2.3.2"}
    # the evidence: matched pairs closer than 5 mm after registration, with overlap
    pos = [
        d
        for d in course.tracking
        if d.method in ("position", "label") and "coalesced" not in d.note and "fragment" not in d.note
    ]
    assert pos and all(d.distance_mm < 5 and d.dice > 0.2 for d in pos)
    assert len(tracking_table([course])) == len(course.tracking)


def test_without_registration_the_shift_breaks_tracking(phantom):
    """Control: the same data in scanner coordinates mis-pairs lesions (why registration is needed)."""
    exams, _ = phantom
    course = track_lesions("P1", exams, TrackingSettings(register_images=False, max_match_distance_mm=15.0))
    assert len(course.lesions) != 7


def test_declared_tracking_uids_win(phantom):
    """Tracking UIDs in the data give the identity, whatever the positions and labels."""
    exams, truths = phantom
    tagged = []
    for exam, truth in zip(exams, truths, strict=True):
        masks = [
            LesionMask(
                m.mask,
                m.geometry,
                m.label,
                m.source,
                tracking_uid=f"2.25.{abs(hash(truth[i])) % 10**12}",
                lesion_id=truth[i],
            )
            for i, m in enumerate(exam.masks)
        ]
        tagged.append(exam._replace(masks=masks))
    course = track_lesions("P1", tagged, TrackingSettings(register_images=False))
    ids = {lesion.lesion_id for lesion in course.lesions}
    assert ids == set(SCENARIO)
    later = [d for d in course.tracking if d.scan_date != EXAMS[0][0]]
    assert all(d.method in ("tracking_uid", "disappeared") or "coalesced into" in d.note for d in later)
    assert any("coalesced into pair_big" in d.note for d in later)
    frag = [m for m in course.measurements if m.lesion_id == "fragmenter" and m.scan_date == EXAMS[1][0]]
    assert frag[0].is_fragmented


def _declared(phantom, uid_of) -> list[ExamMasks]:
    """The phantom's masks with their true lesion id declared, and the Tracking UID ``uid_of(n, name)``."""
    exams, truths = phantom
    return [
        exam._replace(
            masks=[
                LesionMask(
                    m.mask,
                    m.geometry,
                    m.label,
                    m.source,
                    tracking_uid=uid_of(n, truth[i]),
                    lesion_id=truth[i],
                )
                for i, m in enumerate(exam.masks)
            ]
        )
        for n, (exam, truth) in enumerate(zip(exams, truths, strict=True))
    ]


def test_a_lesion_id_without_uid_joins_the_uid_another_file_declares(phantom):
    """Baseline SEG with Tracking UIDs, follow-ups (e.g. NIfTI + masks.csv) with the lesion ids only: one
    lesion per id carrying the baseline's UID (keyed apart, each id was two lesions: new + disappeared)."""
    uids = {name: f"2.25.{900 + n}" for n, name in enumerate(SCENARIO)}
    exams = _declared(phantom, lambda n, name: uids[name] if n == 0 else None)
    course = track_lesions("P1", exams, TrackingSettings(register_images=False))
    assert sorted(les.lesion_id for les in course.lesions) == sorted(SCENARIO)
    assert {les.lesion_id: les.tracking_uid for les in course.lesions if les.lesion_id != "newcomer"} == {
        k: v for k, v in uids.items() if k != "newcomer"
    }
    assert not any(les.is_new for les in course.lesions if les.lesion_id != "newcomer")


def test_a_lesion_id_declared_with_two_tracking_uids_is_refused(phantom):
    """Tools that write new UIDs on every export: which UID is the lesion cannot be known -> refused."""
    number = {name: n for n, name in enumerate(SCENARIO)}
    exams = _declared(phantom, lambda n, name: f"2.25.{n if name == 'grower' else 0}{number[name]}")
    with pytest.raises(MaskError, match=r"'grower' is declared with 3 different Tracking UIDs: 2\.25\.00 \("):
        track_lesions("P1", exams, TrackingSettings(register_images=False))
    # the same masks tracked by position instead (the way out the message names)
    by_position = TrackingSettings(use_declared_identity=False, max_match_distance_mm=15.0)
    course = track_lesions("P1", exams, by_position)
    assert len(course.lesions) == 7


def test_mask_off_its_ct_grid_is_refused(phantom):
    exams, _ = phantom
    m = exams[1].masks[0]
    with pytest.raises(MaskError, match="exam1.nii.gz: mask grid differs from its CT"):
        track_lesions(
            "P1",
            [
                exams[0],
                exams[1]._replace(
                    masks=[
                        LesionMask(
                            m.mask[:, :, :90].copy(),
                            ImageGeometry((46, 100, 90), (3.0, 3.0, 4.0), (-150.0, -139.0, -92.0)),
                            m.label,
                            m.source,
                            source_path="exam1.nii.gz",
                        )
                    ]
                ),
            ],
        )
