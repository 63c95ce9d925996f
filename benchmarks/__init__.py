"""Reproducible benchmarks of hpd-imaging against the tools a user would otherwise use.

Run everything with ``uv run python -m benchmarks`` (``--quick`` for a smoke run); method in README.md.
Each module has ``run(opts: BenchOptions) -> dict`` that writes ``results/<NAME>.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import (
    archive_index,
    ct_load,
    end_to_end,
    label_stability,
    mask_load,
    measure_diameters,
    radiomics_overhead,
    real_size,
)
from benchmarks._common import BenchOptions

#: name -> run function, in the order ``python -m benchmarks`` runs them
BENCHMARKS: dict[str, Callable[[BenchOptions], dict[str, Any]]] = {
    ct_load.NAME: ct_load.run,
    mask_load.NAME: mask_load.run,  # SEG reading + the 7-litre memory-budget case (minutes)
    archive_index.NAME: archive_index.run,
    measure_diameters.NAME: measure_diameters.run,
    radiomics_overhead.NAME: radiomics_overhead.run,
    end_to_end.NAME: end_to_end.run,
    real_size.NAME: real_size.run,  # minutes per side at 512x512x200: run it with --only real_size
    label_stability.NAME: label_stability.run,
}

__all__ = ["BENCHMARKS", "BenchOptions"]
