"""The BINARY SEG of one timepoint: one segment per lesion with voxels, in the order of the patient's
lesion list.

BINARY with non-overlapping segments is what OHIF v3 and 3D Slicer open reliably (specs/dicom_io_notes.md
3.1).
Each segment carries the lesion's tracking identifier and UID, its colour and the finding code shared with
the SR
(see :mod:`.codes`), and the SEG names its creator (ContentCreatorName, which dcmqi warns about when absent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom

from hpd_imaging import __version__
from hpd_imaging.domain import CtImage, Lesion, LesionMask

from . import codes as sr_codes
from ._common import uid_for

MANUFACTURER = "hpd-imaging"
SEG_SERIES_NUMBER = 9001


def build_segmentation(
    *,
    slices: list[pydicom.Dataset],
    ct: CtImage,
    segments: Sequence[tuple[Lesion, LesionMask, int]],
    series_key: tuple[str, ...],
    scan_date: dt.date,
    content_time: dt.time,
    content_creator_name: str,
) -> hd.seg.Segmentation:
    """``segments`` = (lesion, its mask on the CT grid, its position in the patient's lesion list), in
    order."""
    descriptions = []
    # a SEG of the CT's slices holds one frame per source image: the whole grid is needed here (highdicom
    # omits the empty frames when it encodes); each mask's crop is written into its box
    pixels = np.zeros((*ct.geometry.shape, len(segments)), dtype=np.uint8)
    for n, (lesion, mask, index) in enumerate(segments, start=1):
        if not mask.is_empty:
            pixels[(*mask.box, n - 1)] = mask.crop
        region = sr_codes.organ_code(lesion)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=n,
                segment_label=lesion.lesion_id,
                segmented_property_category=sr_codes.FINDING_CATEGORY,
                segmented_property_type=sr_codes.FINDING_TYPE,
                # The masks come from the input archive (reader or annotator unknown to us): we re-encode
                # them,
                # so MANUAL is the least wrong generic claim; our software is named in the header.
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
                tracking_uid=lesion.tracking_uid,
                tracking_id=sr_codes.tracking_identifier_text(lesion),
                anatomic_regions=[region] if region is not None else None,
                display_color=sr_codes.lesion_colour(index),
            )
        )
    return hd.seg.Segmentation(
        source_images=slices,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=uid_for("seg-series", *series_key),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=uid_for("seg-instance", *series_key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="hpd-imaging",
        software_versions=__version__,
        device_serial_number="0",
        content_description="Lesions (tracked)",
        content_label="LESIONS",
        content_creator_name=content_creator_name,
        specific_character_set="ISO_IR 192",
        content_date=scan_date,
        content_time=content_time,
        series_description="hpd-imaging lesions",
    )
