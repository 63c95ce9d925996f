"""A simple analytic chest/upper-abdomen phantom in the *body frame* (LPS, mm).

The body frame is attached to the patient: x to the patient's left, y posterior, z superior, z = 0 at the
caudal end of the scanned range. Each exam places the body in the scanner with a small rigid pose
(:class:`Pose`: a shift and a roll about the cranio-caudal axis), so that the patient "lies a few mm
differently" at each timepoint. A roll about z keeps axial planes axial, which is why RECIST (axial)
diameters of the truth do not depend on the pose.

Shapes are analytic (ellipses, ellipsoids, cylinders) so that organ regions used to place lesions are exact.
HU values follow specs/synthetic_archives.md (portal-venous contrast phase).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

AIR_HU = -1000.0


@dataclass(frozen=True)
class Pose:
    """Rigid placement of the body in the scanner frame: x_scanner = Rz(roll) @ x_body + shift."""

    shift_mm: tuple[float, float, float]
    roll_deg: float

    @property
    def rotation(self) -> np.ndarray:
        a = np.deg2rad(self.roll_deg)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def body_to_scanner(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, float) @ self.rotation.T + np.asarray(self.shift_mm)

    def scanner_to_body(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, float) - np.asarray(self.shift_mm)) @ self.rotation


@dataclass(frozen=True)
class Anatomy:
    """Per-patient anatomy parameters (sizes and HU drawn once per patient)."""

    length_mm: float
    body_a_mm: float  # half-width (x) of the body outline
    body_b_mm: float  # half-depth (y)
    fat_mm: float  # subcutaneous fat thickness
    muscle_mm: float  # body-wall muscle thickness
    hu_fat: float
    hu_muscle: float
    hu_soft: float
    hu_liver: float
    hu_lung: float
    hu_aorta: float
    hu_cortical: float
    hu_cancellous: float

    # organ ellipsoids: (centre xyz, half-axes xyz)
    def lung(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """side = +1 left lung, -1 right lung."""
        L = self.length_mm
        centre = np.array([side * 0.45 * self.body_a_mm, -0.05 * self.body_b_mm, 0.80 * L])
        half = np.array([0.33 * self.body_a_mm, 0.62 * self.body_b_mm, 0.40 * L])
        return centre, half

    def liver(self) -> tuple[np.ndarray, np.ndarray]:
        L = self.length_mm
        centre = np.array([-0.30 * self.body_a_mm, -0.05 * self.body_b_mm, 0.30 * L])
        half = np.array([0.52 * self.body_a_mm, 0.62 * self.body_b_mm, 0.27 * L])
        return centre, half

    @property
    def aorta_xy(self) -> tuple[float, float, float]:
        return 0.12 * self.body_a_mm, 0.38 * self.body_b_mm, 11.0

    @property
    def spine_xy(self) -> tuple[float, float, float]:
        return 0.0, 0.62 * self.body_b_mm, 17.0

    def node_stations(self) -> np.ndarray:
        """Plausible lymph-node centres (mediastinal, hilar, para-aortic, axillary), body frame mm."""
        L, a, b = self.length_mm, self.body_a_mm, self.body_b_mm
        return np.array(
            [
                [0.08 * a, 0.05 * b, 0.80 * L],  # subcarinal / mediastinal
                [-0.12 * a, 0.10 * b, 0.70 * L],  # right hilar / paratracheal
                [0.16 * a, 0.12 * b, 0.88 * L],  # left paratracheal / AP window
                [-0.12 * a, 0.40 * b, 0.18 * L],  # retrocrural / para-aortic (right)
                [0.30 * a, 0.30 * b, 0.15 * L],  # para-aortic (left)
                [0.80 * a, -0.05 * b, 0.86 * L],  # left axillary
                [-0.80 * a, -0.05 * b, 0.86 * L],  # right axillary
            ]
        )

    # ------------------------------------------------------------------------------------------
    def organ_of(self, xb: np.ndarray, yb: np.ndarray, zb: np.ndarray) -> np.ndarray:
        """Integer organ map on body-frame coordinates: 0 air, 1 fat, 2 muscle, 3 soft tissue, 4 lung,
        5 liver, 6 aorta, 7 cortical bone, 8 cancellous bone. Later organs overwrite earlier ones."""
        out = np.zeros(np.broadcast(xb, yb, zb).shape, np.uint8)
        r_body = (xb / self.body_a_mm) ** 2 + (yb / self.body_b_mm) ** 2
        out[r_body <= 1.0] = 1
        a_m, b_m = self.body_a_mm - self.fat_mm, self.body_b_mm - self.fat_mm
        out[(xb / a_m) ** 2 + (yb / b_m) ** 2 <= 1.0] = 2
        a_s, b_s = a_m - self.muscle_mm, b_m - self.muscle_mm
        inner = (xb / a_s) ** 2 + (yb / b_s) ** 2 <= 1.0
        out[inner] = 3
        c, h = self.liver()
        out[inner & (_ellipsoid(xb, yb, zb, c, h) <= 1.0)] = 5
        for side in (1, -1):
            c, h = self.lung(side)
            out[inner & (_ellipsoid(xb, yb, zb, c, h) <= 1.0)] = 4
        ax, ay, ar = self.aorta_xy
        out[(xb - ax) ** 2 + (yb - ay) ** 2 <= ar**2] = 6
        sx, sy, sr = self.spine_xy
        d2 = (xb - sx) ** 2 + (yb - sy) ** 2
        # vertebral bodies 25 mm high separated by 5 mm discs (soft tissue)
        disc = np.mod(zb, 30.0) < 5.0
        out[(d2 <= sr**2) & ~disc] = 7
        out[(d2 <= (sr - 2.5) ** 2) & ~disc] = 8
        out[(d2 <= sr**2) & disc] = 3
        # spinous process: a posterior bar
        bar = (np.abs(xb - sx) <= 4.0) & (yb > sy + sr + 8.0) & (yb < sy + sr + 30.0) & ~disc
        out[bar & (r_body <= 1.0)] = 7
        # ribs in the thorax: 10 mm bands every 25 mm in the muscle layer
        thorax = zb > 0.45 * self.length_mm
        rib_ring = ((xb / (a_s + 3.0)) ** 2 + (yb / (b_s + 3.0)) ** 2 <= 1.0) & ~inner
        out[rib_ring & thorax & (np.mod(zb, 25.0) < 9.0) & (yb < sy)] = 7
        return out

    def hu_table(self) -> np.ndarray:
        return np.array(
            [
                AIR_HU,
                self.hu_fat,
                self.hu_muscle,
                self.hu_soft,
                self.hu_lung,
                self.hu_liver,
                self.hu_aorta,
                self.hu_cortical,
                self.hu_cancellous,
            ],
            np.float32,
        )


def _ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: np.ndarray, h: np.ndarray) -> np.ndarray:
    return ((x - c[0]) / h[0]) ** 2 + ((y - c[1]) / h[1]) ** 2 + ((z - c[2]) / h[2]) ** 2


def draw_anatomy(rng: np.random.Generator, length_mm: float) -> Anatomy:
    """Draw one patient's anatomy (sizes and tissue HU within the ranges of the spec)."""
    return Anatomy(
        length_mm=length_mm,
        body_a_mm=float(rng.uniform(145.0, 165.0)),
        body_b_mm=float(rng.uniform(100.0, 118.0)),
        fat_mm=float(rng.uniform(8.0, 22.0)),
        muscle_mm=float(rng.uniform(7.0, 12.0)),
        hu_fat=float(rng.uniform(-115.0, -85.0)),
        hu_muscle=float(rng.uniform(38.0, 52.0)),
        hu_soft=float(rng.uniform(30.0, 45.0)),
        hu_liver=float(rng.uniform(90.0, 110.0)),
        hu_lung=float(rng.uniform(-880.0, -820.0)),
        hu_aorta=float(rng.uniform(160.0, 220.0)),
        hu_cortical=float(rng.uniform(750.0, 1100.0)),
        hu_cancellous=float(rng.uniform(220.0, 350.0)),
    )


_SLAB_SLICES = 8  # slices per slab in render_anatomy: 8 x 512 x 512 points = ~50 MB of float64 coordinates


def scanner_grid(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    k_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scanner (LPS) coordinates of the voxel centres of an axis-aligned grid, arrays of ``shape`` [k,j,i].

    ``k_range`` = (k0, k1): only slices k0..k1-1 (the same values as those slices of the whole grid).
    """
    nk, nj, ni = shape
    x = origin_mm[0] + spacing_mm[0] * np.arange(ni)
    y = origin_mm[1] + spacing_mm[1] * np.arange(nj)
    z = origin_mm[2] + spacing_mm[2] * np.arange(nk)
    if k_range is not None:
        z = z[k_range[0] : k_range[1]]
    return np.meshgrid(z, y, x, indexing="ij")[::-1]  # type: ignore[return-value]


def render_anatomy(
    anatomy: Anatomy,
    pose: Pose,
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
) -> np.ndarray:
    """HU volume [k,j,i] (float32) of the anatomy as placed by ``pose``, without noise or lesions.

    Organ boundaries get a Gaussian blur of half a voxel in-plane (a stand-in for the scanner's point-spread
    function); the lesions, whose boundaries matter for measurement, are partial-volumed exactly instead.
    """
    organs = np.empty(shape, np.uint8)
    nk = shape[0]
    # Slab by slab (why: at 512x512x200 the whole-volume float64 coordinate arrays held ~4.9 GB at once; a
    # slab of _SLAB_SLICES slices holds ~60 MB). Every step is per voxel, so the organ map is the same as the
    # whole volume's (tests/synth/test_render_slabs.py compares them bit for bit); the blur runs on the
    # whole volume as before.
    for k0 in range(0, nk, _SLAB_SLICES):
        k1 = min(nk, k0 + _SLAB_SLICES)
        X, Y, Z = scanner_grid(shape, spacing_mm, origin_mm, k_range=(k0, k1))
        pts = np.stack([X, Y, Z], axis=-1).reshape(-1, 3)
        del X, Y, Z
        body = pose.scanner_to_body(pts).astype(np.float32)
        del pts
        slab = (k1 - k0, shape[1], shape[2])
        xb, yb, zb = (body[:, i].reshape(slab) for i in range(3))
        organs[k0:k1] = anatomy.organ_of(xb, yb, zb)
        del body, xb, yb, zb
    hu = anatomy.hu_table()[organs]
    del organs
    return ndimage.gaussian_filter(hu, sigma=(0.2, 0.5, 0.5)).astype(np.float32, copy=False)


def add_noise(hu: np.ndarray, rng: np.random.Generator, sd_hu: float) -> np.ndarray:
    """Add spatially correlated Gaussian noise of standard deviation ``sd_hu`` (soft-tissue kernel look)."""
    if sd_hu <= 0:
        return hu
    white = rng.standard_normal(hu.shape, dtype=np.float32)
    corr = ndimage.gaussian_filter(white, sigma=(0.0, 0.7, 0.7))
    corr *= sd_hu / max(float(corr.std()), 1e-6)
    return hu + corr
