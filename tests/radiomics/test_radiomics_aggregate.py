"""Patient-level aggregation rules, checked on hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpd_imaging.errors import ClinicalDataError
from hpd_imaging.radiomics.aggregate import aggregate_patient


def _features() -> pd.DataFrame:
    rows = [
        # patient, lesion, region, feature a, feature b
        ("P1", "L1", "lesion", 10.0, 1.0),
        ("P1", "L1", "ring5mm", 100.0, 5.0),
        ("P1", "L2", "lesion", 20.0, np.nan),
        ("P1", "L2", "ring5mm", 200.0, 7.0),
        ("P1", "N1", "lesion", 99.0, 99.0),  # new lesion: not a target
        ("P2", "A", "lesion", 3.0, 4.0),
    ]
    f = pd.DataFrame(rows, columns=["patient_id", "lesion_id", "region", "original_x_A", "original_x_B"])
    f["params_sha256"] = "abc"
    return f


def _lesions() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["P1", "P1", "P1", "P1", "P2"],
        "lesion_id": ["L1", "L2", "N1", "F1", "A"],  # F1: extraction failed (no feature row)
        "volume_mm3": [1000.0, 3000.0, 50000.0, 9000.0, 10.0],
        "is_new": [False, False, True, False, False],
    })


def test_rules_on_hand_computed_numbers() -> None:
    out = aggregate_patient(_features(), _lesions()).set_index("patient_id")
    p1 = out.loc["P1"]
    assert p1["n_lesions"] == 4 and p1["n_target_lesions"] == 3 and p1["n_lesions_with_features"] == 3
    assert p1["total_volume_mm3"] == 63000.0
    # largest target lesion WITH features is L2 (F1 is larger but failed; N1 is new)
    assert p1["largest_lesion_id"] == "L2"
    assert p1["largest_original_x_A"] == 20.0 and p1["largest_ring5mm_original_x_A"] == 200.0
    assert p1["vwmean_original_x_A"] == pytest.approx((1000 * 10 + 3000 * 20) / 4000)
    assert p1["vwmean_ring5mm_original_x_A"] == pytest.approx((1000 * 100 + 3000 * 200) / 4000)
    assert p1["vwmean_original_x_B"] == pytest.approx(1.0)  # NaN of L2 left out, weights renormalised
    assert p1["vwmean_ring5mm_original_x_B"] == pytest.approx((1000 * 5 + 3000 * 7) / 4000)
    assert out.loc["P2", "largest_original_x_B"] == 4.0 and out.loc["P2", "n_lesions"] == 1
    assert "largest_params_sha256" not in out


def test_explicit_target_flag_wins() -> None:
    lesions = _lesions().assign(is_target=[True, False, False, False, True])
    p1 = aggregate_patient(_features(), lesions).set_index("patient_id").loc["P1"]
    assert p1["largest_lesion_id"] == "L1" and p1["vwmean_original_x_A"] == 10.0


def test_without_lesions_table_uses_voxel_volume() -> None:
    f = _features()
    f["original_shape_VoxelVolume"] = [1.0, 0.0, 3.0, 0.0, 6.0, 2.0]
    p1 = aggregate_patient(f, None).set_index("patient_id").loc["P1"]
    assert p1["largest_lesion_id"] == "N1"
    assert p1["vwmean_original_x_A"] == pytest.approx((1 * 10 + 3 * 20 + 6 * 99) / 10)


def test_ambiguous_lesions_table_is_refused() -> None:
    lesions = pd.concat([_lesions(), _lesions()])
    with pytest.raises(ClinicalDataError, match=r"expected one row per \['patient_id', 'lesion_id'\]"):
        aggregate_patient(_features(), lesions)
    with pytest.raises(ClinicalDataError, match=r"expected columns \['volume_mm3'\]"):
        aggregate_patient(_features(), _lesions().drop(columns="volume_mm3"))
