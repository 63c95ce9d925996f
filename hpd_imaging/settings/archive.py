"""Settings of archive discovery (owned by the archive stage).

Every rule the scanner applies that a site might want to change is a field here, so that a run's config hash
records how series were grouped, split, chosen and paired.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpd_imaging.settings.base import Section

# Order in which the CT choice rules are applied when no segmentation points at a series (first rule that
# separates the best candidate from the runner-up decides; its name is written to series.csv).
ChoiceRule = Literal[
    "axial", "original_image", "soft_tissue_kernel", "most_slices", "thinnest_slices", "lowest_series_number"
]


class ArchiveSettings(Section):
    use_cache: bool = True  # header-index cache (SQLite) in the output folder
    cache_file_name: str = "header_index.sqlite"
    # a series whose PatientID is blank: take the name of its top folder under the archive ("folder") and
    # record an issue, or leave it out of the index ("skip")
    missing_patient_id: Literal["folder", "skip"] = "folder"
    # smallest stack that counts as a CT volume (single slices and 2-slice scouts are not volumes)
    min_slices: int = Field(default=2, ge=1)
    # slice-normal angle from the patient z axis (degrees) under which a stack counts as axial
    axial_tolerance_deg: float = Field(default=10.0, ge=0.0, le=90.0)
    choice_rules: tuple[ChoiceRule, ...] = (
        "axial",
        "original_image",
        "soft_tissue_kernel",
        "most_slices",
        "thinnest_slices",
        "lowest_series_number",
    )
    # tolerance (mm) when comparing positions: duplicate slices, mask planes inside a CT's extent
    position_tolerance_mm: float = Field(default=0.01, gt=0.0)
    # optional label-map manifest at the archive root (patient_id, series_uid or folder, mask_path, label...)
    manifest_name: str = "masks.csv"
    # optional manifest of an archive without DICOM: NIfTI/NRRD CTs with patient, date and label maps
    # (patient_id, scan_date, image_path, mask_path, label, lesion_id, organ, is_lymph_node)
    images_manifest_name: str = "images.csv"
    clinical_name: str = "clinical.csv"
    labelmap_suffixes: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
    # how many folder levels above a label map to look for the exam it belongs to (naming convention)
    labelmap_search_levels: int = Field(default=2, ge=0, le=5)
    # header reading: 1 = in this process; >1 = a process pool (worth it on big cold archives only)
    workers: int = Field(default=1, ge=1)
