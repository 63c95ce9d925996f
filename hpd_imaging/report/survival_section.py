"""The report's survival section, read from the outcome stage's files in the output folder.

The report is rendered from tables (report/inputs.py); the survival tables and Kaplan-Meier PNGs are written
by the outcome stage before the report (report/outcome.py), so the section reads them back from ``out_dir``: a
report re-rendered from an output folder shows the same section.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.outcome.survival import RANKING_CAVEAT
from hpd_imaging.report.outcome import PLOT_DIR, km_png_name


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(value: Any, digits: int = 2) -> str:
    f = _num(value)
    return "–" if f is None else f"{f:.{digits}f}"


def _p(value: Any) -> str:
    f = _num(value)
    return "–" if f is None else ("< 0.001" if f < 0.001 else f"{f:.3f}")


def survival_context(out_dir: Path | None) -> dict[str, Any] | None:
    """Template context of the section, or None when the run wrote no survival table."""
    if out_dir is None:
        return None
    out_dir = Path(out_dir)
    ranking_path, survival_path = out_dir / "survival_ranking.csv", out_dir / "survival.csv"
    if not ranking_path.exists() or not survival_path.exists():
        return None
    ranking = pd.read_csv(ranking_path, dtype={"definition": str}, keep_default_na=False)
    survival = pd.read_csv(survival_path, dtype={"definition": str}, keep_default_na=False).set_index(
        "definition"
    )
    rows, plots = [], []
    for rec in ranking.to_dict("records"):
        key = str(rec["definition"])
        s = survival.loc[key] if key in survival.index else {}
        ci = (
            f"{_fmt(rec['hr'])} ({_fmt(rec['hr_ci_low'])}–{_fmt(rec['hr_ci_high'])})"
            if _num(rec["hr"]) is not None
            else "–"
        )
        adj = (
            f"{_fmt(s['hr_adjusted'])} ({_fmt(s['hr_adjusted_ci_low'])}–{_fmt(s['hr_adjusted_ci_high'])})"
            if len(s) and _num(s["hr_adjusted"]) is not None
            else "–"
        )
        rows.append(
            {
                "rank": str(int(float(rec["rank"]))) if _num(rec["rank"]) is not None else "–",
                "definition": key,
                "n": f"{rec['n_hpd']} / {rec['n_no_hpd']}",
                "events": f"{s['events_hpd']} / {s['events_no_hpd']}" if len(s) else "–",
                "medians": f"{_fmt(s['median_os_hpd_months'], 1)} / {_fmt(s['median_os_no_hpd_months'], 1)}"
                if len(s)
                else "–",
                "chi2": _fmt(rec["logrank_chi2"]),
                "p": _p(rec["logrank_p"]),
                "hr": ci,
                "excludes_1": str(rec["hr_ci_excludes_1"]).lower() == "true",
                "hr_adjusted": adj,
                "adjusted_for": rec["adjusted_for"] or "",
                "c_index": _fmt(rec["c_index"])
                + (
                    f" ({_fmt(rec.get('c_index_ci_low'))}–{_fmt(rec.get('c_index_ci_high'))})"
                    if _num(rec.get("c_index_ci_low")) is not None
                    else ""
                ),
                "note": rec["note"] or "",
            }
        )
        png = out_dir / PLOT_DIR / km_png_name("os", key)
        if png.exists():
            plots.append(
                {
                    "definition": key,
                    "src": "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode(),
                }
            )
    excluded: dict[str, int] = {}
    n_included = None
    landmark_path = out_dir / "survival_landmark.csv"
    if landmark_path.exists():
        landmark = pd.read_csv(landmark_path, dtype=str, keep_default_na=False)
        reasons = [r for r in landmark["excluded_reason"] if r]
        excluded = {r: reasons.count(r) for r in sorted(set(reasons))}
        n_included = len(landmark) - len(reasons)
    return {
        "caveat": RANKING_CAVEAT,
        "rows": rows,
        "plots": plots,
        "excluded": excluded,
        "n_included": n_included,
        "has_pfs": (out_dir / "survival_pfs.csv").exists(),
    }
