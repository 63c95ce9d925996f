"""NIfTI/NRRD label map -> one :class:`LesionMask` per label value (or connected component) on the CT grid.

SimpleITK reads NIfTI's RAS header into DICOM's LPS frame (it negates the first two axes of the sform/qform),
so a TotalSegmentator map stored LAS comes back with direction diag(1, -1, 1) and the origin at the last
row. The map is then put onto the CT lattice with highdicom's ``match_geometry`` (permute/flip only, no
interpolation). A grid that is not the CT lattice within ``labelmap_tolerance_mm`` is refused with the
difference stated, or resampled nearest-neighbour when ``LoaderSettings.labelmap_mismatch == "resample"``
(labels must never be interpolated linearly).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from hpd_imaging.domain import CtImage, LesionMask, MaskSource, tight_box
from hpd_imaging.errors import DicomReadError, MaskError
from hpd_imaging.io._labelgrid import (  # re-exported: the readers' public helpers
    LabelTable,
    connected_components,
    normalise_label_table,
    place_on_ct_grid,
)
from hpd_imaging.io._limits import check_image_header, check_mask_count
from hpd_imaging.io.slicer_seg import is_slicer_segmentation, read_slicer_segmentation
from hpd_imaging.io.structures import classify_structure
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

log = logging.getLogger(__name__)


def _read_image(path: Path, *, layers: bool = False):  # noqa: ANN202
    from hpd_imaging.io.filetype import read_sitk_image

    try:
        image = read_sitk_image(path)
    except RuntimeError as exc:
        raise DicomReadError(f"{path}: cannot read label map with SimpleITK: {exc}", path=str(path)) from exc
    if image.GetDimension() != 3 or (image.GetNumberOfComponentsPerPixel() != 1 and not layers):
        raise MaskError(
            f"{path}: expected a 3D scalar label map, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)",
            path=str(path),
        )
    return image


def labelmap_on_ct_grid(
    path: Path | str, ct: CtImage, settings: LoaderSettings = DEFAULT_LOADER_SETTINGS
) -> tuple[np.ndarray, list[str]]:
    """The label map's integer values on ``ct``'s grid ([k, j, i]), plus notes on what was done."""
    path = Path(path)
    check_image_header(path, settings, max_voxels=settings.max_ct_voxels)  # memory-bomb guard
    return place_on_ct_grid(_read_image(path), path, ct, settings)


def read_labelmap(
    path: Path | str,
    ct: CtImage,
    *,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    label_table: LabelTable | None = None,
    split_components: bool = False,
    **_: Any,
) -> list[LesionMask]:
    """One LesionMask per non-zero label value (or per 26-connected component of each value).

    ``label_table`` maps value -> (lesion_id, organ, is_lymph_node) (masks.csv / images.csv); values absent
    from the map are logged. A given table declares which labels are lesions: the others (a
    TotalSegmentator map's 39 organs next to the declared liver) are kept with no lesion id and
    ``is_lesion=False``. Without a table every label value is a structure classified by io/structures.py.
    An all-zero map raises :class:`MaskError`.
    """
    path = Path(path)
    check_image_header(path, settings, max_voxels=settings.max_ct_voxels)  # memory-bomb guard
    image = _read_image(path, layers=True)

    if is_slicer_segmentation(image):
        return read_slicer_segmentation(
            image, path, ct, settings=settings, label_table=label_table, split_components=split_components
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise MaskError(
            f"{path}: expected a 3D scalar label map (or a 3D Slicer segmentation with Segment<N>_Layer "
            f"keys), got {image.GetNumberOfComponentsPerPixel()} components per voxel",
            path=str(path),
        )
    values, notes = place_on_ct_grid(image, path, ct, settings)
    present = [int(v) for v in np.unique(values) if v != 0]
    check_mask_count(len(present), ct.geometry.shape, settings, str(path), "label values")
    if not present:
        raise MaskError(
            f"{path}: expected at least one non-zero label, got an empty label map", path=str(path)
        )
    table = normalise_label_table(label_table)
    for v in sorted(set(table) - set(present)):
        log.warning(
            "%s: label %d (%s) listed in the label table is absent from the map", path, v, table[v][0]
        )
    if table and set(present) - set(table):
        log.info(
            "%s: labels %s are not in the label table; kept as structures that are not lesions",
            path,
            sorted(set(present) - set(table)),
        )
    masks: list[LesionMask] = []
    boxes = (
        ndimage.find_objects(values.astype(np.int64, copy=False))
        if values.min() >= 0 and values.max() < 100_000
        else None
    )
    for v in present:
        if boxes is not None and v - 1 < len(boxes) and boxes[v - 1] is not None:
            box = boxes[v - 1]
        else:  # labels beyond find_objects' range: the box of this value's voxels
            box = tight_box(values == v) or (slice(0, 0), slice(0, 0), slice(0, 0))
        crop = values[box] == v  # compare only inside the label's bounding box: a lesion-sized mask
        offset = (box[0].start, box[1].start, box[2].start)
        lesion_id, organ, is_ln = table.get(v, (None, "", False))
        if lesion_id is not None:
            is_lesion, rule = True, f"label {v} listed in the manifest as lesion {lesion_id}"
        elif table:
            is_lesion, rule = False, f"label {v} is not in the manifest's label table"
        else:
            is_lesion, rule = classify_structure(name=str(v), settings=settings)
        base: dict[str, Any] = dict(
            geometry=ct.geometry,
            source=MaskSource.LABELMAP,
            source_path=str(path),
            organ=organ,
            is_lymph_node=is_ln,
            label_value=v,
            notes=tuple(notes),
            is_lesion=is_lesion,
            lesion_rule=rule,
        )
        if not split_components:
            masks.append(LesionMask(crop=crop, offset=offset, label=str(v), lesion_id=lesion_id, **base))
            continue
        masks.extend(
            LesionMask(
                crop=part,
                offset=offset,
                label=f"{v}.{n}",
                lesion_id=f"{lesion_id}.{n}" if lesion_id else None,
                **base,
            )
            for n, part in enumerate(
                connected_components(crop, settings, str(path), grid_shape=ct.geometry.shape), start=1
            )
        )
    return masks


__all__ = [
    "LabelTable",
    "connected_components",
    "labelmap_on_ct_grid",
    "normalise_label_table",
    "place_on_ct_grid",
    "read_labelmap",
]
