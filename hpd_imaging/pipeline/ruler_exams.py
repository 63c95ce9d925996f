"""Exams measured on ruler SRs instead of masks (masks where they exist, rulers elsewhere): lesion rows.

A ruler (TID 1500 Long axis / Short axis / Length, io/rulers.py) gives the RECIST diameters of a lesion and
nothing else: the mask-derived columns of its rows are missing (empty cells), never 0. Ruler lesions join the
segmented lesions of the same patient through their tracking identifiers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from hpd_imaging.domain import Timepoint

logger = logging.getLogger(__name__)


#: pipeline.patient.error_row, passed in by the caller (importing it here would make an import cycle)
ErrorRow = Callable[..., dict[str, str]]


def ruler_rows(
    pid: str, tp: Timepoint, refs: list[Any], errors: list[dict[str, str]], error_row: ErrorRow
) -> list[dict[str, Any]] | None:
    """lesions.csv rows of an exam measured on ruler SRs (io/rulers.py); None when none could be read.

    A ruler has a long axis (and a short axis when measured), never a volume: the mask-derived columns are
    missing (empty cells), not 0.
    """
    from hpd_imaging.io.rulers import read_ruler_sr

    rows: list[dict[str, Any]] = []
    n_failed = 0
    for ref in refs:
        try:
            measurements = read_ruler_sr(ref.path)
        except Exception as exc:  # noqa: BLE001 - one bad SR is one row
            errors.append(error_row(pid, "load_masks", str(ref.path), exc))
            n_failed += 1
            continue
        for m in measurements:
            if m.scan_date != tp.scan_date:
                logger.info(
                    "patient %s: %s dated %s, filed with exam %s", pid, ref.path, m.scan_date, tp.scan_date
                )
            rows.append(
                {
                    "patient_id": pid,
                    "scan_date": tp.scan_date,
                    "lesion_id": m.lesion_id,
                    "organ": m.organ,
                    "is_lymph_node": m.is_lymph_node,
                    "is_new": False,
                    "longest_axial_diameter_mm": m.longest_axial_diameter_mm,
                    "short_axis_mm": m.short_axis_mm,
                    "series_uid": tp.ct.series_instance_uid,
                    "mask_source": "ruler_sr",
                    "label": m.lesion_id,
                    "lesion_rule": f"ruler measurement ({ref.path.name})",
                }
            )
    return None if n_failed == len(refs) else rows


def with_rulers(lesions: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``lesions`` plus the ruler rows, in the lesions.csv columns (mask-only columns left missing)."""
    if not rows:
        return lesions
    extra = pd.DataFrame(rows).reindex(columns=lesions.columns)
    extra["voxel_count"] = pd.array([None] * len(extra), dtype="Int64")
    extra["is_fragmented"] = False
    for column in ("longest_axial_diameter_mm", "short_axis_mm", "max_3d_diameter_mm", "volume_mm3"):
        extra[column] = pd.to_numeric(extra[column], errors="coerce").astype("float64")
    for column in ("mesh_volume_mm3", "surface_area_mm2", "sphericity"):
        extra[column] = extra[column].astype("float64")
    parts = [p for p in (lesions, extra) if len(p)]
    combined = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return combined.sort_values(["patient_id", "scan_date", "lesion_id"], kind="stable").reset_index(
        drop=True
    )


def check_ruler_identities(
    pid: str,
    lesions: pd.DataFrame,
    rows: list[dict[str, Any]],
    errors: list[dict[str, str]],
    error_row: ErrorRow,
) -> None:
    """Ruler lesions must carry the identities of the segmented lesions (declared tracking ids) to be one
    course with them; a ruler lesion whose id no segmented lesion has is reported."""
    known = set(lesions["lesion_id"]) if len(lesions) else set()
    for row in rows:
        if row["lesion_id"] not in known:
            errors.append(
                error_row(
                    pid,
                    "load_masks",
                    None,
                    f"ruler lesion {row['lesion_id']!r} of exam {row['scan_date']} matches no segmented "
                    f"lesion (ids {sorted(known)}); counted as a lesion of its own. Give rulers and segments "
                    "the same tracking identifiers to follow one lesion across both.",
                    severity="warning",
                )
            )
