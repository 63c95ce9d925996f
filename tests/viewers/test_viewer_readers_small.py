"""Fast check with the viewers' readers on a hand-built exam (the slow test does a whole synthetic run).

A 48x48x8 CT (0.7 x 0.7 x 2.5 mm) with an ellipse-shaped lesion, a two-piece (fragmented) lesion and a lesion
measured 0, written as a follow-up (TID 1502 role and order set). OHIF's adapters must hydrate exactly the two
measured lesions as Bidirectionals with our numbers; dcmqi's tid1500reader must give one row per lesion with
the same three columns.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid
from viewer_readers import dcmqi_tool, ohif_hydrate, ohif_missing_reason, tid1500_table

from hpd_imaging.domain import Lesion, LesionMask, LesionMeasurement, MaskSource, TimepointRole
from hpd_imaging.io import load_ct
from hpd_imaging.io.dicom_out import BIDIRECTIONAL_TRACKING_PREFIX, TimePointInfo, write_dicom_outputs
from hpd_imaging.measure import measure_lesion

_spec = importlib.util.spec_from_file_location(
    "io_dicom_writers", Path(__file__).resolve().parents[1] / "io" / "io_dicom_writers.py"
)
assert _spec is not None and _spec.loader is not None
io_dicom_writers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(io_dicom_writers)

SCAN_DATE = dt.date(2023, 6, 1)


@pytest.fixture(scope="module")
def exam(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("viewers_small")
    rng = np.random.default_rng(3)
    positions = [(-20.0, -30.0, 10.0 + 2.5 * k) for k in range(8)]
    files = io_dicom_writers.write_ct_series(
        root / "CT",
        positions,
        lambda n: rng.integers(900, 1100, (48, 48)),
        pixel_spacing=(0.7, 0.7),
    )
    ct = load_ct(files)
    jj, ii = np.mgrid[0:48, 0:48]
    ellipse = np.zeros(ct.geometry.shape, dtype=bool)
    ellipse[2:6] = (((ii - 15) / 9.0) ** 2 + ((jj - 14) / 5.0) ** 2) <= 1.0
    pieces = np.zeros(ct.geometry.shape, dtype=bool)
    pieces[3:5, 30:36, 28:40] = True
    pieces[3:5, 40:44, 30:34] = True
    masks = {
        "A": LesionMask(mask=ellipse, geometry=ct.geometry, label="a", source=MaskSource.SEG),
        "B": LesionMask(mask=pieces, geometry=ct.geometry, label="b", source=MaskSource.SEG),
    }
    meas = [
        LesionMeasurement(**{**measure_lesion(m, lesion_id=k).__dict__, "scan_date": SCAN_DATE})
        for k, m in masks.items()
    ]
    meas.append(
        LesionMeasurement(
            lesion_id="C",
            voxel_count=0,
            volume_mm3=0.0,
            longest_axial_diameter_mm=0.0,
            short_axis_mm=0.0,
            max_3d_diameter_mm=0.0,
            scan_date=SCAN_DATE,
        )
    )
    lesions = [Lesion(k, generate_uid(entropy_srcs=["small", k]), "lung") for k in "ABC"]
    seg_path, sr_path = write_dicom_outputs(
        files,
        ct,
        masks,
        meas,
        lesions,
        root / "out",
        time_point=TimePointInfo(role=TimepointRole.FOLLOW_UP, order=3),
    )
    return {
        "root": root,
        "files": files,
        "meas": {m.lesion_id: m for m in meas},
        "sr": sr_path,
        "seg": seg_path,
    }


def test_fragmented_case_is_real(exam: dict) -> None:
    assert exam["meas"]["B"].is_fragmented and exam["meas"]["A"].voxel_count > 50


@pytest.mark.skipif(ohif_missing_reason() is not None, reason=str(ohif_missing_reason()))
def test_ohif_hydrates_each_measured_lesion_once(exam: dict) -> None:
    result = ohif_hydrate(exam["sr"], exam["files"])
    tools = result["tools"]["Bidirectional"]
    assert set(result["tools"]) == {"Bidirectional"}
    by_uid = {t["trackingUid"]: t for t in tools}
    assert len(by_uid) == len(tools) == 2
    uids = {generate_uid(entropy_srcs=["small", k]): k for k in "AB"}
    assert set(by_uid) == set(uids)
    for uid, lesion_id in uids.items():
        tool, meas = by_uid[uid], exam["meas"][lesion_id]
        assert tool["length"] == pytest.approx(meas.longest_axial_diameter_mm, abs=0.1)
        assert tool["width"] == pytest.approx(meas.short_axis_mm, abs=0.1)
        p = np.asarray(tool["points"], dtype=float)
        # the drawn long axis runs between the measured end points (world coordinates, LPS mm)
        ends = np.asarray(meas.long_axis_endpoints_mm, dtype=float)
        assert np.allclose(p[:2], ends, atol=1e-3) or np.allclose(p[:2], ends[::-1], atol=1e-3)
        if not meas.is_fragmented:
            assert np.linalg.norm(p[3] - p[2]) == pytest.approx(meas.short_axis_mm, abs=0.1)
    assert result["rehydratable"] and all(r["toolType"] == "Bidirectional" for r in result["rehydratable"])
    assert result["warnings"] == [
        "Unable to generate tool state for Error: No spatial coordinates group found."
    ]


@pytest.mark.skipif(
    dcmqi_tool("tid1500reader") is None, reason="dcmqi (PyPI dev dependency) is not installed"
)
def test_tid1500reader_one_row_per_lesion_same_columns(exam: dict) -> None:
    table = tid1500_table(exam["sr"], exam["root"])
    assert [row["TrackingIdentifier"] for row in table] == [
        f"{BIDIRECTIONAL_TRACKING_PREFIX}:{k}" for k in "ABC"
    ]
    for row in table:
        meas = exam["meas"][row["TrackingIdentifier"].rsplit(":", 1)[1]]
        assert row["_n_items"] == 3
        assert row["Long Axis [mm]"] == pytest.approx(meas.longest_axial_diameter_mm, abs=1e-3)
        assert row["Short Axis [mm]"] == pytest.approx(meas.short_axis_mm, abs=1e-3)
        assert row["Volume [mm3]"] == pytest.approx(meas.volume_mm3, rel=1e-6, abs=1e-3)
        assert row["timePoint"] == "2023-06-01"
