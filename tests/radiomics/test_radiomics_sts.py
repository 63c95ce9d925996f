"""IBSI sarcoma STS_025: our extraction on the loaded CT + mask equals pyradiomics run directly on the
reference NIfTI image and mask with the same settings, both from the NIfTI files and from the DICOM series +
RTSTRUCT."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk  # noqa: N813

from hpd_imaging.domain import CtImage, LesionMask, MaskSource
from hpd_imaging.radiomics import extract_lesion_features, params_from_dict, plain_pyradiomics

PARAMS = params_from_dict({"imageType": {"Original": {}}, "setting": {"binWidth": 25}}, source="default")


@pytest.fixture(scope="module")
def reference(sts_data: Path) -> dict[str, float]:
    root = sts_data / "nifti" / "STS_025"
    out = plain_pyradiomics(sitk.ReadImage(str(root / "CT_image.nii.gz")),
                            sitk.ReadImage(str(root / "CT_mask.nii.gz")), PARAMS)
    return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def _compare(features, reference: dict[str, float], rel: float) -> None:
    row = features.iloc[0]
    assert len(reference) == 107
    for name, value in reference.items():
        assert float(row[name]) == pytest.approx(value, rel=rel, abs=1e-12), name


def test_nifti_in_memory_equals_pyradiomics(sts_data: Path, reference: dict[str, float]) -> None:
    root = sts_data / "nifti" / "STS_025"
    ct = CtImage.from_sitk(sitk.ReadImage(str(root / "CT_image.nii.gz")))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "CT_mask.nii.gz"))) == 1
    lesion = LesionMask(mask=mask, geometry=ct.geometry, label="GTV", source=MaskSource.LABELMAP)
    result = extract_lesion_features(ct, [lesion], PARAMS, patient_id="STS_025")
    assert result.errors == []
    _compare(result.features, reference, rel=1e-9)


def test_dicom_rtstruct_equals_pyradiomics_on_nifti(sts_data: Path, reference: dict[str, float]) -> None:
    from hpd_imaging.io import load_ct, load_masks

    ct = load_ct(sts_data / "dicom" / "STS_025" / "CT" / "image")
    masks = load_masks(sts_data / "dicom" / "STS_025" / "CT" / "mask" / "RS.dcm", ct)
    assert len(masks) == 1 and masks[0].voxel_count == 9655
    result = extract_lesion_features(ct, masks, PARAMS, patient_id="STS_025")
    assert result.errors == []
    # DICOM spacing is 0.976562 mm, the NIfTI stores it as float32 (0.97656202...): 4e-8 relative differences
    _compare(result.features, reference, rel=1e-6)
