"""Provenance: package versions and input fingerprints recorded with every output.

Every number in an output must be traceable to a formula (our version), a setting (config hash) and an input
(file fingerprints and series UIDs); this module computes those pieces.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

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


def file_records(paths: Iterable[Path | str], *, content: bool = True) -> dict[str, dict[str, Any]]:
    """Per file: ``size``, ``mtime_ns`` and (``content``) the ``sha256`` of its bytes; a file that cannot
    be read gets ``error`` instead. Keys are the paths as strings, in sorted order.

    Why content as well: the resume key is computed from (size, mtime) at scan time, which a copy with
    preserved times (``cp -p``, ``rsync -t``) or a file edited during the run can leave unchanged while the
    bytes differ. The worker records the hash of what it read; a resumed result is only reused when the
    files still hash the same (:func:`hpd_imaging.pipeline.study.run_study`).
    """
    out: dict[str, dict[str, Any]] = {}
    for p in sorted({str(x) for x in paths}):
        try:
            st = os.stat(p)
            rec: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            if content:
                rec["sha256"] = file_sha256(Path(p))
        except OSError as exc:
            rec = {"error": f"{type(exc).__name__}: {exc.strerror or exc}"}
        out[p] = rec
    return out


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def resume_key(
    input_fingerprint: str, config_hash: str, versions: Mapping[str, str | None], extra: str = ""
) -> str:
    """Key under which one patient's results are stored: inputs x config x versions."""
    payload = "\n".join(
        [input_fingerprint, config_hash, *(f"{k}={v}" for k, v in sorted(versions.items())), extra]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
