"""Seeded fuzz harness over the readers of hostile input: archive headers, CT, SEG, RTSTRUCT, label maps.

``run_fuzz(n_cases, seed)`` builds a seed corpus (synthetic, plus small real files when given), runs every
case in a memory-limited child process with a per-case time limit and returns a :class:`FuzzReport`. The long
run is ``python -m tools.fuzz --cases 100000`` (docs/robustness.md). Not imported by the pipeline.
"""

from __future__ import annotations

from tools.fuzz.corpus import build_corpus
from tools.fuzz.harness import FuzzReport, run_fuzz

__all__ = ["FuzzReport", "build_corpus", "run_fuzz"]
