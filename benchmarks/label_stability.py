"""Benchmark 6: the label-stability Monte Carlo (``response/stability.py``) on a kinetics table.

Goal (issue 17): a 1,000-patient kinetics table with the stability analysis in under a minute on 2 cores.
Baseline: the same table without it (``stability.draws = 0``), i.e. what ``hpd-imaging kinetics`` cost
before; the figure is the ratio of the two, plus the absolute seconds of the analysed run.

Data: ``hpd_imaging.synth.measurement_cohort`` (1-3 targets, three scans, measurements drawn around exact
sizes with the literature error), a hard case for the sequential stop, since its growth rates are spread
around the HPD thresholds. Same answer: the labels of both runs are identical (the analysis only adds
columns), and the stability run with one and with ``workers`` processes gives the same table.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks._common import BenchOptions, figure, log, result_head, timestamp, write_result

NAME = "label_stability"


def run(opts: BenchOptions) -> dict[str, Any]:
    import pandas as pd

    from hpd_imaging.response import run_response
    from hpd_imaging.settings.hpd import ResponseConfig
    from hpd_imaging.synth.measurement_cohort import measurement_cohort

    started = timestamp()
    n_patients = 100 if opts.quick else 1000
    workers = 2
    cohort = measurement_cohort(n_patients, seed=2026)
    cases = {
        "deterministic": ResponseConfig(stability={"draws": 0}),
        "stability_1_process": ResponseConfig(),
        f"stability_{workers}_processes": ResponseConfig(stability={"workers": workers}),
    }
    seconds: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    for name, cfg in cases.items():  # one repeat each: minutes per run at full size
        log(f"{NAME}: {n_patients} patients, {name}")
        t = time.perf_counter()
        tables[name] = run_response(cohort.measured, cohort.clinical, cfg).kinetics
        seconds[name] = time.perf_counter() - t
    labels = [c for c in tables["deterministic"].columns if c.startswith("hpd_") and c.count("_") >= 1]
    labels = [c for c in labels if not c.endswith(("_reason", "_probability", "_stable"))]
    same_labels = all(tables["deterministic"][c].equals(tables["stability_1_process"][c]) for c in labels)
    parallel = tables[f"stability_{workers}_processes"]
    same_parallel = parallel.equals(tables["stability_1_process"])
    draws = tables["stability_1_process"]["stability_draws"].astype(int)
    analysed = seconds[f"stability_{workers}_processes"]
    payload = {
        **result_head(NAME, "Label stability Monte Carlo vs the deterministic kinetics table", started),
        "schema_version": 1,
        "options": {"n_patients": n_patients, "workers": workers, "cpu_count": os.cpu_count()},
        "figures": [
            figure(
                f"{n_patients}-patient kinetics table with stability, {workers} processes: seconds",
                analysed,
                unit="s",
                goal="< 60 s for 1,000 patients on 2 cores" if not opts.quick else None,
                met=(analysed < 60.0) if not opts.quick else None,
            ),
            figure(
                f"stability ({workers} processes) / deterministic",
                analysed / seconds["deterministic"],
            ),
            figure(
                "stability (1 process) / deterministic",
                seconds["stability_1_process"] / seconds["deterministic"],
            ),
        ],
        "measurements": {name: round(s, 3) for name, s in seconds.items()},
        "checks": {
            "labels_unchanged_by_the_analysis": same_labels,
            "parallel_equals_serial": same_parallel,
            "mean_draws_per_patient": round(float(draws.mean()), 1),
            "share_stopped_early": round(float((draws < draws.max()).mean()), 3),
        },
        "notes": "One repeat per case (minutes at full size); the machine is shared, see machine.load_avg.",
    }
    write_result(opts.results_dir, NAME, payload)
    assert same_labels, "the stability analysis changed a label"
    assert same_parallel, "worker processes changed the table"
    return payload
