"""Headless Chromium for report tests, found on PATH (.ci/run installs Debian's `chromium` when it runs as
root). Tests never install system packages: without a browser the tests that need one skip with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def _find() -> str | None:
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True)
class Chromium:
    """A headless Chromium with a fresh profile per call."""

    binary: str

    def run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="hpd-chromium-") as profile:
            cmd = [self.binary, *_FLAGS, f"--user-data-dir={profile}", *args]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)

    def screenshot(self, html: Path, png: Path, *, width: int = 1280, height: int = 1600) -> None:
        res = self.run(f"--screenshot={png}", f"--window-size={width},{height}", html.resolve().as_uri())
        if not png.exists():
            raise AssertionError(f"chromium wrote no screenshot (rc {res.returncode}): {res.stderr[-2000:]}")

    def dump_dom(self, html: Path) -> str:
        res = self.run("--dump-dom", "--virtual-time-budget=10000", html.resolve().as_uri())
        if res.returncode != 0 or not res.stdout:
            raise AssertionError(f"chromium --dump-dom failed (rc {res.returncode}): {res.stderr[-2000:]}")
        return res.stdout


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """Headless Chromium from PATH; skips (with the reason) when there is none."""
    binary = _find()
    if binary is None:
        pytest.skip(
            f"no Chromium on PATH (looked for {', '.join(_NAMES)}); .ci/run installs it with "
            "`apt-get install chromium` when run as root"
        )
    yield Chromium(binary)
