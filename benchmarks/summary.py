"""benchmarks/results/summary.md: one table of every figure (ratio) from the result files present."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(value: float, unit: str) -> str:
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text}x" if unit == "x" else f"{text} {unit}"


def summary_markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Benchmark summary", ""]
    loads = {r["name"]: r["machine"]["load_avg_1_5_15"] for r in results}
    if results:
        m = results[0]["machine"]
        lines += [
            f"Machine: {m['usable_cores']} usable cores, Python {m['python']}; versions: "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
            "Load average (1/5/15 min) when each benchmark finished: "
            + "; ".join(f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in loads.items()) + ".",
            "",
            "Every figure is a ratio of medians measured in the same run (see benchmarks/README.md).",
            "",
            "| benchmark | figure | value | goal | met | context |",
            "|---|---|---|---|---|---|",
        ]
    for r in results:
        for f in r["figures"]:
            met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            lines.append(
                f"| {r['name']} | {f['label']} | {_fmt(f['value'], f['unit'])} | {f['goal'] or ''} | {met} | "
                f"{f['context']} |"
            )
    lines.append("")
    return "\n".join(lines)


ORDER = ("ct_load", "archive_index", "measure_diameters", "radiomics_overhead", "end_to_end")


def write_summary(results_dir: Path) -> Path:
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}
    results = [found[n] for n in ORDER if n in found] + [v for k, v in found.items() if k not in ORDER]
    path = results_dir / "summary.md"
    path.write_text(summary_markdown(results))
    return path
