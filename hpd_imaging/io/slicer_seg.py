"""3D Slicer segmentation files (``.seg.nrrd``): one named segment per lesion/structure, layers included.

Format (Slicer's SegmentationFileFormat.md, copied next to the slicerio data): an NRRD whose header carries,
per segment ``<N>`` (0-based), ``Segment<N>_Name``, ``_ID``, ``_LabelValue`` (the voxel value in its layer),
``_Layer`` (the component of a 4D "list" file in which the segment lives; overlapping segments go to
different layers), ``_Color`` (RGB 0-1) and ``_Tags`` with
``TerminologyEntry:<context>~<category>~<type>~...`` where each coded entry is ``scheme^value^meaning``.
Files written before layers existed have neither ``_LabelValue`` nor ``_Layer``: segment ``N`` is then
value ``N + 1`` in the only layer.

SimpleITK reads the 4D file as a 3D image of vector voxels (one component per layer) and exposes the header
keys as metadata; no extra dependency is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hpd_imaging.domain import CtImage, LesionMask, MaskSource, tight_box
from hpd_imaging.errors import MaskError
from hpd_imaging.io._limits import check_mask_count
from hpd_imaging.io.structures import classify_structure
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

log = logging.getLogger(__name__)


def is_slicer_segmentation(image: Any) -> bool:
    """True when the image's header has Slicer's ``Segment0_*`` keys."""
    keys = image.GetMetaDataKeys()
    return any(k.startswith("Segment0_") for k in keys)


def _meta(image: Any, key: str) -> str:
    return str(image.GetMetaData(key)).strip() if image.HasMetaDataKey(key) else ""


def parse_terminology(tags: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """((scheme, value, meaning) of the category, of the type) from a ``Segment<N>_Tags`` value."""
    empty = ("", "", "")
    for tag in tags.split("|"):
        if not tag.startswith("TerminologyEntry:"):
            continue
        parts = tag.removeprefix("TerminologyEntry:").split("~")
        coded = []
        for part in parts[1:3]:
            fields = part.split("^")
            coded.append(tuple((fields + ["", "", ""])[:3]) if len(fields) >= 3 else empty)
        while len(coded) < 2:
            coded.append(empty)
        return coded[0], coded[1]  # type: ignore[return-value]
    return empty, empty


def _int(text: str, default: int, where: str, key: str) -> int:
    if not text:
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise MaskError(f"{where}: header key {key}: expected an integer, got {text!r}", path=where) from exc


def read_slicer_segmentation(
    image: Any,
    path: Path,
    ct: CtImage,
    *,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    label_table: Any = None,
    split_components: bool = False,
) -> list[LesionMask]:
    """One LesionMask per Slicer segment (name, colour, terminology from the header), layers kept apart.

    ``label_table`` (masks.csv / images.csv rows, value -> lesion id) applies to the segments' label values
    when the file has one layer.
    """
    import SimpleITK as sitk  # noqa: N813

    from hpd_imaging.io._labelgrid import connected_components, normalise_label_table, place_on_ct_grid

    where = str(path)
    n_layers = int(image.GetNumberOfComponentsPerPixel())
    indices = []
    n = 0
    while image.HasMetaDataKey(f"Segment{n}_ID") or image.HasMetaDataKey(f"Segment{n}_Name"):
        indices.append(n)
        n += 1
    check_mask_count(len(indices), ct.geometry.shape, settings, where, "segments")
    table = normalise_label_table(label_table)
    placed_layers: dict[int, tuple[np.ndarray, list[str]]] = {}
    masks: list[LesionMask] = []
    for n in indices:
        prefix = f"Segment{n}_"
        name = _meta(image, prefix + "Name") or _meta(image, prefix + "ID") or str(n + 1)
        value = _int(_meta(image, prefix + "LabelValue"), n + 1, where, prefix + "LabelValue")
        layer = _int(_meta(image, prefix + "Layer"), 0, where, prefix + "Layer")
        if not 0 <= layer < n_layers:
            raise MaskError(
                f"{where}: {prefix}Layer: expected a layer in 0..{n_layers - 1}, got {layer}", path=where
            )
        if layer not in placed_layers:
            scalar = image if n_layers == 1 else sitk.VectorIndexSelectionCast(image, layer)
            placed_layers[layer] = place_on_ct_grid(scalar, path, ct, settings)
        values, notes = placed_layers[layer]
        box = tight_box(values == value)
        crop = values[box] == value if box is not None else np.zeros((0, 0, 0), dtype=bool)
        offset = (box[0].start, box[1].start, box[2].start) if box is not None else (0, 0, 0)
        category, prop = parse_terminology(_meta(image, prefix + "Tags"))
        colour = None
        try:
            rgb = [float(c) for c in _meta(image, prefix + "Color").split()]
            colour = (rgb[0], rgb[1], rgb[2]) if len(rgb) == 3 else None
        except ValueError:
            colour = None
        if crop.size == 0:
            log.warning(
                "%s: segment %r (value %d, layer %d) has no voxel on the CT grid", where, name, value, layer
            )
            continue
        is_lesion, rule = classify_structure(
            name=name,
            category_code=category[1],
            category_meaning=category[2],
            property_meaning=prop[2],
            settings=settings,
        )
        lesion_id, organ, is_ln = table.get(value, (None, "", False)) if n_layers == 1 else (None, "", False)
        if lesion_id is not None:
            is_lesion, rule = True, f"label {value} listed in the manifest as lesion {lesion_id}"
        terminology = " / ".join(f"{c[0]}^{c[1]}^{c[2]}" for c in (category, prop) if any(c))
        base: dict[str, Any] = dict(
            geometry=ct.geometry,
            source=MaskSource.LABELMAP,
            source_path=where,
            organ=organ,
            is_lymph_node=is_ln,
            label_value=value,
            notes=tuple(notes + ([f"layer {layer}"] if n_layers > 1 else [])),
            structure_type=category[2],
            is_lesion=is_lesion,
            lesion_rule=rule,
            terminology=terminology,
            color_rgb=colour,
        )
        if not split_components:
            masks.append(LesionMask(crop=crop, offset=offset, label=name, lesion_id=lesion_id, **base))
            continue
        parts = connected_components(crop, settings, where, grid_shape=ct.geometry.shape)
        for k, part in enumerate(parts, start=1):
            masks.append(
                LesionMask(
                    crop=part,
                    offset=offset,
                    label=f"{name}.{k}",
                    lesion_id=f"{lesion_id}.{k}" if lesion_id else None,
                    **base,
                )
            )
    if not masks:
        raise MaskError(
            f"{where}: expected at least one non-empty segment, got none on the CT grid", path=where
        )
    return masks
