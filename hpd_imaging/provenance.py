"""Provenance: package versions and input fingerprints recorded with every output.

Every number in an output must be traceable to a formula (our version), a setting (config hash) and an input
(file fingerprints and series UIDs); this module computes those pieces.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "hpd-imaging",
    "pyradiomics",
    "SimpleITK",
    "pydicom",
    "highdicom",
    "scikit-learn",
    "scikit-image",
    "numpy",
    "scipy",
    "pandas",
    "dask",
    "skops",
)


def package_versions(
    packages: Iterable[str] = TRACKED_PACKAGES, missing: str | None = "not installed"
) -> dict[str, str | None]:
    """Installed versions of the packages whose behaviour determines our numbers (``missing`` for a package
    that is not installed), plus the Python version."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = missing
    return versions


def files_fingerprint(paths: Iterable[Path]) -> str:
    """sha256 over (path, size, mtime_ns) of each file: cheap, and changes whenever an input file changes.

    Content hashing would be stronger but reads every byte of an archive; size + mtime is what make, rsync and
    our header cache use, and a rerun with ``--force`` recomputes regardless.
    """
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def resume_key(
    input_fingerprint: str, config_hash: str, versions: Mapping[str, str | None], extra: str = ""
) -> str:
    """Key under which one patient's results are stored: inputs x config x versions."""
    payload = "\n".join(
        [input_fingerprint, config_hash, *(f"{k}={v}" for k, v in sorted(versions.items())), extra]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
