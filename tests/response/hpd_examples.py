"""Builders of small measurement/clinical tables for the worked examples of specs/hpd_kinetics.md section
4."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hpd_imaging.course.table import MEASUREMENT_REQUIRED
from hpd_imaging.response import ResponseConfig, run_response

MEAS_COLUMNS = [*MEASUREMENT_REQUIRED, "volume_mm3"]

# HPD definition keys the spec asks for: section 2 / section A, then the ones issue #11 added
SECTION_A_KEYS = [
    "champiat2017",
    "saada_bouzid2017",
    "kato2017",
    "ferrara2018",
    "lo_russo2019",
    "kim2019",
    "matos2020",
    "kas2020",
    "gandara2021",
    "champiat2017_vol",
    "ferrara2018_vol",
    "saada_bouzid2017_vol",
]
ISSUE11_KEYS = [
    "lahmar2016",
    "kanjanapan2019",
    "sasaki2019",
    "ji2019",
    "refae2020",
    "tunali2019",
    "kim_y2019_volumetric",
]


def lesion(
    pid: str,
    lesion_id: str,
    sizes: dict[str, float],
    *,
    organ: str = "lung",
    node: bool = False,
    volumes: dict[str, float] | None = None,
    sa: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Rows of one lesion: ``sizes`` maps ISO date -> RECIST diameter (LD, or short axis for a node)."""
    rows = []
    for date, d in sizes.items():
        rows.append(
            {
                "patient_id": pid,
                "scan_date": date,
                "lesion_id": lesion_id,
                "organ": organ,
                "is_lymph_node": node,
                "longest_axial_diameter_mm": d * 1.5 if node else d,
                "short_axis_mm": d if node else (sa or {}).get(date, d * 0.6),
                "volume_mm3": None if volumes is None else volumes.get(date),
            }
        )
    return rows


def run(rows: list[dict], clinical: list[dict], cfg: ResponseConfig | None = None):
    return run_response(
        pd.DataFrame(rows, columns=MEAS_COLUMNS),
        pd.DataFrame(clinical),
        cfg if cfg is not None else ResponseConfig(),
    )


def one(rows: list[dict], clinical: list[dict], cfg: ResponseConfig | None = None) -> dict[str, Any]:
    result = run(rows, clinical, cfg)
    assert len(result.kinetics) == 1
    return result.kinetics.iloc[0].to_dict()


def labels(row: dict[str, Any]) -> dict[str, str]:
    return {k[4:]: v for k, v in row.items() if k.startswith("hpd_") and not k.endswith("_reason")}
