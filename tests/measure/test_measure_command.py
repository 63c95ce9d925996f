"""`hpd-imaging measure CT MASK [--json]` end to end (loaders from hpd_imaging.io)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from measure_phantoms import ellipsoid
from typer.testing import CliRunner

from hpd_imaging.cli import app
from hpd_imaging.commands.measure import MEASURE_FIELDS
from hpd_imaging.measure import measure_lesion

runner = CliRunner()


def _write_nifti(array: np.ndarray, geometry, path) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array)
    geometry.apply_to_sitk(image)
    sitk.WriteImage(image, str(path))


@pytest.fixture(scope="module")
def nifti_study(tmp_path_factory):
    """A CT and a two-label label map (labels 1 and 3) on the same 0.7 x 0.7 x 1.25 mm grid."""
    out = tmp_path_factory.mktemp("study")
    a = ellipsoid((12.0, 8.0, 6.0), (0.7, 0.7, 1.25), angles_deg=(0.0, 0.0, 25.0), margin_vox=30)
    g = a.mask.geometry
    labels = a.mask.mask.astype(np.uint8)
    b = np.zeros(g.shape, dtype=bool)
    b[2:6, 3:9, 3:12] = True  # a 6 x 9-voxel box in a corner, away from the ellipsoid
    assert not (b & a.mask.mask).any()
    labels[b] = 3
    ct = np.where(labels > 0, 40, -800).astype(np.int16)
    _write_nifti(ct, g, out / "ct.nii.gz")
    _write_nifti(labels, g, out / "labels.nii.gz")
    return out, a, b


def test_json_lists_every_field_with_the_library_values(nifti_study):
    out, a, box = nifti_study
    result = runner.invoke(app, ["measure", str(out / "ct.nii.gz"), str(out / "labels.nii.gz"), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [list(r) for r in records] == [list(MEASURE_FIELDS)] * 2
    by_count = {r["voxel_count"]: r for r in records}
    assert set(by_count) == {int(a.mask.mask.sum()), int(box.sum())}
    expected = measure_lesion(a.mask)
    got = by_count[expected.voxel_count]
    for name in (
        "volume_mm3",
        "mesh_volume_mm3",
        "longest_axial_diameter_mm",
        "short_axis_mm",
        "max_3d_diameter_mm",
        "surface_area_mm2",
        "sphericity",
    ):
        assert got[name] == pytest.approx(getattr(expected, name), rel=1e-6), name  # NIfTI float32 spacing
    assert abs(got["longest_axial_diameter_mm"] - a.recist_long_mm) <= 1.0
    box_record = by_count[int(box.sum())]
    # the box is 9 x 6 voxels of 0.7 mm in plane: outline chord through edge midpoints, 4 slices of 1.25 mm
    assert box_record["volume_mm3"] == pytest.approx(box.sum() * 0.7 * 0.7 * 1.25)
    assert box_record["longest_axial_diameter_mm"] == pytest.approx(np.hypot(8.5 * 0.7, 5.0 * 0.7), abs=0.5)


def test_table_output(nifti_study):
    out, _, _ = nifti_study
    result = runner.invoke(app, ["measure", str(out / "ct.nii.gz"), str(out / "labels.nii.gz")])
    assert result.exit_code == 0, result.output
    assert "longest_axial_diameter_mm" in result.stdout and "2 lesion(s)" in result.stdout


def test_unusable_input_exits_2_with_a_clear_message(nifti_study, tmp_path):
    out, _, _ = nifti_study
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not an image")
    result = runner.invoke(app, ["measure", str(out / "ct.nii.gz"), str(bogus)])
    assert result.exit_code == 2
    assert "notes.txt" in result.output and "error:" in result.output
    missing = runner.invoke(app, ["measure", str(out / "ct.nii.gz"), str(tmp_path / "absent.dcm")])
    assert missing.exit_code == 2


def test_empty_label_map_exits_2(nifti_study, tmp_path):
    import SimpleITK as sitk  # noqa: N813

    out, _, _ = nifti_study
    labels = sitk.ReadImage(str(out / "labels.nii.gz"))
    empty = sitk.GetImageFromArray(np.zeros(sitk.GetArrayFromImage(labels).shape, dtype=np.uint8))
    empty.CopyInformation(labels)
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    result = runner.invoke(app, ["measure", str(out / "ct.nii.gz"), str(tmp_path / "empty.nii.gz")])
    assert result.exit_code == 2
    assert "empty.nii.gz" in result.output


def test_ibsi_sarcoma_rtstruct_volume_equals_reference_mask(real_data):
    """RTSTRUCT read by the loaders, measured: voxel_count x voxel volume equals the IBSI reference mask's."""
    import SimpleITK as sitk  # noqa: N813

    case = real_data / "ibsi_sts" / "dicom" / "STS_001" / "CT"
    reference = real_data / "ibsi_sts" / "nifti" / "STS_001" / "CT_mask.nii.gz"
    rtstruct = next((case / "mask").glob("*.dcm"), None)
    if rtstruct is None or not reference.exists():
        pytest.skip(f"IBSI STS_001 RTSTRUCT or reference mask missing under {real_data / 'ibsi_sts'}")
    ref = sitk.ReadImage(str(reference))
    ref_voxels = int(np.count_nonzero(sitk.GetArrayFromImage(ref)))
    assert ref_voxels == 117_145
    result = runner.invoke(app, ["measure", str(case / "image"), str(rtstruct), "--json"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["voxel_count"] == ref_voxels
    # same voxels; the volumes agree to the NIfTI header's float32 spacing (~1e-7 relative)
    assert record["volume_mm3"] == pytest.approx(ref_voxels * float(np.prod(ref.GetSpacing())), rel=1e-6)
