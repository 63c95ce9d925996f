"""DICOM SR/SEG of a timepoint where some lesions were not measured (sizes ``None``).

``None`` means "not measured" (e.g. a row imported from a table, no mask): it is neither a size nor 0 mm,
which the SR says with "Presence of property = Absent". So such a lesion gets no measurement group and no
SEG segment, a warning names it and the missing sizes, and every other lesion is written exactly as before
(its own numbers, the same three NUMs in order). Reuses the CT writer and box lesions of test_dicom_out.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.uid import generate_uid
from test_dicom_out import ORIGIN, SCAN_DATE, SHAPE, SPACING, _box_lesion, _by_lesion, write_ct_series

from hpd_imaging.domain import CtImage, ImageGeometry, Lesion, LesionMeasurement, LesionRole
from hpd_imaging.io.dicom_out import SEG_FILENAME, SR_FILENAME, write_dicom_outputs


@pytest.fixture(scope="module")
def ct_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("dicom_out_none")
    geometry = ImageGeometry(shape=SHAPE, spacing_mm=SPACING, origin_mm=ORIGIN)
    hu = np.full(SHAPE, -800, dtype=np.int16)
    study_uid, series_uid, for_uid = (generate_uid(entropy_srcs=["none", x]) for x in ("st", "se", "for"))
    files = write_ct_series(
        root / "CT", hu, geometry, study_uid=study_uid, series_uid=series_uid, for_uid=for_uid
    )
    ct = CtImage(hu=hu, geometry=geometry, frame_of_reference_uid=for_uid, series_instance_uid=series_uid)
    mask, measured = _box_lesion(geometry, slice(2, 5), slice(10, 15), slice(4, 12), "L1", "tumour a", "lung")
    lesions = [
        Lesion(lid, generate_uid(entropy_srcs=["lesion", lid]), "lung", False, LesionRole.TARGET)
        for lid in ("L1", "L2", "L3")
    ]
    return {"root": root, "files": files, "ct": ct, "mask": mask, "measured": measured, "lesions": lesions}


def _not_measured(lesion_id: str, **sizes: float | int | None) -> LesionMeasurement:
    values: dict = {
        "voxel_count": None,
        "volume_mm3": None,
        "longest_axial_diameter_mm": None,
        "short_axis_mm": None,
        "max_3d_diameter_mm": None,
    }
    values.update(sizes)
    return LesionMeasurement(lesion_id=lesion_id, organ="lung", scan_date=SCAN_DATE, **values)


def test_lesions_not_measured_get_no_group_and_no_segment(
    ct_case: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    measured = ct_case["measured"]
    all_none = _not_measured("L2")
    # a table row with a long axis but no short axis / volume / voxels: still not a complete measurement
    partial = _not_measured("L3", longest_axial_diameter_mm=12.0, voxel_count=0, volume_mm3=0.0)
    with caplog.at_level(logging.WARNING, logger="hpd_imaging.io.dicom_out"):
        paths = write_dicom_outputs(
            ct_case["files"],
            ct_case["ct"],
            [ct_case["mask"]],
            [measured, all_none, partial],
            ct_case["lesions"],
            tmp_path,
        )
    assert sorted(p.name for p in paths) == sorted([SEG_FILENAME, SR_FILENAME])
    groups = _by_lesion(tmp_path / SR_FILENAME)
    assert list(groups) == ["L1"]
    values = [x["value"] for x in groups["L1"]["nums"]]
    assert values == pytest.approx(
        [measured.longest_axial_diameter_mm, measured.short_axis_mm, measured.volume_mm3], abs=1e-6
    )
    assert measured.longest_axial_diameter_mm == pytest.approx(7 * 0.8)  # 8 voxels along i, centre to centre
    seg = hd.seg.segread(tmp_path / SEG_FILENAME)
    assert [d.segment_number for d in seg.SegmentSequence] == [1]
    messages = [r.getMessage() for r in caplog.records]
    missing = "voxel_count, longest_axial_diameter_mm, short_axis_mm, volume_mm3"
    assert any(f"lesion L2 on 2021-03-04: {missing} not measured" in m for m in messages)
    assert any("lesion L3 on 2021-03-04: short_axis_mm not measured" in m for m in messages)


@pytest.mark.parametrize("which", ["none-measured", "no-measurement"])
def test_no_group_to_write_means_no_sr(
    ct_case: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    """TID 1500 needs at least one measurement group: with none (nothing measured, or no measurement at all)
    no SR and no SEG are written, and a warning says so, instead of highdicom's ValueError."""
    measurements = [_not_measured("L2")] if which == "none-measured" else []
    with caplog.at_level(logging.WARNING, logger="hpd_imaging.io.dicom_out"):
        paths = write_dicom_outputs(
            ct_case["files"], ct_case["ct"], [], measurements, ct_case["lesions"], tmp_path
        )
    assert paths == []
    assert not (tmp_path / SR_FILENAME).exists() and not (tmp_path / SEG_FILENAME).exists()
    assert any(
        "no lesion measured on this exam; no TID 1500 SR written" in r.getMessage() for r in caplog.records
    )
