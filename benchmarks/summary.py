"""benchmarks/results/summary.md: every figure (ratio) of the result files present, plus the absolute context
tables (times, files per second, growth with the archive, memory); also copied into benchmarks/README.md
between its ``<!-- results:start -->`` / ``<!-- results:end -->`` markers when the run wrote the committed
results folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ORDER = ("ct_load", "archive_index", "measure_diameters", "radiomics_overhead", "end_to_end", "real_size")
_MARKERS = re.compile(r"(<!-- results:start -->\n).*?(<!-- results:end -->)", re.DOTALL)


def _fmt(value: float, unit: str) -> str:
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text}x" if unit == "x" else f"{text} {unit}"


def _figures_table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| benchmark | figure | value | goal | met | context |", "|---|---|---|---|---|---|"]
    for r in results:
        for f in r["figures"]:
            met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            lines.append(
                f"| {r['name']} | {f['label']} | {_fmt(f['value'], f['unit'])} | {f['goal'] or ''} | {met} | "
                f"{f['context']} |"
            )
    return lines


def _context_tables(by_name: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    if "ct_load" in by_name:
        out += [
            "",
            "CT loading, median ms (daemonic worker: measured inside a daemonic process, as in a Dask worker;"
            " previous decoder: JPEG 2000 via pylibjpeg-openjpeg on a process pool, serial in a daemon):",
            "",
            "| series | ours | SimpleITK | pydicom loop | headers only | raw read | ours, daemonic worker | "
            "SimpleITK, daemonic worker | previous decoder | previous decoder, daemonic worker |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in by_name["ct_load"]["cases"]:
            t = {k: v["median_s"] * 1000 for k, v in c["timings"].items()}
            shape = "x".join(str(n) for n in c["checks"]["shape_kji"][::-1])
            cells = [
                t.get(k)
                for k in (
                    "hpd_imaging_load_ct",
                    "simpleitk_series_reader",
                    "pydicom_loop",
                    "pydicom_headers_only",
                    "raw_bytes_read_warm",
                    "daemon_hpd_imaging_load_ct",
                    "daemon_simpleitk_series_reader",
                    "hpd_imaging_previous_decoder",
                    "daemon_hpd_imaging_previous_decoder",
                )
            ]
            shown = " | ".join("" if v is None else f"{v:.0f}" for v in cells)
            out.append(f"| {shape} {c['compression']} | {shown} |")
    if "archive_index" in by_name:
        a = by_name["archive_index"]
        out += [
            "",
            f"Archive indexing, {a['n_files']} files, files per second:",
            "",
            "| " + " | ".join(a["files_per_s"]) + " |",
            "|" + "---|" * len(a["files_per_s"]),
            "| " + " | ".join(str(v) for v in a["files_per_s"].values()) + " |",
        ]
    if "measure_diameters" in by_name:
        out += [
            "",
            "Measurement, median ms:",
            "",
            "| lesion | surface vertices | hull diameter | brute-force diameter | measure_lesion |",
            "|---|---|---|---|---|",
        ]
        for c in by_name["measure_diameters"]["cases"]:
            t = {k: v["median_s"] * 1000 for k, v in c["timings"].items()}
            out.append(
                f"| {c['diameter_mm']:g} mm at {c['spacing_mm']:g} mm | {c['surface_vertices']} | "
                f"{t['hull_max_diameter']:.1f} | {t['brute_force_max_diameter']:.0f} | "
                f"{t['measure_lesion']:.0f} |"
            )
    if "radiomics_overhead" in by_name:
        out += [
            "",
            "Radiomics, ms per lesion (median):",
            "",
            "| settings | plain pyradiomics | ours, fast shape | ours, extract_lesion_features | "
            "plain pyradiomics on the lesion box |",
            "|---|---|---|---|---|",
        ]
        for b in by_name["radiomics_overhead"]["settings_blocks"]:
            m = b["ms_per_lesion"]
            out.append(
                f"| {b['settings']} | {m['plain_pyradiomics']:.0f} | {m['ours_fast_shape']:.0f} | "
                f"{m['ours_extract_lesion_features']:.0f} | "
                f"{m.get('plain_pyradiomics_on_crop', float('nan')):.0f} |"
            )
    if "end_to_end" in by_name:
        e = by_name["end_to_end"]
        out += [
            "",
            f"End to end (`hpd-imaging run`), import baseline {e['import_baseline_rss_mib']:.0f} MiB:",
            "",
            "| patients | workers | wall s | patients/min | mean per patient: load / track+measure / "
            "radiomics / outputs s | peak RSS per worker MiB | largest patient's images MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in e["runs"]:
            pp = r["per_patient_mean_s"]
            rss = r["worker_peak_rss_mib"] or [r["driver_peak_rss_mib"]]
            out.append(
                f"| {r['patients']} | {r['workers']} | {r['wall_s']:.0f} | {r['patients_per_min']:.2f} | "
                f"{pp['load_s']:.1f} / {pp['track_measure_s']:.1f} / {pp['radiomics_s']:.1f} / "
                f"{pp['outputs_s']:.1f} | {', '.join(f'{x:.0f}' for x in rss)}"
                f"{'' if r['worker_peak_rss_mib'] else ' (in-process)'} | "
                f"{r['largest_patient_image_mib']:.0f} |"
            )
    if "real_size" in by_name:
        out += _real_size_table(by_name["real_size"])
    return out


def _real_size_table(r: dict[str, Any]) -> list[str]:
    """Per compression: ours vs the plain script, stage by stage, with CPU seconds, peak memory and load."""
    out = [
        "",
        "Real size (`hpd-imaging run` vs the plain SimpleITK + highdicom + pyradiomics script on the same "
        "number of workers), per patient means from run.json and the script's own timers:",
        "",
        "| archive | side | wall s | CPU s | loading s | track+measure s | radiomics s | outputs s | "
        "peak RSS per worker MiB | load avg (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for compression, run in r.get("runs", {}).items():
        o, p = run["ours"][-1], run["plain"][-1]
        om, pm = run["ours_per_patient_mean_s"], run["plain_per_patient_mean_s"]
        peaks = run.get("worker_peak_rss_mib", {})
        name = f"{run['patients']} x {run['timepoints']} {compression}"
        load_o = "-".join(f"{x[0]:.1f}" for x in (o.get("load_avg_before"), o.get("load_avg_after")) if x)
        load_p = "-".join(f"{x[0]:.1f}" for x in (p.get("load_avg_before"), p.get("load_avg_after")) if x)
        out.append(
            f"| {name} | ours | {o['wall_s']:.0f} | {o['cpu_s']:.0f} | {om['load_s']:.1f} | "
            f"{om['track_measure_s']:.1f} | {om['radiomics_s']:.1f} | {om['outputs_s']:.1f} | "
            f"{', '.join(f'{x:.0f}' for x in peaks.get('ours', []))} | {load_o} |"
        )
        out.append(
            f"| {name} | plain | {p['wall_s']:.0f} | {p['cpu_s']:.0f} | {pm['load_s']:.1f} | - | "
            f"{pm['radiomics_s']:.1f} | - | {', '.join(f'{x:.0f}' for x in peaks.get('plain', []))} | "
            f"{load_p} |"
        )
    return out


def summary_markdown(results: list[dict[str, Any]]) -> str:
    lines = ["# Benchmark summary", ""]
    if not results:
        return "\n".join([*lines, "No results.", ""])
    m = results[0]["machine"]
    lines += [
        f"Machine: {m['usable_cores']} usable cores, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        "Load average (1/5/15 min) when each benchmark finished: "
        + "; ".join(
            f"{r['name']} {'/'.join(str(x) for x in r['machine']['load_avg_1_5_15'])}" for r in results
        )
        + f". Runs finished {results[-1]['finished']}.",
        "",
        "Every figure is a ratio of medians measured in the same run (method: benchmarks/README.md).",
        "",
        *_figures_table(results),
        *_context_tables({r["name"]: r for r in results}),
        "",
    ]
    return "\n".join(lines)


def write_summary(results_dir: Path, readme: Path | None = None) -> Path:
    """Write summary.md from the JSON files in ``results_dir``; refresh ``readme``'s results section too."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))}
    results = [found[n] for n in ORDER if n in found] + [v for k, v in found.items() if k not in ORDER]
    text = summary_markdown(results)
    path = results_dir / "summary.md"
    path.write_text(text)
    if readme is not None and readme.exists():
        body = text.split("\n", 2)[2]  # without the "# Benchmark summary" title
        old = readme.read_text()
        new = _MARKERS.sub(lambda mt: mt.group(1) + body + mt.group(2), old)
        if new != old:
            readme.write_text(new)
    return path
