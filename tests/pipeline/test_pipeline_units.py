"""Small pure pieces of the pipeline: duplicate-annotation detection, timepoint roles, atomic writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpd_imaging import atomic
from hpd_imaging.domain import ImageGeometry, LesionMask, MaskSource, SeriesRef, Timepoint, TimepointRole
from hpd_imaging.pipeline.patient import assign_roles, duplicate_masks

GEOMETRY = ImageGeometry(shape=(10, 20, 20), spacing_mm=(1.0, 1.0, 2.0), origin_mm=(0.0, 0.0, 0.0))


def _mask(
    box: tuple[slice, ...], source: str, label: str, source_kind: MaskSource = MaskSource.SEG
) -> LesionMask:
    array = np.zeros(GEOMETRY.shape, dtype=bool)
    array[box] = True
    return LesionMask(array, GEOMETRY, label, source_kind, source_path=source)


def test_duplicate_masks_flags_the_same_lesion_in_two_files_only() -> None:
    cube = (slice(2, 6), slice(5, 10), slice(5, 10))
    shifted = (slice(2, 6), slice(5, 10), slice(6, 11))  # 4 of 5 columns shared: Dice 0.8
    far = (slice(2, 6), slice(12, 16), slice(12, 16))
    masks = [
        _mask(cube, "a/RS.dcm", "GTV", MaskSource.RTSTRUCT),
        _mask(cube, "b/labels.nii.gz", "1", MaskSource.LABELMAP),
        _mask(shifted, "a/RS.dcm", "GTV2", MaskSource.RTSTRUCT),  # same file as mask 0: never flagged
        _mask(far, "b/labels.nii.gz", "2", MaskSource.LABELMAP),
    ]
    found = duplicate_masks(masks)
    assert [(i, j) for i, j, _ in found] == [(0, 1), (1, 2)]
    assert found[0][2] == pytest.approx(1.0)
    assert found[1][2] == pytest.approx(0.8)
    assert duplicate_masks(masks, threshold=0.9) == [(0, 1, pytest.approx(1.0))]


def test_assign_roles_follows_the_ici_start() -> None:
    ref = SeriesRef.__new__(SeriesRef)  # roles only look at dates
    dates = [dt.date(2022, 1, 1), dt.date(2022, 2, 1), dt.date(2022, 4, 1)]
    tps = [Timepoint("P", d, ref) for d in reversed(dates)]
    roles = [t.role for t in assign_roles(tps, dt.date(2022, 2, 1))]
    assert roles == [TimepointRole.PRE_BASELINE, TimepointRole.BASELINE, TimepointRole.FOLLOW_UP]
    assert [t.role for t in assign_roles(tps, None)] == [TimepointRole.UNASSIGNED] * 3
    assert [t.role for t in assign_roles(tps, dt.date(2021, 1, 1))] == [TimepointRole.FOLLOW_UP] * 3


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    atomic.write_csv(target, pd.DataFrame({"a": [1.0, 2.5]}))
    before = target.read_bytes()
    assert before == b"a\n1\n2.5\n"

    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic.write_with(target, boom)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_repeated_labels_of_one_exam_become_unique_and_keep_their_own_lesion() -> None:
    """Two SEG segments both called "Tumor" and a label map's "1" beside an ROI named "1": each mask keeps its
    own lesion through tracking (keyed by label, the repeats mapped one lesion's features onto the other)."""
    import datetime as dt

    from hpd_imaging.domain import CtImage
    from hpd_imaging.pipeline.patient import _label_to_lesion_id, unique_labels
    from hpd_imaging.settings.tracking import TrackingSettings
    from hpd_imaging.tracking import ExamMasks, track_lesions

    masks = [
        _mask((slice(1, 3), slice(1, 4), slice(1, 4)), "a/seg.dcm", "Tumor"),
        _mask((slice(5, 8), slice(12, 16), slice(12, 16)), "a/seg.dcm", "Tumor"),
        _mask((slice(2, 6), slice(5, 10), slice(5, 10)), "b/labels.nii.gz", "1", MaskSource.LABELMAP),
        _mask((slice(2, 6), slice(14, 18), slice(2, 6)), "c/RS.dcm", "1", MaskSource.RTSTRUCT),
        _mask((slice(7, 9), slice(1, 3), slice(15, 18)), "c/RS.dcm", "GTV", MaskSource.RTSTRUCT),
    ]
    named = unique_labels(masks)
    assert [m.label for m in named] == [
        "Tumor #1 (seg.dcm)",
        "Tumor #2 (seg.dcm)",
        "1 #1 (labels.nii.gz)",
        "1 #2 (RS.dcm)",
        "GTV",
    ]
    assert all(a.crop is b.crop for a, b in zip(masks, named, strict=True))  # only the names change
    ct = CtImage(hu=np.zeros(GEOMETRY.shape, dtype=np.int16), geometry=GEOMETRY)
    date = dt.date(2024, 1, 1)
    settings = TrackingSettings(register_images=False)
    course = track_lesions("P1", [ExamMasks(date, ct, named, None)], settings)
    ids = _label_to_lesion_id(course)
    assert len(ids) == 5 and len(set(ids.values())) == 5
    # without unique labels, 5 masks give 5 lesions but only 3 (date, label) keys: lost attributions
    assert len(_label_to_lesion_id(track_lesions("P1", [ExamMasks(date, ct, masks, None)], settings))) == 3
