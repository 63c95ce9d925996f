"""Registration of one exam's CT to the reference (baseline) CT, for lesion tracking by position.

SimpleITK (ITK's registration framework): a rigid Euler3D transform centred by image moments, then an affine
transform started from it; Mattes mutual information, multi-resolution, on images smoothed and resampled to a
coarse isotropic grid (4 mm by default) because tracking needs millimetre, not sub-millimetre, accuracy.

The result is returned as a 4x4 matrix mapping *exam* LPS points to *reference* LPS points, so that many
points (lesion voxels) can be mapped with one matrix product instead of one ITK call per point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hpd_imaging.domain import CtImage
from hpd_imaging.settings.tracking import TrackingSettings

logger = logging.getLogger(__name__)

# HU window used for registration: air at 0 so that image moments locate the body, bone capped so that a
# metal implant does not dominate
_HU_LOW, _HU_HIGH = -1000.0, 1500.0


@dataclass(frozen=True)
class Registration:
    """Exam -> reference mapping and the evidence for it."""

    matrix: np.ndarray  # 4x4, homogeneous LPS exam point -> LPS reference point
    method: str  # "identity" (same exam), "rigid", "affine", "none" (registration off or failed)
    metric: float | None = None  # final Mattes MI (lower is better)
    note: str = ""

    def map_points(self, points_lps: np.ndarray) -> np.ndarray:
        pts = np.asarray(points_lps, dtype=float)
        return pts @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    @property
    def translation_at_origin_mm(self) -> float:
        return float(np.linalg.norm(self.matrix[:3, 3]))


IDENTITY = Registration(matrix=np.eye(4), method="identity")


def _prepare(ct: CtImage, spacing_mm: float):  # -> sitk.Image
    import SimpleITK as sitk  # noqa: N813

    image = ct.to_sitk()
    # block-average first (cheap, anti-aliased, on the stored integer HU) so that a 512 x 512 x 300 CT is
    # never converted, clamped or smoothed at full size
    factors = [max(1, int(spacing_mm // s)) for s in image.GetSpacing()]
    if any(f > 1 for f in factors):
        image = sitk.BinShrink(image, factors)
    image = sitk.Cast(image, sitk.sitkFloat32)
    image = sitk.Clamp(image, sitk.sitkFloat32, _HU_LOW, _HU_HIGH) - _HU_LOW
    # then a Gaussian with sigma ~ half the target spacing before resampling onto the isotropic grid
    image = sitk.SmoothingRecursiveGaussian(image, spacing_mm / 2.0)
    size = [
        max(4, int(np.ceil(n * s / spacing_mm)))
        for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)
    ]
    return sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [spacing_mm] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


def _matrix_of(transform, centre: np.ndarray) -> np.ndarray:
    """4x4 matrix of an affine-type ITK transform, recovered from four mapped points (exact for affines)."""
    base = np.vstack([centre, centre + np.eye(3) * 100.0])
    mapped = np.array([transform.TransformPoint(tuple(map(float, p))) for p in base])
    lin = (mapped[1:] - mapped[0]) / 100.0  # rows: images of the unit vectors
    m = np.eye(4)
    m[:3, :3] = lin.T
    m[:3, 3] = mapped[0] - lin.T @ centre
    return m


def _run(fixed, moving, initial, settings: TrackingSettings):
    import SimpleITK as sitk  # noqa: N813

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(settings.registration_sampling_fraction, settings.registration_seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=settings.registration_iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(initial, inPlace=False)
    transform = reg.Execute(fixed, moving)
    return transform, float(reg.GetMetricValue())


def _metric(fixed, moving, transform, settings: TrackingSettings) -> float:
    import SimpleITK as sitk  # noqa: N813

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(settings.registration_sampling_fraction, settings.registration_seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetInitialTransform(transform)
    return float(reg.MetricEvaluate(fixed, moving))


def _shift(matrix: np.ndarray, centre: np.ndarray) -> float:
    """Displacement (mm) of the image centre under a 4x4 mapping."""
    return float(np.linalg.norm(matrix[:3, :3] @ centre + matrix[:3, 3] - centre))


def register_to_reference(exam: CtImage, reference: CtImage, settings: TrackingSettings) -> Registration:
    """Map ``exam`` onto ``reference``: rigid (moments-centred, and geometric identity as a second start,
    the better one kept), then affine when it improves the metric. Never raises: a failure or a diverged
    result falls back to the scanner coordinates (identity), with the reason in ``note``.
    """
    import SimpleITK as sitk  # noqa: N813

    if exam is reference:
        return IDENTITY
    try:
        # fixed = the exam, moving = the reference: ITK's transform then maps exam points to reference points
        fixed = _prepare(exam, settings.registration_spacing_mm)
        moving = _prepare(reference, settings.registration_spacing_mm)
        centre = np.asarray(
            fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()])
        )
        starts = {
            "moments": sitk.CenteredTransformInitializer(
                fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
            ),
            "scanner": sitk.Euler3DTransform(tuple(centre), 0.0, 0.0, 0.0, (0.0, 0.0, 0.0)),
        }
        # the moments start first; the scanner-coordinates start only when that did not beat doing nothing
        identity_metric = _metric(fixed, moving, starts["scanner"], settings)
        best = None
        for name, start in starts.items():
            transform, metric = _run(fixed, moving, start, settings)
            logger.debug("rigid registration from %s start: metric %.4f", name, metric)
            if best is None or metric < best[1]:
                best = (transform, metric, name)
            if (
                best[1] < identity_metric
                and _shift(_matrix_of(best[0], centre), centre) <= settings.max_registration_shift_mm
            ):
                break
        rigid, rigid_metric, start_name = best
        rigid_m = _matrix_of(rigid, centre)
        affine = sitk.AffineTransform(3)
        affine.SetCenter(tuple(centre))
        affine.SetMatrix(tuple(rigid_m[:3, :3].ravel()))
        affine.SetTranslation(tuple(rigid_m[:3, :3] @ centre + rigid_m[:3, 3] - centre))
        affine_t, _ = _run(fixed, moving, affine, settings)
        affine_metric = _metric(fixed, moving, affine_t, settings)
        rigid_metric = _metric(fixed, moving, rigid, settings)
        if affine_metric < rigid_metric:
            matrix, method, metric = _matrix_of(affine_t, centre), "affine", affine_metric
        else:
            matrix, method, metric = rigid_m, "rigid", rigid_metric
    except RuntimeError as exc:  # ITK failures surface as RuntimeError
        logger.warning(
            "%s: registration to %s failed (%s); using scanner coordinates",
            exam.source,
            reference.source,
            exc,
        )
        return Registration(matrix=np.eye(4), method="none", note=f"registration failed: {exc}")
    shift = _shift(matrix, centre)
    scale = np.linalg.svd(matrix[:3, :3], compute_uv=False)
    if shift > settings.max_registration_shift_mm or scale.max() > 1.25 or scale.min() < 0.8:
        note = (
            f"registration refused: expected a shift <= {settings.max_registration_shift_mm} mm and scales "
            f"in [0.8, 1.25], got {shift:.1f} mm and {np.round(scale, 3).tolist()}; using scanner coordinates"
        )
        logger.warning("%s: %s", exam.source, note)
        return Registration(matrix=np.eye(4), method="none", note=note)
    note = f"{method} from {start_name} start; shift {shift:.1f} mm at the image centre"
    logger.info("%s -> %s: %s", exam.source or "exam", reference.source or "reference", note)
    return Registration(matrix=matrix, method=method, metric=metric, note=note)
