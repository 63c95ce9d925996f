"""Images and masks in memory: HU voxels on their grid, and each lesion's mask as a tight crop of that
grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from hpd_imaging.domain._enums import MaskSource
from hpd_imaging.domain.geometry import ImageGeometry
from hpd_imaging.errors import GeometryError, MaskError

if TYPE_CHECKING:  # SimpleITK is heavy; import it only where a conversion is asked for
    import SimpleITK as sitk

# --------------------------------------------------------------------------------------------------
# Images and masks in memory
# --------------------------------------------------------------------------------------------------


@runtime_checkable
class VoxelSource(Protocol):
    """Where a lazy :class:`CtImage` gets its voxels: decodes slices on demand and keeps them once decoded.

    Implemented by the loaders (``hpd_imaging.io._lazyct``); the domain only states the contract so that it
    imports no reader. Every method must be safe to call from several threads at once (radiomics and
    snapshots of one patient may run in threads of one Dask worker).
    """

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def slab(self, k0: int, k1: int) -> np.ndarray:
        """Slices ``k0:k1`` in HU (decoding the ones not decoded yet)."""
        ...

    def whole(self) -> np.ndarray:
        """Every slice in HU (decodes what is missing, once)."""
        ...

    @property
    def decoded_nbytes(self) -> int:
        """Bytes of decoded voxels held now (not the declared volume)."""
        ...

    def input_sha256(self) -> str:
        """A digest of what identifies the input without decoding it (see the implementation)."""
        ...


@dataclass(frozen=True, eq=False, init=False)
class CtImage:
    """CT voxels in Hounsfield units on a regular LPS grid.

    Built with ``hu=`` (every voxel in memory: eager) or, by the CT loader, with ``lazy=`` a
    :class:`VoxelSource` that decodes slices when they are first asked for (issue 21: a follow-up exam whose
    voxels only feed one snapshot slice per lesion need not be decoded whole). Readers that need every voxel
    use :attr:`hu` (a lazy CT then decodes what is missing, once); readers of a few slices use :meth:`slab` /
    :meth:`voxels`, which decode only those. Values are the same either way.
    """

    geometry: ImageGeometry
    frame_of_reference_uid: str = ""
    series_instance_uid: str = ""
    source: str = ""  # path or description, for error messages and provenance
    provenance: dict[str, Any] = field(default_factory=dict)  # e.g. {"resampled": "gantry tilt 18.5 deg"}
    lazy: VoxelSource | None = None  # a lazy CT's voxel source; None: every voxel is in ``_eager``
    _eager: np.ndarray | None = field(default=None, repr=False)

    def __init__(
        self,
        hu: np.ndarray | None = None,
        geometry: ImageGeometry | None = None,
        frame_of_reference_uid: str = "",
        series_instance_uid: str = "",
        source: str = "",
        provenance: dict[str, Any] | None = None,
        *,
        lazy: VoxelSource | None = None,
    ) -> None:
        where = source or "CT"
        if geometry is None:
            raise GeometryError(f"{where}: expected the CT's grid (geometry), got None")
        if (hu is None) == (lazy is None):
            raise GeometryError(
                f"{where}: expected either the voxels (hu) or a lazy voxel source, got "
                f"{'both' if hu is not None else 'neither'}"
            )
        shape = tuple(hu.shape) if hu is not None else tuple(lazy.shape)  # type: ignore[union-attr]
        if len(shape) != 3 or shape != geometry.shape:
            raise GeometryError(f"{where}: expected voxel array of shape {geometry.shape}, got {shape}")
        for name, value in dict(
            geometry=geometry,
            frame_of_reference_uid=frame_of_reference_uid,
            series_instance_uid=series_instance_uid,
            source=source,
            provenance={} if provenance is None else provenance,
            lazy=lazy,
            _eager=hu,
        ).items():
            object.__setattr__(self, name, value)

    @property
    def hu(self) -> np.ndarray:
        """Every voxel, ``[k, j, i]``, float32 or int16, HU after the modality LUT (a lazy CT decodes what is
        missing, once, and keeps it)."""
        if self._eager is not None:
            return self._eager
        assert self.lazy is not None
        return self.lazy.whole()

    @property
    def is_lazy(self) -> bool:
        return self.lazy is not None

    @property
    def dtype(self) -> np.dtype:
        """The voxels' type (of a lazy CT: int16 until a decoded slice leaves the int16 range)."""
        return self._eager.dtype if self._eager is not None else self.lazy.dtype  # type: ignore[union-attr]

    def slab(self, k0: int, k1: int) -> np.ndarray:
        """Slices ``k0:k1`` (clipped to the grid, as a slice of an array is); a lazy CT decodes only those."""
        k0, k1, _ = slice(k0, k1).indices(self.geometry.shape[0])
        if self._eager is not None:
            return self._eager[k0:k1]
        assert self.lazy is not None
        return self.lazy.slab(k0, max(k0, k1))

    def voxels(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """``hu[box]`` for a box of unit-step slices; a lazy CT decodes only the box's slices."""
        if self._eager is not None:
            return self._eager[box]
        k = box[0].indices(self.geometry.shape[0])
        return self.slab(k[0], k[1])[:, box[1], box[2]]

    @property
    def decoded_nbytes(self) -> int:
        """Bytes of voxels held in memory: an eager CT's array (0 for a zero-stride placeholder, see
        ``pipeline.memory.without_voxels``), a lazy CT's decoded slices only."""
        if self._eager is not None:
            return 0 if 0 in self._eager.strides else int(self._eager.nbytes)
        return int(self.lazy.decoded_nbytes)  # type: ignore[union-attr]

    def input_sha256(self) -> str | None:
        """A lazy CT's digest of its stored input (no decoding); None for an eager CT (hash :attr:`hu`)."""
        return None if self.lazy is None else self.lazy.input_sha256()

    def to_sitk(self) -> sitk.Image:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.hu)
        self.geometry.apply_to_sitk(image)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, **kwargs: Any) -> CtImage:
        import SimpleITK as sitk

        return cls(hu=sitk.GetArrayFromImage(image), geometry=ImageGeometry.from_sitk(image), **kwargs)


def tight_box(array: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box (array order) of the True voxels of a 3D boolean array; None when there are none.

    Found from the projections on each axis (``np.any`` over the other two), which reads the array once per
    axis without allocating index arrays: on a whole 512x512x250 grid this is what cropping costs.
    """
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(array, axis=other))
        if hits.size == 0:
            return None
        out.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return out[0], out[1], out[2]


_EMPTY_CROP_SHAPE = (0, 0, 0)


@dataclass(frozen=True, eq=False, init=False)
class LesionMask:
    """One lesion's binary mask on a CT grid, stored as its bounding-box crop, with what the segmentation
    says about it.

    Why a crop (issue 21): a lesion of a few thousand voxels on a 512x512x250 grid is a 65 MB boolean array
    when stored whole; a patient's worker held ~200 MiB of such arrays per exam, twice its CT. Here
    ``crop`` is the tight bounding box of the True voxels (bool ``[k, j, i]``) and ``offset`` = ``(k0, j0,
    i0)`` the CT-grid index of ``crop[0, 0, 0]``; ``geometry`` stays the CT's grid, so every position
    (index -> LPS through ``geometry``) and every measurement is the one of the whole-grid mask.

    Built either from a whole-grid boolean ``mask`` (cropped here to its bounding box; the shape must be the
    grid's) or, by the readers, from ``crop=`` and ``offset=`` directly (the crop must lie inside the grid;
    it is trimmed to its tight box). An empty mask has a ``(0, 0, 0)`` crop. :attr:`mask` and
    :meth:`to_full` materialise the whole grid; only consumers that truly need the whole grid call them.
    """

    crop: np.ndarray  # bool [k, j, i]: the tight bounding box of the lesion's voxels
    offset: tuple[int, int, int]  # (k0, j0, i0): grid index of crop[0, 0, 0]
    geometry: ImageGeometry
    label: str  # segment label, ROI name or label value as text
    source: MaskSource
    source_path: str = ""
    lesion_id: str | None = None  # identity declared by the data (tracking ID, manifest), if any
    tracking_uid: str | None = None
    organ: str = ""
    is_lymph_node: bool = False
    label_value: int | None = None  # segment number / label-map value
    notes: tuple[str, ...] = ()  # warnings met while reading (e.g. contour off slice planes)
    # what the file says the structure is: RT ROI Interpreted Type (RTSTRUCT), segmented property category
    # (SEG, Slicer terminology), and whether the lesion rules (io/structures.py) count it as a lesion and why
    structure_type: str = ""
    is_lesion: bool = True
    lesion_rule: str = ""
    terminology: str = ""  # coded category / type as "scheme^value^meaning" pairs joined by " / "
    color_rgb: tuple[float, float, float] | None = None  # display colour (0-1) from the file, if any

    def __init__(
        self,
        mask: np.ndarray | None = None,
        geometry: ImageGeometry | None = None,
        label: str = "",
        source: MaskSource = MaskSource.SEG,
        source_path: str = "",
        lesion_id: str | None = None,
        tracking_uid: str | None = None,
        organ: str = "",
        is_lymph_node: bool = False,
        label_value: int | None = None,
        notes: tuple[str, ...] = (),
        structure_type: str = "",
        is_lesion: bool = True,
        lesion_rule: str = "",
        terminology: str = "",
        color_rgb: tuple[float, float, float] | None = None,
        *,
        crop: np.ndarray | None = None,
        offset: tuple[int, int, int] | None = None,
    ) -> None:
        where = source_path or label
        if geometry is None:
            raise MaskError(f"{where}: expected the CT grid (geometry) of the mask, got None")
        if (mask is None) == (crop is None):
            raise MaskError(
                f"{where}: expected either a whole-grid mask or a crop with its offset, got "
                f"{'both' if mask is not None else 'neither'}"
            )
        array = mask if mask is not None else crop
        assert array is not None
        if array.dtype != bool:
            raise MaskError(f"{where}: expected a boolean mask, got dtype {array.dtype}")
        if mask is not None:
            if tuple(mask.shape) != geometry.shape:
                raise MaskError(f"{where}: expected mask shape {geometry.shape}, got {mask.shape}")
            start = (0, 0, 0)
        else:
            if array.ndim != 3 or offset is None or len(offset) != 3:
                raise MaskError(
                    f"{where}: expected a 3D crop and its (k, j, i) offset, got shape {array.shape} and "
                    f"offset {offset}"
                )
            start = (int(offset[0]), int(offset[1]), int(offset[2]))
            if any(o < 0 or o + n > g for o, n, g in zip(start, array.shape, geometry.shape, strict=True)):
                raise MaskError(
                    f"{where}: expected the crop inside the grid {geometry.shape}, got shape "
                    f"{tuple(array.shape)} at offset {start}"
                )
        box = tight_box(array)
        if box is None:
            tight, start = np.zeros(_EMPTY_CROP_SHAPE, dtype=bool), (0, 0, 0)
        else:
            whole = all(s.start == 0 and s.stop == n for s, n in zip(box, array.shape, strict=True))
            # a copy unless already tight: a view would keep the whole-grid array it was cut from alive
            tight = array if whole and mask is None and array.base is None else np.array(array[box])
            start = (start[0] + box[0].start, start[1] + box[1].start, start[2] + box[2].start)
        values = dict(
            crop=tight,
            offset=start,
            geometry=geometry,
            label=label,
            source=source,
            source_path=source_path,
            lesion_id=lesion_id,
            tracking_uid=tracking_uid,
            organ=organ,
            is_lymph_node=is_lymph_node,
            label_value=label_value,
            notes=notes,
            structure_type=structure_type,
            is_lesion=is_lesion,
            lesion_rule=lesion_rule,
            terminology=terminology,
            color_rgb=color_rgb,
        )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def box(self) -> tuple[slice, slice, slice]:
        """The crop's place on the grid: ``full[box]`` is ``crop`` (empty slices for an empty mask)."""
        return tuple(  # type: ignore[return-value]
            slice(o, o + n) for o, n in zip(self.offset, self.crop.shape, strict=True)
        )

    @property
    def is_empty(self) -> bool:
        return self.crop.size == 0

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.crop))

    @property
    def volume_mm3(self) -> float:
        return self.voxel_count * self.geometry.voxel_volume_mm3

    def voxel_indices(self) -> np.ndarray:
        """Grid indices ``(n, 3)`` in ``[k, j, i]`` order of the lesion's voxels (``np.argwhere`` of the
        whole-grid mask, in the same order)."""
        return np.argwhere(self.crop) + np.asarray(self.offset, dtype=np.int64)

    def padded(self, margin_kji: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The crop grown by ``margin_kji`` voxels on each side (clipped to the grid) and its offset: the
        lesion-sized work array of a consumer that looks around the lesion (rings, outlines)."""
        if self.is_empty:
            return np.zeros(_EMPTY_CROP_SHAPE, dtype=bool), (0, 0, 0)
        lo = [max(o - m, 0) for o, m in zip(self.offset, margin_kji, strict=True)]
        hi = [
            min(o + n + m, g)
            for o, n, m, g in zip(self.offset, self.crop.shape, margin_kji, self.geometry.shape, strict=True)
        ]
        out = np.zeros(tuple(b - a for a, b in zip(lo, hi, strict=True)), dtype=bool)
        inner = tuple(
            slice(o - a, o - a + n) for o, a, n in zip(self.offset, lo, self.crop.shape, strict=True)
        )
        out[inner] = self.crop
        return out, (lo[0], lo[1], lo[2])

    def to_full(self) -> np.ndarray:
        """The whole-grid boolean mask (allocates ``geometry.shape``): for consumers that need the grid
        itself (a DICOM SEG frame per CT slice, a whole-CT hash), never for storage."""
        full = np.zeros(self.geometry.shape, dtype=bool)
        if not self.is_empty:
            full[self.box] = self.crop
        return full

    @property
    def mask(self) -> np.ndarray:
        """The whole-grid boolean mask, built on each access (see :meth:`to_full`); kept for readers of the
        whole grid (tests, small grids). Stage code works on ``crop`` / ``offset``."""
        return self.to_full()

    def to_sitk(self) -> sitk.Image:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self.to_full().astype(np.uint8))
        self.geometry.apply_to_sitk(image)
        return image


