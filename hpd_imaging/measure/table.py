"""lesions.csv: one row per lesion per timepoint, the input schema of the kinetics stage."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from hpd_imaging.domain import PatientCourse

LESIONS_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "scan_date",
    "lesion_id",
    "organ",
    "is_lymph_node",
    "is_new",
    "longest_axial_diameter_mm",
    "short_axis_mm",
    "max_3d_diameter_mm",
    "volume_mm3",
    "voxel_count",
    "mesh_volume_mm3",
    "surface_area_mm2",
    "sphericity",
    "is_fragmented",
    "series_uid",
    "mask_source",
    "label",
    "lesion_rule",
    # measurement uncertainty (1 SD) and its source (issue 17; measure/uncertainty.py): read back by the
    # kinetics stage, so that labels computed from lesions.csv know the grid error of each mask
    "longest_axial_diameter_sd_mm",
    "short_axis_sd_mm",
    "volume_sd_mm3",
    "uncertainty_source",
)

_DTYPES = {
    "patient_id": "string",
    "lesion_id": "string",
    "organ": "string",
    "is_lymph_node": "bool",
    "is_new": "bool",
    "longest_axial_diameter_mm": "float64",
    "short_axis_mm": "float64",
    "max_3d_diameter_mm": "float64",
    "volume_mm3": "float64",
    "voxel_count": "int64",
    "mesh_volume_mm3": "float64",
    "surface_area_mm2": "float64",
    "sphericity": "float64",
    "is_fragmented": "bool",
    "series_uid": "string",
    "mask_source": "string",
    "label": "string",
    "lesion_rule": "string",
    "longest_axial_diameter_sd_mm": "float64",
    "short_axis_sd_mm": "float64",
    "volume_sd_mm3": "float64",
    "uncertainty_source": "string",
}


def lesions_table(courses: Iterable[PatientCourse]) -> pd.DataFrame:
    """Tidy table of every measurement of every course, sorted by patient, date and lesion.

    ``scan_date`` stays a ``datetime.date`` (written as ISO text in CSV). The patient id comes from the
    course when a measurement does not carry it.
    """
    rows = []
    for course in courses:
        for m in course.measurements:
            rows.append(
                {
                    "patient_id": m.patient_id or course.patient_id,
                    "scan_date": m.scan_date,
                    "lesion_id": m.lesion_id,
                    "organ": m.organ,
                    "is_lymph_node": bool(m.is_lymph_node),
                    "is_new": bool(m.is_new),
                    "longest_axial_diameter_mm": m.longest_axial_diameter_mm,
                    "short_axis_mm": m.short_axis_mm,
                    "max_3d_diameter_mm": m.max_3d_diameter_mm,
                    "volume_mm3": m.volume_mm3,
                    "voxel_count": m.voxel_count,
                    "mesh_volume_mm3": m.mesh_volume_mm3,
                    "surface_area_mm2": m.surface_area_mm2,
                    "sphericity": m.sphericity,
                    "is_fragmented": bool(m.is_fragmented),
                    "series_uid": m.series_uid,
                    "mask_source": m.mask_source,
                    "label": m.label,
                    "lesion_rule": m.lesion_rule,
                    "longest_axial_diameter_sd_mm": m.longest_axial_diameter_sd_mm,
                    "short_axis_sd_mm": m.short_axis_sd_mm,
                    "volume_sd_mm3": m.volume_sd_mm3,
                    "uncertainty_source": m.uncertainty_source,
                }
            )
    table = pd.DataFrame(rows, columns=list(LESIONS_COLUMNS))
    table = table.astype(_DTYPES)
    if len(table):
        table = table.sort_values(["patient_id", "scan_date", "lesion_id"], kind="stable").reset_index(
            drop=True
        )
    return table
