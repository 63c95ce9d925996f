"""Fidelity: on pyradiomics' own regression cases (brain1, breast1 with their labels) our in-memory extraction
reproduces pyradiomics' baseline values for the base settings, within the tolerance pyradiomics' own tests
use: relative difference < 3 % (``tests/testUtils.py``, ``assert percentDiff < 0.03``; 0 must stay 0)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from hpd_imaging.domain import CtImage, LesionMask, MaskSource
from hpd_imaging.radiomics import extract_lesion_features, params_from_dict

PYRADIOMICS_TEST_REL_TOL = 0.03
CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
_SETTING_KEYS = ("binWidth", "distances", "voxelArrayShift", "gldm_a", "minimumROIDimensions", "padDistance")


def _baseline(root: Path, cls: str, case: str) -> tuple[dict, dict[str, float]]:
    with open(root / "baseline" / f"baseline_{cls}.csv", newline="") as f:
        rows = {r[0]: r for r in csv.reader(f)}
    col = rows["featureName"].index(case)
    settings = ast.literal_eval(rows["diagnostics_Configuration_Settings"][col])
    values = {k: float(r[col]) for k, r in rows.items() if k.startswith("original_")}
    return settings, values


@pytest.mark.parametrize("case", ["brain1", "breast1"])
def test_reproduces_pyradiomics_baseline(pyradiomics_data: Path, case: str) -> None:
    image = sitk.ReadImage(str(pyradiomics_data / f"{case}_image.nrrd"))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(pyradiomics_data / f"{case}_label.nrrd")))
    ct = CtImage.from_sitk(image, source=case)
    lesion = LesionMask(mask=label == 1, geometry=ct.geometry, label="1", source=MaskSource.LABELMAP)

    baselines = {cls: _baseline(pyradiomics_data, cls, case) for cls in CLASSES}
    settings = baselines["glcm"][0]
    assert settings["binWidth"] == 25 and settings["resampledPixelSpacing"] is None  # the base settings
    for cls, (s, _) in baselines.items():
        for key in _SETTING_KEYS:  # every class's base column was made with the same settings
            assert s.get(key) == settings.get(key), (cls, key)
    params = params_from_dict({
        "imageType": {"Original": {}},
        "featureClass": {cls: None for cls in CLASSES},
        "setting": {k: settings[k] for k in _SETTING_KEYS if settings.get(k) is not None},
    }, source=f"{case} baseline")

    result = extract_lesion_features(ct, [lesion], params, lesion_ids=[case])
    assert result.errors == []
    row = result.features.iloc[0]
    compared, worst = 0, 0.0
    for cls, (_, values) in baselines.items():
        ours = [c for c in result.features.columns if c.startswith(f"original_{cls}_")]
        assert ours, cls
        for name in ours:
            assert name in values, f"{name} has no baseline value"
            ref, got = values[name], float(row[name])
            rel = (0.0 if got == 0 else 1.0) if ref == 0 else abs(1.0 - got / ref)
            assert rel < PYRADIOMICS_TEST_REL_TOL, f"{name}: baseline {ref}, ours {got}"
            worst = max(worst, rel)
            compared += 1
    assert compared == 107  # every active 3D feature of pyradiomics 3.0.1 was checked
    print(f"{case}: {compared} features, largest relative difference {worst:.2e}")
    assert np.isfinite(worst)
