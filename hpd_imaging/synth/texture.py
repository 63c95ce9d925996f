"""Lesion texture and the planted imaging signal.

Every patient gets *base* texture parameters from a random stream that never sees the phenotype: the sd of a
correlated Gaussian texture field inside the lesions, its correlation length, the volume fraction of a
necrotic
core. The latent risk score ``z`` (drawn per patient with a phenotype-dependent mean, see clinical.py) then
modulates them with strength ``s``:

    texture sd        = sd_base * exp(0.35 * s * z)                 (intra-tumoural heterogeneity)
    necrotic fraction = clip(necrotic_base + 0.08 * s * z, 0, 0.45)  (volume fraction of the core, HU 5-20)
    rim HU            = 12 * s * max(z + 0.5, 0)                     (peritumoral density, x6 in lung)

The rim adds ``rim HU * (1 - d / 7.5 mm)`` to the tissue around each lesion for 0 < d < 7.5 mm (d measured
along the ray from the lesion centre): an infiltrative / ground-glass halo. With ``s = 0`` every imaging
quantity is drawn independently of the phenotype (lesion count and sites still follow the clinical
``n_metastatic_sites`` risk factor, and sizes follow the kinetics after baseline). A model trained on such
data can learn that heterogeneity, necrosis and a peritumoral halo at baseline go with HPD -- a mechanism we
planted, not a biological finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

RIM_WIDTH_MM = 7.5
LUNG_RIM_FACTOR = 6.0

SIGNAL_MECHANISM = (
    "Per patient latent risk z ~ N(mu_phenotype, 1) with mu = 1.0 (hyperprogressor), 0.3 (progressor), "
    "0 (stable, pseudoprogression), -0.3 (responder). Imaging, with strength s = signal_strength: lesion "
    "texture-field sd = sd_base*exp(0.35*s*z) (sd_base ~ U(6,16) HU, correlation length ~ U(1.5,5) mm); "
    "necrotic core volume fraction = clip(nec_base + 0.08*s*z, 0, 0.45) (nec_base ~ U(0,0.2)); peritumoral "
    "rim "
    "of +12*s*max(z+0.5,0) HU (x6 in lung) decaying linearly to 0 at 7.5 mm from the lesion surface. Base "
    "parameters come from a random stream independent of the phenotype, so s = 0 makes texture, necrosis and "
    "rim independent of the phenotype. Clinical risk factors (age > 65, >= 2 metastatic sites, LDH > ULN) "
    "are "
    "drawn conditionally on the phenotype (odds ratios ~2.5-3.7) independently of s."
)


@dataclass(frozen=True)
class TextureParams:
    sd_hu: float
    corr_len_mm: float
    necrotic_fraction: float
    rim_hu: float

    def as_dict(self) -> dict[str, float]:
        return {
            "sd_hu": round(self.sd_hu, 4),
            "corr_len_mm": round(self.corr_len_mm, 4),
            "necrotic_fraction": round(self.necrotic_fraction, 4),
            "rim_hu": round(self.rim_hu, 4),
        }


def draw_base_texture(rng: np.random.Generator) -> TextureParams:
    """Phenotype-blind base parameters (their own random stream)."""
    return TextureParams(
        sd_hu=float(rng.uniform(6.0, 16.0)),
        corr_len_mm=float(rng.uniform(1.5, 5.0)),
        necrotic_fraction=float(rng.uniform(0.0, 0.2)),
        rim_hu=0.0,
    )


def apply_signal(base: TextureParams, latent_risk: float, strength: float) -> TextureParams:
    """The planted mechanism (module docstring); identity when strength == 0."""
    s, z = strength, latent_risk
    return TextureParams(
        sd_hu=base.sd_hu * float(np.exp(0.35 * s * z)),
        corr_len_mm=base.corr_len_mm,
        necrotic_fraction=float(np.clip(base.necrotic_fraction + 0.08 * s * z, 0.0, 0.45)),
        rim_hu=12.0 * s * max(z + 0.5, 0.0),
    )


def texture_field(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    corr_len_mm: float,
    spacing_kji_mm: tuple[float, float, float],
) -> np.ndarray:
    """Unit-sd Gaussian random field with Gaussian correlation ``corr_len_mm`` (sigma; per axis in voxels)."""
    white = rng.standard_normal(shape)
    sigma = [max(corr_len_mm / s, 0.0) for s in spacing_kji_mm]
    field = ndimage.gaussian_filter(white, sigma=sigma, mode="reflect")
    # normalise with the exact sd of filtered white noise (sqrt of the sum of squared kernel weights, the
    # kernel being separable): stable on small boxes, unlike field.std()
    var = 1.0
    for s in sigma:
        if s > 0:
            r = int(4.0 * s + 0.5)  # scipy's default truncate=4.0
            w = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
            var *= float(((w / w.sum()) ** 2).sum())
    return field / np.sqrt(var)
