"""Pin the values highdicom takes from the clock or a random generator, so that written DICOM is byte-stable.

highdicom stamps InstanceCreationDate/Time and ContributionDateTime with now() and mints a random
DimensionOrganizationUID for a SEG. Every writer of ours (pipeline outputs, synthetic archives, fuzz seeds)
promises identical files for identical inputs, so each overwrites those values through this one function. The
provenance of *when* something was written lives in run.json / ground_truth.json, not in the DICOM headers.
Kept out of hpd_imaging.io so that importing it pulls in no loader.
"""

from __future__ import annotations

from pydicom import Dataset


def pin_creation_stamps(
    ds: Dataset, date: str, time: str, *, dimension_organization_uid: str | None = None
) -> None:
    """Set the creation date/time (DICOM DA ``YYYYMMDD`` and TM ``HHMMSS``) and, for a SEG, the dimension
    organization UID in both sequences that carry it."""
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = date + time
    if dimension_organization_uid is not None:
        for name in ("DimensionOrganizationSequence", "DimensionIndexSequence"):
            for item in ds.get(name, []):
                item.DimensionOrganizationUID = dimension_organization_uid
