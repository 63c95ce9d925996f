"""A fast feature-level synthetic cohort, to build and test the model stage without images.

This is NOT the image-level archive of ``hpd-imaging synth``: it draws the patient-level feature table
directly, in milliseconds, with a known planted signal. Mechanism (every number is a parameter):

* latent risk ``r ~ N(0, 1)`` per patient; clinical covariates: age ~ N(64, 9) years, number of metastatic
  sites ~ 1 + Poisson(1), LDH above ULN ~ Bernoulli(0.35), ECOG 0/1/2, sex M/F.
* label score ``s = r + clinical_effect * z_clin + N(0, label_noise^2)`` where ``z_clin`` is the standardised
  sum of (age > 65) + (>= 2 metastatic sites) + (LDH above ULN). The ``round(prevalence * n)`` patients with
  the highest ``s`` are ``hpd``, the others ``no_hpd``; then a random ``not_evaluable_fraction`` of patients
  is relabelled ``not_evaluable``. The clinical covariates carry label information at any signal strength.
* imaging features: ``n_signal`` columns ``signal_XX = signal_strength * r + N(0, 1)``; ``n_redundant``
  columns ``redundant_XX`` = a signal column + N(0, 0.1^2) (|r| > 0.9 with it, exercising the redundancy
  filter); ``n_noise`` columns ``noise_XXX ~ N(0, 1)``; a constant column ``constant_feature``.
  ``total_volume_mm3 = exp(9 + volume_signal * signal_strength * r + N(0, 0.8^2))`` (weakly informative: the
  "trivial radiomics feature") and ``largest_lesion_volume_mm3`` = 40-90 % of it.
* ``signal_strength = 0`` makes every imaging column (volume included) independent of the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureCohort:
    features: pd.DataFrame  # patient_id + numeric imaging features (radiomics_patient-like)
    kinetics: pd.DataFrame  # patient_id, hpd_<definition>, hpd_<definition>_reason (kinetics.csv-like)
    clinical: pd.DataFrame  # patient_id, age, sex, ldh_above_uln, n_metastatic_sites, ecog_baseline
    latent_risk: pd.Series  # indexed by patient_id


def make_feature_cohort(
    n_patients: int = 60,
    *,
    prevalence: float = 0.2,
    signal_strength: float = 1.0,
    n_signal: int = 5,
    n_redundant: int = 3,
    n_noise: int = 30,
    volume_signal: float = 0.25,
    clinical_effect: float = 0.5,
    label_noise: float = 0.3,
    not_evaluable_fraction: float = 0.1,
    definition: str = "champiat2017",
    seed: int = 0,
) -> FeatureCohort:
    """Draw one synthetic cohort (see the module docstring for the mechanism)."""
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence: expected a fraction in (0, 1), got {prevalence}")
    if n_redundant > n_signal:
        raise ValueError(f"n_redundant: expected <= n_signal ({n_signal}), got {n_redundant}")
    rng = np.random.default_rng(seed)
    ids = [f"SYN{i:04d}" for i in range(n_patients)]
    r = rng.normal(size=n_patients)

    age = np.round(rng.normal(64.0, 9.0, n_patients), 0)
    sites = 1 + rng.poisson(1.0, n_patients)
    ldh = rng.random(n_patients) < 0.35
    ecog = rng.choice([0, 1, 2], size=n_patients, p=[0.45, 0.45, 0.10])
    sex = rng.choice(["M", "F"], size=n_patients)
    clin_score = (age > 65).astype(float) + (sites >= 2) + ldh
    z_clin = (clin_score - clin_score.mean()) / (clin_score.std() or 1.0)

    s = r + clinical_effect * z_clin + rng.normal(0.0, label_noise, n_patients)
    n_pos = max(1, int(round(prevalence * n_patients)))
    label = np.full(n_patients, "no_hpd", dtype=object)
    label[np.argsort(-s)[:n_pos]] = "hpd"
    n_ne = int(round(not_evaluable_fraction * n_patients))
    if n_ne:
        label[rng.choice(n_patients, size=n_ne, replace=False)] = "not_evaluable"

    cols: dict[str, np.ndarray] = {}
    signal = [signal_strength * r + rng.normal(size=n_patients) for _ in range(n_signal)]
    for j, col in enumerate(signal):
        cols[f"signal_{j:02d}"] = col
    for j in range(n_redundant):
        cols[f"redundant_{j:02d}"] = signal[j] + rng.normal(0.0, 0.1, n_patients)
    for j in range(n_noise):
        cols[f"noise_{j:03d}"] = rng.normal(size=n_patients)
    cols["constant_feature"] = np.ones(n_patients)
    total = np.exp(9.0 + volume_signal * signal_strength * r + rng.normal(0.0, 0.8, n_patients))
    cols["total_volume_mm3"] = total
    cols["largest_lesion_volume_mm3"] = total * rng.uniform(0.4, 0.9, n_patients)
    features = pd.DataFrame({"patient_id": ids, **cols})

    reasons = {
        "hpd": "synthetic label: top latent score",
        "no_hpd": "synthetic label: below cut-off",
        "not_evaluable": "synthetic label: drawn as not evaluable",
    }
    kinetics = pd.DataFrame(
        {
            "patient_id": ids,
            f"hpd_{definition}": label,
            f"hpd_{definition}_reason": [reasons[v] for v in label],
        }
    )
    clinical = pd.DataFrame(
        {
            "patient_id": ids,
            "age": age,
            "sex": sex,
            "ldh_above_uln": ldh,
            "n_metastatic_sites": sites,
            "ecog_baseline": ecog,
        }
    )
    return FeatureCohort(
        features=features,
        kinetics=kinetics,
        clinical=clinical,
        latent_risk=pd.Series(r, index=pd.Index(ids, name="patient_id"), name="latent_risk"),
    )
