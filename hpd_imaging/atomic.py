"""Crash-safe output files: write to a temporary name in the same folder, fsync, then rename.

A run killed at any moment (even ``kill -9``) therefore leaves either the previous complete file or the new
complete file, never a half-written one; a rerun then completes to the same result.
``os.replace`` is atomic on
POSIX when source and target are on the same filesystem, which writing next to the target guarantees.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.errors import EnvironmentFaultError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


#: errno values that mean "this machine cannot write here", not "this input is bad"
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than the filesystem allows",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def environment_fault(exc: OSError, path: Path) -> EnvironmentFaultError:
    """One sentence for an OSError writing ``path``: the path, what is wrong and what to do."""
    what = ENVIRONMENT_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        todo = "free space there (or choose another --out) and rerun: finished patients resume"
    else:
        todo = "choose a writable --out folder (or fix its permissions) and rerun"
    return EnvironmentFaultError(f"cannot write {path}: {what}; {todo}", path=str(path))


def write_with(path: Path, write: Callable[[Path], None]) -> Path:
    """Atomically create ``path`` with ``write(tmp)``, which fills the temporary file ``tmp`` (any writer
    that takes a path: numpy, pandas, pydicom, ...); on any exception the target is left untouched.

    An OSError of the machine (full disk, read-only or unwritable folder: :data:`ENVIRONMENT_ERRNOS`) is
    raised as :class:`~hpd_imaging.errors.EnvironmentFaultError`, which stops a run with exit code 2 rather

    becoming one patient's error row.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise environment_fault(exc, path) from exc
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs are meant to be shared like any file
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            raise environment_fault(exc, path) from exc
        raise
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    """CSV with a fixed line terminator and float format so that equal tables give equal bytes."""
    return write_with(
        path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n", float_format="%.10g")
    )


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    return write_with(path, lambda tmp: df.to_parquet(tmp, index=False))
