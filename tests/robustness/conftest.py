"""Fuzz run summaries are printed in pytest's terminal summary (the issue asks for the case count in CI)."""

from __future__ import annotations

from typing import Any

import pytest

FUZZ_SUMMARIES: list[str] = []


@pytest.fixture(scope="session")
def fuzz_summaries() -> list[str]:
    """Tests append one line per fuzz run; printed at the end of the session."""
    return FUZZ_SUMMARIES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FUZZ_SUMMARIES:
        terminalreporter.section("hpd-imaging fuzz")
        for line in FUZZ_SUMMARIES:
            terminalreporter.write_line(line)
