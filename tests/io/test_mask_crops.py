"""Issue 21: lesion masks are stored as bounding-box crops; each crop equals the whole-grid mask it replaces.

Real data (../shared/data/real, skipped when absent): the dcmqi liver SEG against highdicom's own whole-grid
reading of the same file on the CT's slices, the IBSI STS_025 RTSTRUCT against the IBSI reference NIfTI mask.
Then the crop container itself (LesionMask) and the consumers' lesion-sized arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpd_imaging.domain import ImageGeometry, LesionMask, MaskSource
from hpd_imaging.errors import MaskError
from hpd_imaging.io import load_ct, load_masks, read_seg


def _assert_tight(mask: LesionMask) -> None:
    """Every face of the crop holds a lesion voxel (the crop is the bounding box, not more)."""
    c = mask.crop
    for axis in range(3):
        first = np.take(c, 0, axis=axis)
        last = np.take(c, c.shape[axis] - 1, axis=axis)
        assert first.any() and last.any(), f"axis {axis} of the crop is not tight"


def test_seg_crop_equals_highdicom_whole_grid_on_real_data(real_data: Path) -> None:
    import highdicom as hd

    base = real_data / "dcmqi_ct3_seg_sr" / "data" / "segmentations"
    ct = load_ct(base / "ct-3slice")
    (liver,) = read_seg(base / "liver.dcm", ct)
    seg = hd.seg.segread(base / "liver.dcm")
    uids = [str(u) for u in ct.provenance["sop_instance_uids"]]
    theirs = (
        seg.get_pixels_by_source_instance(
            uids, segment_numbers=[1], combine_segments=False, ignore_spatial_locations=True
        )[..., 0]
        > 0
    )
    assert int(theirs.sum()) == liver.voxel_count == 107_098  # dcmqi's documented count
    np.testing.assert_array_equal(liver.to_full(), theirs)
    _assert_tight(liver)
    assert liver.crop.nbytes < theirs.nbytes  # the crop is smaller than the grid it replaces
    np.testing.assert_array_equal(theirs[liver.box], liver.crop)


def test_rtstruct_crop_equals_reference_nifti_on_real_data(real_data: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    base = real_data / "ibsi_sts"
    ct = load_ct(base / "dicom" / "STS_025" / "CT" / "image")
    (gtv,) = load_masks(base / "dicom" / "STS_025" / "CT" / "mask" / "RS.dcm", ct)
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(base / "nifti" / "STS_025" / "CT_mask.nii.gz"))) > 0
    assert gtv.voxel_count == int(reference.sum()) == 9_655
    np.testing.assert_array_equal(gtv.crop, reference[gtv.box])
    outside = reference.copy()
    outside[gtv.box] = False
    assert not outside.any()  # nothing of the reference lies outside the crop
    _assert_tight(gtv)
    assert gtv.crop.size * 20 < reference.size  # lesion-sized: under 5 % of the grid


GRID = ImageGeometry(shape=(6, 7, 8), spacing_mm=(0.7, 0.8, 2.5), origin_mm=(-3.0, 4.0, 10.0))


def _full() -> np.ndarray:
    full = np.zeros(GRID.shape, dtype=bool)
    full[1, 2, 3] = full[3, 5, 4] = full[2, 2:4, 6] = True
    return full


def test_whole_grid_mask_is_cropped_to_its_bounding_box() -> None:
    full = _full()
    m = LesionMask(full, GRID, "L1", MaskSource.SEG)
    assert m.offset == (1, 2, 3) and m.crop.shape == (3, 4, 4)
    assert m.crop.base is None  # a copy: the whole-grid array is not kept alive by a view
    np.testing.assert_array_equal(m.to_full(), full)
    np.testing.assert_array_equal(m.mask, full)
    np.testing.assert_array_equal(m.voxel_indices(), np.argwhere(full))
    assert m.voxel_count == 4 and m.volume_mm3 == pytest.approx(4 * 0.7 * 0.8 * 2.5)
    grown, start = m.padded((1, 1, 1))
    assert start == (0, 1, 2) and grown.shape == (5, 6, 6)
    np.testing.assert_array_equal(grown, full[0:5, 1:7, 2:8])
    grown, start = m.padded((4, 4, 4))  # clipped to the grid
    assert start == (0, 0, 0) and grown.shape == GRID.shape


def test_crop_and_offset_are_trimmed_and_kept_inside_the_grid() -> None:
    crop = np.zeros((3, 3, 3), dtype=bool)
    crop[1, 1, 1] = True
    m = LesionMask(crop=crop, offset=(3, 4, 5), geometry=GRID, label="x", source=MaskSource.SEG)
    assert m.offset == (4, 5, 6) and m.crop.shape == (1, 1, 1)
    # at the grid's far corner: allowed; one voxel further: refused with the shape and offset
    LesionMask(crop=crop, offset=(3, 4, 5), geometry=GRID, label="edge", source=MaskSource.SEG)
    with pytest.raises(
        MaskError, match=r"expected the crop inside the grid \(6, 7, 8\), got shape \(3, 3, 3\) at"
    ):
        LesionMask(crop=crop, offset=(4, 4, 5), geometry=GRID, label="out", source=MaskSource.SEG)
    with pytest.raises(MaskError, match="either a whole-grid mask or a crop"):
        LesionMask(_full(), GRID, "both", MaskSource.SEG, crop=crop, offset=(0, 0, 0))
    empty = LesionMask(np.zeros(GRID.shape, bool), GRID, "e", MaskSource.SEG)
    assert empty.is_empty and empty.voxel_count == 0 and not empty.to_full().any()


def test_mean_index_is_the_index_array_mean_to_the_last_bit() -> None:
    from hpd_imaging.measure.lesion import _mean_index

    rng = np.random.default_rng(21)
    for _ in range(20):
        crop = rng.random((rng.integers(1, 30), rng.integers(1, 40), rng.integers(1, 50))) < 0.3
        if not crop.any():
            continue
        assert np.array_equal(_mean_index(crop), np.argwhere(crop).mean(axis=0))


def test_footprint_in_chunks_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpd_imaging.domain import CtImage
    from hpd_imaging.tracking import track
    from hpd_imaging.tracking.registration import IDENTITY

    geometry = ImageGeometry(shape=(20, 30, 30), spacing_mm=(0.9, 0.9, 3.0), origin_mm=(0.0, 0.0, 0.0))
    full = np.zeros(geometry.shape, dtype=bool)
    full[3:15, 5:25, 4:20] = True
    m = LesionMask(full, geometry, "L1", MaskSource.SEG)
    ct = CtImage(hu=np.zeros(geometry.shape, np.int16), geometry=geometry)
    whole = track._footprint(m, m.voxel_indices(), IDENTITY, ct, 2.0)
    monkeypatch.setattr(track, "_FOOTPRINT_SAMPLES", 7)  # many small chunks
    np.testing.assert_array_equal(track._footprint(m, m.voxel_indices(), IDENTITY, ct, 2.0), whole)
    assert whole.size > 100
