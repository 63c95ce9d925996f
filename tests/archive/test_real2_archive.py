"""Archive scan on real2 sets: two CTs of one patient on one date, content-typed files in a mixed folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpd_imaging.archive import scan_archive


def _link(shared_data: Path, rel: str, tmp_path: Path) -> Path:
    data = shared_data / "real2" / rel
    if not data.is_dir():
        pytest.skip(f"real2 data not found at {data}")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "data").symlink_to(data)
    return tmp_path / "study"


def test_two_cts_of_one_patient_on_one_date(shared_data: Path, tmp_path: Path) -> None:
    study = _link(shared_data, "dcmqi_labelmap_oddwidth/data/segmentations", tmp_path)
    archive = scan_archive(study)
    (tp,) = archive.timepoints["123456"]
    # the 24-column CT is chosen: five segmentations point at it; the 23-column CT is an alternative
    assert (tp.ct.columns, tp.ct.rows, tp.ct.n_slices) == (24, 38, 3)
    assert tp.choice_reason == "referenced by 5 segmentation(s)"
    names = sorted(m.path.name for m in tp.masks)
    assert names == [
        "label.nrrd",
        "sparse-labelmap-noppv.dcm",
        "sparse-labelmap-ppv5.dcm",
        "sparse_labelmap_noppv_seg.nrrd",
        "sparse_labelmap_ppv5_seg.nrrd",
    ]
    # the odd-width masks pair with the 23-column CT (by reference / by matrix) and are reported, not lost
    unchosen = sorted(i.path for i in archive.issues if "which was not chosen" in i.message)
    assert unchosen == ["data/23x38x3/nrrd/label.nrrd", "data/23x38x3/seg/label.seg"]


def test_mixed_folder_types_by_content(shared_data: Path, tmp_path: Path) -> None:
    study = _link(shared_data, "qr_syngo_seg/Prototype/TestData", tmp_path)
    archive = scan_archive(study)
    (tp,) = archive.timepoints["99000"]
    kinds = {m.path.name: (m.source.value, m.pairing) for m in tp.masks}
    assert kinds["slicer.seg.dcm"] == ("labelmap", "folder")  # an NRRD named .dcm
    assert kinds["syngo.seg.dcm"] == ("seg", "series_uid")
    assert "CT_volume.nrrd" not in kinds  # the NRRD CT is an image by its voxels
    assert len(kinds) == 6
