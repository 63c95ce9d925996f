"""Edges of withholding labels (issue 16) met by issue 15's ruler measurements: a ruler-measured baseline
lesion has no voxels but a diameter, so it is measured; and when every patient is withheld the cohort tables
are still written (a traceback here once ended a run with exit 1 and no errors.csv)."""

from __future__ import annotations

import pandas as pd

from hpd_imaging.pipeline.identity import unmeasured_baseline_lesions
from hpd_imaging.response.concordance import concordance_table


def _lesions(voxels: object, diameter: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "patient_id": "P1",
                "scan_date": "2024-01-01",
                "lesion_id": "L1",
                "label": "liver-1",
                "voxel_count": voxels,
                "longest_axial_diameter_mm": diameter,
            }
        ]
    )


def test_a_ruler_measurement_without_voxels_is_measured_but_zero_voxels_is_not() -> None:
    base = {"P1": "2024-01-01"}
    assert unmeasured_baseline_lesions(_lesions(None, 20.0), base) == []
    assert unmeasured_baseline_lesions(_lesions("", 20.0), base) == []
    (row,) = unmeasured_baseline_lesions(_lesions(0, 20.0), base)
    assert row["rule"] == "baseline_lesion_unmeasured" and row["value"] == "L1"
    (row,) = unmeasured_baseline_lesions(_lesions(None, 0.0), base)  # neither voxels nor a diameter
    assert "withheld" in row["message"]


def test_concordance_of_a_cohort_with_no_labelled_patient_is_all_zero_counts() -> None:
    table = concordance_table(pd.DataFrame(), ["champiat2017", "kato2017", "kas2020"])
    assert len(table) == 3  # every pair, none with a count
    numeric = table.select_dtypes("number")
    assert (numeric.fillna(0) == 0).all().all()
