"""A run owns its --out: one run at a time (a lock), a probe that it can write there, and a manifest of what
it wrote, so that no table of an earlier run can pass for a current one (issue 16).

Why a lock file with ``fcntl.flock`` rather than a PID file: the kernel releases the lock when the process
dies (kill -9 included), so a crashed run never leaves --out locked; a PID file would need guessing whether
the PID is still ours. On filesystems without flock support the run goes on with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from hpd_imaging.atomic import ENVIRONMENT_ERRNOS, environment_fault
from hpd_imaging.errors import ConfigError, EnvironmentFaultError
from hpd_imaging.provenance import file_sha256

logger = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")


@contextlib.contextmanager
def claim_out_dir(out_dir: Path, work_dir: Path) -> Iterator[None]:
    """Create ``out_dir``, prove it writable and hold its lock for the duration of the block.

    Raises :class:`EnvironmentFaultError` (exit code 2) when the folder cannot be created or written
    (read-only, no permission, full disk) or when another run holds the lock.
    """
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe.", suffix=".tmp", dir=out_dir)
        try:
            os.write(fd, b"hpd-imaging write probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise environment_fault(exc, Path(exc.filename or out_dir)) from exc
        raise EnvironmentFaultError(
            f"cannot write {out_dir}: {exc.strerror or exc}; choose a writable --out folder and rerun",
            path=str(out_dir),
        ) from exc
    lock_path = work_dir / LOCK_NAME
    with open(lock_path, "a+", encoding="utf-8") as fh:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock, the rest still works
            logger.warning("%s: no file locking on this platform; do not start two runs into it", out_dir)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                logger.warning("%s: cannot lock (%s); do not start two runs into it", lock_path, exc)
            else:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise EnvironmentFaultError(
                    f"{out_dir} is in use by another hpd-imaging run ({holder}); wait for it to finish or "
                    "choose another --out",
                    path=str(out_dir),
                ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(
            f"pid {os.getpid()} on {socket.gethostname()}, started {dt.datetime.now(dt.UTC).isoformat()}\n"
        )
        fh.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()


def remove_stale(out_dir: Path, candidates: Iterable[str], written: Iterable[Path]) -> list[str]:
    """Delete every ``candidates`` file of ``out_dir`` that this run did not write; return their names.

    A table of an earlier run (kinetics.csv from a run that had clinical.csv, a report of a run that got
    further) would otherwise sit next to this run's outputs looking current.
    """
    keep = {Path(p).resolve() for p in written}
    removed = []
    for name in candidates:
        path = out_dir / name
        if path.is_file() and path.resolve() not in keep:
            logger.warning("%s: left by an earlier run and not rebuilt by this one: removed", path)
            path.unlink()
            removed.append(name)
    return removed


def manifest(out_dir: Path, written: Iterable[Path]) -> dict[str, dict[str, object]]:
    """What this run wrote: path relative to ``out_dir`` -> size and sha256 (run.json ``manifest``)."""
    out: dict[str, dict[str, object]] = {}
    for path in sorted({Path(p) for p in written}):
        if path.is_file():
            out[path.relative_to(out_dir).as_posix()] = {
                "bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
    return out


_GROUPS = {
    "kinetics.csv": "kinetics",
    "response.csv": "kinetics",
    "targets.csv": "kinetics",
    "growth.csv": "kinetics",
    "concordance.csv": "kinetics",
    "radiomics.parquet": "radiomics",
    "radiomics_diagnostics.parquet": "radiomics",
    "radiomics_patient.parquet": "radiomics",
    "predictions.csv": "predictions",
}


def not_produced(
    outputs: dict[str, Path], tables: Iterable[str], has_clinical: bool, has_model: bool
) -> dict[str, str]:
    """The optional ``tables`` this run did not write, each with the reason (run.json and the report)."""
    written = {Path(p).name for p in outputs.values()}
    reasons = {
        "kinetics": "no lesion measurements, or the response stage failed (see errors.csv)"
        if has_clinical
        else "no clinical.csv (ici_start_date per patient)",
        "radiomics": "no radiomics features (radiomics disabled or failed, see errors.csv)",
        "predictions": "prediction failed (see errors.csv)" if has_model else "no --model given",
    }
    return {name: reasons[_GROUPS[name]] for name in tables if name not in written and name in _GROUPS}


def previous_manifest(out_dir: Path) -> list[str]:
    """Files the previous run into ``out_dir`` listed in its run.json manifest (relative paths): stale unless
    this run writes them again (e.g. survival tables of a run that had clinical.csv)."""
    try:
        data = json.loads((out_dir / "run.json").read_text())
        names = list(data.get("manifest", {}))
    except (OSError, ValueError, AttributeError):
        return []
    return [
        n for n in names if isinstance(n, str) and ".." not in Path(n).parts and not Path(n).is_absolute()
    ]


def check_folders(study_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    study_dir, out_dir = Path(study_dir).resolve(), Path(out_dir).resolve()
    if not study_dir.is_dir():
        raise ConfigError(
            f"study folder: expected a directory, got {study_dir} (not found)", path=str(study_dir)
        )
    if out_dir == study_dir or study_dir in out_dir.parents:
        raise ConfigError(
            f"--out {out_dir}: expected a folder outside the input archive {study_dir} "
            "(the archive is never written to)"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: expected a folder, got a file")
    return study_dir, out_dir


def relative_paths(row: dict[str, str], study_dir: Path, out_dir: Path) -> dict[str, str]:
    """Paths in error rows relative to the archive (or OUT): tables do not depend on where they were made."""
    out = dict(row)
    for col in ("file", "message"):
        text = str(out.get(col, ""))
        for root in (study_dir, out_dir):
            text = text.replace(f"{root}{os.sep}", "")
        out[col] = text
    return out


def remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files left by a run killed mid-write (``.<name>.<random>.tmp`` of hpd_imaging.atomic): never
    a finished output, safe to delete before a rerun writes the same files again."""
    for path in out_dir.rglob(".*.tmp"):
        if path.is_file() and _TEMPORARY.match(path.name):
            logger.info("removing %s (left by an interrupted run)", path)
            path.unlink(missing_ok=True)
