"""The label-stability part of report.html (issue 17): which labels the measurement error could flip.

Reads the stability columns of kinetics.csv (``hpd_<key>_stable``, ``hpd_<key>_probability``,
``uncertainty_source``, ``stability_draws``; response/stability.py) and returns the template context: a cohort
table (per definition: evaluable, stable and fragile labels) and, per patient, the fragile labels with their
probability of HPD. A label is *fragile* when it is evaluable and fewer than the configured share of draws
agree with it. None when the table has no stability columns (analysis off), so the section is left out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN (an empty cell read by pandas) is missing


def stability_context(kinetics: pd.DataFrame, definitions: list[str]) -> dict[str, Any] | None:
    keys = [k for k in definitions if f"hpd_{k}_stable" in kinetics.columns]
    if not keys or "stability_draws" not in kinetics.columns:
        return None
    draws = [d for d in (_number(v) for v in kinetics["stability_draws"]) if d]
    if not draws:
        return None
    fragile: dict[str, list[dict[str, Any]]] = {}
    cohort = []
    for key in keys:
        n_eval = n_stable = 0
        names = []
        for _, row in kinetics.iterrows():
            label = str(row[f"hpd_{key}"])
            if label not in ("hpd", "no_hpd"):
                continue
            n_eval += 1
            if _is_true(row[f"hpd_{key}_stable"]):
                n_stable += 1
                continue
            pid = str(row["patient_id"])
            names.append(pid)
            fragile.setdefault(pid, []).append(
                {
                    "definition": key,
                    "label": label,
                    "probability": _number(row.get(f"hpd_{key}_probability")),
                }
            )
        cohort.append(
            {
                "definition": key,
                "n_evaluable": n_eval,
                "n_stable": n_stable,
                "n_fragile": n_eval - n_stable,
                "fragile_patients": ", ".join(names),
            }
        )
    sources = sorted({str(v) for v in kinetics.get("uncertainty_source", pd.Series(dtype=object)) if v})
    return {
        "cohort": cohort,
        "fragile": fragile,
        "cells": {(pid, item["definition"]) for pid, items in fragile.items() for item in items},
        "draws_max": int(max(draws)),
        "sources": ", ".join(s for s in sources if s not in ("None", "nan")),
    }
