"""Loaders: CT series -> :class:`CtImage`; SEG / RTSTRUCT / label maps -> :class:`LesionMask` lists.

Mask readers are looked up in the explicit registry :data:`MASK_READERS` (ARCHITECTURE.md: "explicit
registries, no magic"); :func:`detect_mask_source` decides the kind from the DICOM Modality / SOP Class
UID or, for non-DICOM files, the file's magic bytes (io/filetype.py; never the name).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpd_imaging.domain import CtImage, LesionMask, MaskSource
from hpd_imaging.errors import MaskError
from hpd_imaging.io._dicomread import BoundedReader
from hpd_imaging.io.ct import load_ct
from hpd_imaging.io.filetype import VOLUME_KINDS, FileKind, sniff
from hpd_imaging.io.labelmap import LabelTable, connected_components, read_labelmap
from hpd_imaging.io.rtstruct import read_rtstruct
from hpd_imaging.io.seg import read_seg
from hpd_imaging.settings.io import DEFAULT_LOADER_SETTINGS, LoaderSettings

__all__ = [
    "MASK_READERS",
    "LoaderSettings",
    "detect_mask_source",
    "load_ct",
    "load_masks",
    "read_labelmap",
    "read_rtstruct",
    "read_seg",
]

MaskReader = Callable[..., list[LesionMask]]

# source kind -> reader; each takes (path, ct, *, settings=..., **options) and returns masks on ct's grid
MASK_READERS: dict[MaskSource, MaskReader] = {
    MaskSource.SEG: read_seg,  # DICOM SEG via highdicom (PS3.3 A.51)
    MaskSource.RTSTRUCT: read_rtstruct,  # RT Structure Set (PS3.3 A.19), even-odd pixel-centre fill
    MaskSource.LABELMAP: read_labelmap,  # NIfTI / NRRD / MetaImage via SimpleITK
}

_SEG_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
_RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def detect_mask_source(path: Path | str) -> MaskSource:
    """SEG, RTSTRUCT or LABELMAP, from the file's content: NIfTI/NRRD/MetaImage magic, else the DICOM header
    (Modality, SOPClassUID). The name is never consulted (an NRRD file called ``.dcm`` is a label map)."""
    import pydicom

    path = Path(path)
    kind = sniff(path)
    if kind in VOLUME_KINDS:
        return MaskSource.LABELMAP
    if kind is FileKind.UNKNOWN:
        raise MaskError(
            f"{path}: expected a DICOM SEG, RTSTRUCT or a NIfTI/NRRD label map, got a file that is none of "
            "them (no DICOM preamble or dataset, no NRRD/NIfTI/MetaImage header)",
            path=str(path),
        )
    try:
        with BoundedReader(path) as fp:  # a corrupt length must not allocate gigabytes
            ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=["Modality", "SOPClassUID"])
            modality = str(ds.get("Modality", "") or "").upper()
            sop_class = str(ds.get("SOPClassUID", "") or "")
    except Exception as exc:  # pydicom raises many types on damaged files
        raise MaskError(
            f"{path}: expected a DICOM SEG, RTSTRUCT or a NIfTI/NRRD label map, got an unreadable "
            f"file ({type(exc).__name__}: {exc})",
            path=str(path),
        ) from exc
    if modality == "SEG" or sop_class in _SEG_SOP_CLASSES:
        return MaskSource.SEG
    if modality == "RTSTRUCT" or sop_class == _RTSTRUCT_SOP_CLASS:
        return MaskSource.RTSTRUCT
    raise MaskError(
        f"{path}: expected a DICOM SEG or RTSTRUCT, got Modality {modality or '(blank)'} / SOP class "
        f"{sop_class or '(blank)'}",
        path=str(path),
    )


def load_masks(
    path: Path | str,
    ct: CtImage,
    *,
    settings: LoaderSettings = DEFAULT_LOADER_SETTINGS,
    label_table: LabelTable | None = None,
    split_components: bool = False,
    source: MaskSource | None = None,
    **options: Any,
) -> list[LesionMask]:
    """Read a segmentation file onto ``ct``'s grid; one LesionMask per segment / ROI / label value.

    ``split_components`` splits every lesion into its 26-connected components (largest first), labelled
    ``"<label>.<n>"``. ``label_table`` applies to label maps (masks.csv rows).
    """
    kind = source or detect_mask_source(path)
    reader = MASK_READERS[kind]
    if kind is MaskSource.LABELMAP:
        return reader(
            path, ct, settings=settings, label_table=label_table, split_components=split_components, **options
        )
    masks = reader(path, ct, settings=settings, **options)
    if not split_components:
        return masks
    from dataclasses import replace

    out: list[LesionMask] = []
    for m in masks:
        parts = connected_components(m.crop, settings, str(path), grid_shape=m.geometry.shape)
        if len(parts) == 1:
            out.append(m)
            continue
        out.extend(
            replace(
                m,
                crop=part,  # a part of the crop: same offset, trimmed to its own box by LesionMask
                label=f"{m.label}.{n}",
                lesion_id=f"{m.lesion_id}.{n}" if m.lesion_id else None,
            )
            for n, part in enumerate(parts, start=1)
        )
    return out
