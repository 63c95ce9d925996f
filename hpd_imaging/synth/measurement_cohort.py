"""A kinetics-level synthetic cohort: exact lesion sizes and measurements drawn around them (issue 17).

Why: the label-stability analysis (response/stability.py) claims that a label it calls stable is the label
the exact sizes give, and that its probabilities are calibrated. Checking that needs many patients whose
true sizes are known exactly; rendering images for thousands of them would take hours, so this draws the
measurement table directly: each lesion grows exponentially with a per-period rate, its exact diameters
and sphere volumes are known, and the measured values add a normal error of the SD the error model assigns
(measure/uncertainty.py). Image-based checks use hpd_imaging.synth's archives and ground_truth.json instead.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ORGANS = ("lung", "liver", "adrenal", "bone", "peritoneum")


@dataclass(frozen=True)
class MeasurementCohort:
    exact: pd.DataFrame  # measurement table with the exact sizes
    measured: pd.DataFrame  # the same rows with measurement error added (SD columns when sd_columns)
    clinical: pd.DataFrame


def measurement_cohort(
    n_patients: int,
    seed: int,
    *,
    diameter_cv_pct: float = 5.0,
    volume_cv_pct: float = 9.7,
    sd_columns: bool = False,
) -> MeasurementCohort:
    """``n_patients`` with 1-3 non-nodal targets, pre-baseline (-56 to -70 d), baseline, ICI start
    (+1 to +14 d) and first evaluation (+42 to +70 d). Log growth per month: reference N(0.05, 0.12),
    experimental N(0.10, 0.25) (a wide spread, so that many labels sit near their thresholds).
    Measured = exact + N(0, SD) with SD = CV x exact (the literature model); ``sd_columns`` writes that
    SD into the table."""
    rng = np.random.default_rng(seed)
    exact_rows, measured_rows, clinical = [], [], []
    base = dt.date(2024, 3, 1)
    for index in range(n_patients):
        pid = f"C{seed}-{index:05d}"
        pre = base - dt.timedelta(days=int(rng.integers(56, 71)))
        ici = base + dt.timedelta(days=int(rng.integers(1, 15)))
        first = base + dt.timedelta(days=int(rng.integers(42, 71)))
        k_ref, k_exp = rng.normal(0.05, 0.12), rng.normal(0.10, 0.25)
        clinical.append({"patient_id": pid, "ici_start_date": ici.isoformat()})
        for lesion in range(int(rng.integers(1, 4))):
            d_base = float(rng.uniform(12.0, 45.0))
            jitter = rng.normal(0.0, 0.03, size=2)
            for date in (pre, base, first):
                months = (date - base).days / 30.4375
                rate = (k_ref + jitter[0]) if months < 0 else (k_exp + jitter[1])
                d = d_base * math.exp(rate * months / 3.0)  # diameter grows at a third of the volume's rate
                v = math.pi / 6.0 * d**3
                row = {
                    "patient_id": pid,
                    "scan_date": date.isoformat(),
                    "lesion_id": f"L{lesion}",
                    "organ": ORGANS[lesion % len(ORGANS)],
                    "is_lymph_node": False,
                    "is_target": True,
                    "longest_axial_diameter_mm": d,
                    "short_axis_mm": 0.7 * d,
                    "volume_mm3": v,
                }
                exact_rows.append(row)
                sd_d, sd_sa, sd_v = (
                    d * diameter_cv_pct / 100,
                    0.7 * d * diameter_cv_pct / 100,
                    v * volume_cv_pct / 100,
                )
                noisy = dict(row)
                noisy["longest_axial_diameter_mm"] = abs(d + rng.normal(0.0, sd_d))
                noisy["short_axis_mm"] = abs(0.7 * d + rng.normal(0.0, sd_sa))
                noisy["volume_mm3"] = abs(v + rng.normal(0.0, sd_v))
                if sd_columns:
                    noisy.update(
                        longest_axial_diameter_sd_mm=sd_d, short_axis_sd_mm=sd_sa, volume_sd_mm3=sd_v
                    )
                measured_rows.append(noisy)
    return MeasurementCohort(pd.DataFrame(exact_rows), pd.DataFrame(measured_rows), pd.DataFrame(clinical))
