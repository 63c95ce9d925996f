"""The synthetic generator's survival model has a known hazard ratio; the survival stage must recover it.

Patients are drawn with the generator's own schedule and survival functions (no images: fast). The "truth"
definition labels the hyperprogressor phenotype; the "null" definition is a label drawn independently of
everything, whose true hazard ratio is 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpd_imaging.outcome.stage import run_survival
from hpd_imaging.synth.clinical import draw_schedule, draw_survival, survival_stream

TRUE_HR = 3.0


def _cohort(n: int = 600, seed: int = 11, hr: float = TRUE_HR):
    kin, clin = [], []
    null = np.random.default_rng(seed + 1)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        phenotype = (
            "hyperprogressor"
            if rng.random() < 0.2
            else str(rng.choice(["progressor", "stable", "responder"]))
        )
        sched = draw_schedule(rng, phenotype, 2, 56)
        sched = draw_survival(
            survival_stream(seed, i),
            phenotype,
            sched,
            median_months=12.0,
            hazard_ratio_hpd=hr,
            followup_months=(3.0, 36.0),
        )
        pid = f"P{i:04d}"
        kin.append(
            {
                "patient_id": pid,
                "first_eval_date": sched.scan_dates[2],
                "hpd_truth": "hpd" if phenotype == "hyperprogressor" else "no_hpd",
                "hpd_null": "hpd" if null.random() < 0.3 else "no_hpd",
            }
        )
        clin.append(
            {
                "patient_id": pid,
                "ici_start_date": sched.ici_start,
                "death_date": sched.death,
                "last_followup_date": sched.last_followup,
            }
        )
    return pd.DataFrame(kin), pd.DataFrame(clin)


def test_cox_ci_covers_the_true_hr_and_the_null_definition_covers_1():
    kin, clin = _cohort()
    result = run_survival(kin, clin)
    by = {d.definition: d for d in result.os.definitions}
    truth, null = by["truth"], by["null"]
    assert truth.events_hpd > 50 and truth.events_no_hpd > 200
    assert truth.hr_ci_low < TRUE_HR < truth.hr_ci_high
    assert truth.hr_ci_low > 1.5  # and the CI is informative, not just wide
    assert null.hr_ci_low < 1.0 < null.hr_ci_high
    assert result.os.ranking.iloc[0]["definition"] == "truth"
    assert result.os.n_excluded == {}  # nobody dies before the last scan in the generator


@pytest.mark.parametrize("hr", [1.0, 5.0])
def test_generator_hazard_ratio_is_what_the_data_show(hr):
    kin, clin = _cohort(n=500, seed=5, hr=hr)
    d = {x.definition: x for x in run_survival(kin, clin).os.definitions}["truth"]
    assert d.hr_ci_low < hr < d.hr_ci_high
