"""FRACTIONAL DICOM SEG: a voxel belongs to the lesion when its fraction is AT or above the threshold.

The rule (hpd_imaging/io/seg.py, ``LoaderSettings.fractional_threshold``, default 0.5): the stored value
divided by the SEG's MaximumFractionalValue is compared with ``>=``. The SEGs here are written with
highdicom and a chosen MaximumFractionalValue so that the threshold is exactly representable as a stored
integer (100 of 200 is 0.5; 7 of 10 is 0.7, which is not exact in binary floating point and catches a
float32-vs-float64 comparison); 255 (highdicom's default) cannot hold 0.5, so there 127 is just below and
128 just above. Each stored value fills its own hand-placed 2 x 2 block on slice 1; the expected voxel
count is 4 per block that passes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from io_dicom_writers import write_ct_series

from hpd_imaging.errors import MaskError
from hpd_imaging.io import LoaderSettings, load_ct, read_seg

FOR_UID = "1.2.826.0.1.3680043.8.498.79"
N_K, N_J, N_I = 3, 12, 16


@pytest.fixture
def ct_files(tmp_path: Path) -> list[Path]:
    slices = [np.zeros((N_J, N_I), dtype=np.int16) for _ in range(N_K)]
    return write_ct_series(
        tmp_path / "ct", [(0.0, 0.0, float(k)) for k in range(N_K)], slices, frame_of_reference_uid=FOR_UID
    )


def _write_fractional_seg(path: Path, ct_files: list[Path], stored: list[int], max_value: int) -> Path:
    """One FRACTIONAL segment; ``stored[n]`` fills the 2 x 2 block at columns 3n, 3n+1."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    fractions = np.zeros((N_K, N_J, N_I), dtype=np.float64)
    for n, value in enumerate(stored):
        fractions[1, 2:4, 3 * n : 3 * n + 2] = value / max_value  # highdicom stores round(f * max_value)
    sources = sorted((pydicom.dcmread(f) for f in ct_files), key=lambda d: float(d.ImagePositionPatient[2]))
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=fractions,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="lesion 1",
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Neoplasm,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="test", family=codes.cid7162.ArtificialIntelligence, version="1"
                ),
                tracking_id="Lesion-1",
                tracking_uid=hd.UID(),
            )
        ],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="hpd-imaging tests",
        manufacturer_model_name="synthetic",
        software_versions="0",
        device_serial_number="0",
        max_fractional_value=max_value,
    )
    seg.save_as(path)
    # the file holds exactly the integers meant (so "at the threshold" is what the reader sees)
    written = pydicom.dcmread(path)
    assert int(written.MaximumFractionalValue) == max_value
    assert sorted({int(v) for v in np.unique(written.pixel_array)} - {0}) == sorted(set(stored) - {0})
    return path


def _blocks_kept(mask: np.ndarray, n_blocks: int) -> list[bool]:
    kept = []
    for n in range(n_blocks):
        block = mask[1, 2:4, 3 * n : 3 * n + 2]
        assert block.all() or not block.any()  # a block is kept or dropped as a whole
        kept.append(bool(block.all()))
    return kept


@pytest.mark.parametrize(
    ("max_value", "threshold", "stored", "expected"),
    [
        # default 0.5 with MaximumFractionalValue 200: 99 below, 100 exactly at, 101 above
        (200, None, [99, 100, 101], [False, True, True]),
        # 0.7 of 10: 7 is at the threshold although 0.7 has no exact binary representation
        (10, 0.7, [6, 7, 8], [False, True, True]),
        # 255 cannot hold 0.5: 127/255 = 0.498 is just below, 128/255 = 0.502 just above
        (255, None, [127, 128], [False, True]),
        # the largest threshold allowed, 1.0: only a full voxel
        (255, 1.0, [254, 255], [False, True]),
    ],
    ids=["0.5-of-200", "0.7-of-10", "0.5-of-255", "1.0-of-255"],
)
def test_fractional_value_at_below_and_above_threshold(
    tmp_path: Path,
    ct_files: list[Path],
    max_value: int,
    threshold: float | None,
    stored: list[int],
    expected: list[bool],
) -> None:
    path = _write_fractional_seg(tmp_path / "frac.dcm", ct_files, stored, max_value)
    settings = LoaderSettings() if threshold is None else LoaderSettings(fractional_threshold=threshold)
    (mask,) = read_seg(path, load_ct(ct_files), settings=settings)
    assert _blocks_kept(mask.mask, len(stored)) == expected
    assert mask.voxel_count == 4 * sum(expected)


def test_segment_entirely_below_threshold_is_no_lesion(
    tmp_path: Path, ct_files: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    """99 of 200 everywhere: nothing reaches 0.5, so the file has no lesion to give (not a 4-voxel lesion),
    and the report says which rule dropped it and by how much (0.495 < 0.5), not that the frames were
    empty."""
    path = _write_fractional_seg(tmp_path / "frac.dcm", ct_files, [99], 200)
    with (
        caplog.at_level(logging.WARNING, logger="hpd_imaging.io"),
        pytest.raises(MaskError, match=r"frac\.dcm: expected at least one non-empty segment"),
    ):
        read_seg(path, load_ct(ct_files))
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert (
        "segment 1 (lesion 1): a segment needs at least one voxel on the CT grid; got 0 voxels at or above "
        "fractional_threshold=0.5 (largest fraction 0.495)"
    ) in messages
