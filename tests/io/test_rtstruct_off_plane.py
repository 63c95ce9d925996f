"""RTSTRUCT contours that lie between the CT's slice planes: both sides of the slice-assignment rule.

The rule (hpd_imaging/io/rtstruct.py): a contour belongs to the slice nearest its mean position along the
slice normal, so a contour up to half the slice spacing off a plane is assigned to that plane and reported;
a contour 0.6 of a spacing past slice k is 0.4 of a spacing before slice k + 1 and goes there. A contour
exactly midway between two planes has no nearest slice: it is skipped and reported, never put on one of the
two by a rounding convention. The CT here has 2 mm slices at z = 0, 2, 4, 6 and 1 mm pixels from (0, 0), so
a square with edges on half-integers covers a hand-countable number of pixel centres; fractions of the
spacing differ from millimetres.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from io_dicom_writers import square, write_ct_series, write_rtstruct

from hpd_imaging.domain import CtImage
from hpd_imaging.io import load_ct, read_rtstruct

FOR_UID = "1.2.826.0.1.3680043.8.498.78"
N_K, N_J, N_I = 4, 12, 12
SLICE_MM = 2.0


@pytest.fixture
def ct(tmp_path: Path) -> CtImage:
    slices = [np.zeros((N_J, N_I), dtype=np.int16) for _ in range(N_K)]
    files = write_ct_series(
        tmp_path / "ct",
        [(0.0, 0.0, SLICE_MM * k) for k in range(N_K)],
        slices,
        frame_of_reference_uid=FOR_UID,
    )
    return load_ct(files)


def _z(slice_index: float) -> float:
    return SLICE_MM * slice_index


def _read(tmp_path: Path, ct: CtImage, contours: list[np.ndarray], caplog: pytest.LogCaptureFixture):
    path = write_rtstruct(tmp_path / "rs.dcm", FOR_UID, [("GTV liver", contours)])
    with caplog.at_level(logging.WARNING, logger="hpd_imaging.io.rtstruct"):
        (mask,) = read_rtstruct(path, ct)
    return mask


def test_contour_0_4_of_a_slice_off_plane_goes_to_the_nearest_slice(
    tmp_path: Path, ct: CtImage, caplog: pytest.LogCaptureFixture
) -> None:
    contour = square(2.5, 2.5, 4.5, 4.5, _z(1.4))  # 0.8 mm = 0.4 spacing above slice 1; 2 x 2 centres
    mask = _read(tmp_path, ct, [contour], caplog)
    assert [int(mask.mask[k].sum()) for k in range(N_K)] == [0, 4, 0, 0]
    notes = " | ".join(mask.notes)
    assert "1 contour(s) lie between slice planes (up to 0.80 mm off); assigned to the nearest slice" in notes
    assert "0.40 of the 2.00 mm slice spacing" in notes
    # the log names the file, the ROI, the rule and the value
    (record,) = [r for r in caplog.records if "between slice planes" in r.getMessage()]
    message = record.getMessage()
    assert "rs.dcm" in message and "ROI GTV liver" in message and "half the slice spacing" in message


def test_contour_0_6_of_a_slice_off_plane_goes_to_the_next_slice(
    tmp_path: Path, ct: CtImage, caplog: pytest.LogCaptureFixture
) -> None:
    contour = square(2.5, 2.5, 4.5, 4.5, _z(1.6))  # 0.6 spacing above slice 1 = 0.4 below slice 2
    mask = _read(tmp_path, ct, [contour], caplog)
    assert [int(mask.mask[k].sum()) for k in range(N_K)] == [0, 0, 4, 0]
    notes = " | ".join(mask.notes)
    assert "(up to 0.80 mm off); assigned to the nearest slice" in notes
    assert "0.40 of the 2.00 mm slice spacing" in notes


def test_below_the_first_and_beyond_the_last_slice(
    tmp_path: Path, ct: CtImage, caplog: pytest.LogCaptureFixture
) -> None:
    inside_last = square(2.5, 2.5, 4.5, 4.5, _z(3.4))  # 0.4 past the last slice: still nearest to it
    outside_last = square(5.5, 5.5, 7.5, 7.5, _z(3.6))  # 0.6 past it: nearest to a slice that does not exist
    inside_first = square(2.5, 2.5, 4.5, 3.5, _z(-0.4))  # 0.4 below the first slice: 2 x 1 centres
    outside_first = square(5.5, 5.5, 7.5, 7.5, _z(-0.6))
    mask = _read(tmp_path, ct, [inside_last, outside_last, inside_first, outside_first], caplog)
    assert [int(mask.mask[k].sum()) for k in range(N_K)] == [2, 0, 0, 4]
    assert not mask.mask[:, 6:8, 6:8].any()
    notes = " | ".join(mask.notes)
    assert "2 contour(s) at 7.20, -1.20 mm along the normal lie outside the CT volume" in notes


@pytest.mark.parametrize("between", [0.5, 2.5], ids=["slices-0-1", "slices-2-3"])
def test_contour_exactly_midway_between_two_slices_is_skipped_not_rounded(
    tmp_path: Path, ct: CtImage, caplog: pytest.LogCaptureFixture, between: float
) -> None:
    # Python's round() sends 0.5 to 0 but 2.5 to 2 (half to even): a rounding rule would put the first on the
    # slice below and the second on the slice above. Neither is nearer, so both are refused.
    midway = square(2.5, 2.5, 4.5, 4.5, _z(between))
    kept = square(7.5, 7.5, 9.5, 9.5, _z(1.0))  # on slice 1
    mask = _read(tmp_path, ct, [midway, kept], caplog)
    assert [int(mask.mask[k].sum()) for k in range(N_K)] == [0, 4, 0, 0]
    assert not mask.mask[:, 3:5, 3:5].any()
    notes = " | ".join(mask.notes)
    low, high = int(between), int(between) + 1
    assert (
        f"ROI GTV liver: a contour at {_z(between):.2f} mm lies midway between slices {low} and {high} "
        "(0.50 of the 2.00 mm slice spacing from each); the rule assigns a contour to the nearest slice "
        "and there is none; skipped"
    ) in notes
    assert any("rs.dcm" in r.getMessage() and "midway" in r.getMessage() for r in caplog.records)
