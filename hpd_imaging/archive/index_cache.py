"""Whole-index cache: the finished :class:`Archive` of an unchanged archive, reused without regrouping.

Why: with every header record cached, a warm re-scan still decoded one JSON record per file, built a Path per
file and regrouped everything into series, stacks, pairs and choices -- about 50 us of Python per file, most
of the time of a re-scan (issue #9 asks for >= 20x faster than a plain ``dcmread`` loop). When nothing in the
archive changed, none of that can change its result, so the result itself is cached.

Validity: the key is a SHA-256 digest of the sorted ``(path, size, mtime_ns)`` list of *every* file the walk
found (DICOM or not: clinical.csv and masks.csv are inputs too), the archive root, the settings, the header
record version, the package version and a fingerprint of the source of the archive stage and domain types.
The walk and a stat of every file still run on each scan, so the invalidation rules of the header cache hold:
one changed size or mtime, a new or a deleted file changes the key, and the scan falls back to the per-file
cache (re-reading exactly the changed files) and rebuilds the index.

Storage: a pickle of the Archive in the SQLite cache (one row per archive root). Two choices keep loading it
cheap: the stacks' per-file header records (90 % of the bytes) go to a second column of the row that is
fetched only when some ``Stack.records`` is first used (the pipeline needs the SeriesRefs of the timepoints,
not the records; selecting only the first column never walks the second one's overflow pages), and Paths are
pickled as their text and rebuilt from a memoised parent folder. Loading goes through an allow-list unpickler
(classes of hpd_imaging, pathlib, datetime and builtins only) because the cache file lives in an output
folder, not in the code.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import pickle
from pathlib import Path, PurePath
from typing import Any

import hpd_imaging
from hpd_imaging.archive.stacks import Stack
from hpd_imaging.errors import ConfigError
from hpd_imaging.settings.archive import ArchiveSettings

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1  # bump when the pickled layout of the payload changes


_PARENTS: dict[str, Path] = {}


def _path_from_text(text: str) -> Path:
    """Path of a file, built from its (memoised) folder: 3x cheaper than parsing every full path again."""
    folder, sep, name = text.rpartition("/")
    if not sep or not folder or not name or name in (".", ".."):
        return Path(text)
    parent = _PARENTS.get(folder)
    if parent is None:
        if len(_PARENTS) > 100_000:
            _PARENTS.clear()
        parent = _PARENTS[folder] = Path(folder)
    return parent / name


def _stack_from_state(state: dict[str, Any], position: int) -> Stack:
    stack = Stack.__new__(Stack)
    stack.__dict__.update(state)
    stack.__dict__["_records_at"] = position
    return stack


_LAZY_KEYS = ("records", "_records_at", "_records_from")


class _IndexPickler(pickle.Pickler):
    """Paths as text; each Stack's records moved out into ``self.records`` (stored apart, loaded lazily)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.records: list[list[dict[str, Any]]] = []

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, PurePath):
            return _path_from_text, (str(obj),)
        if type(obj) is Stack:
            state = {k: v for k, v in obj.__dict__.items() if k not in _LAZY_KEYS}
            self.records.append(obj.records)
            return _stack_from_state, (state, len(self.records) - 1)
        return NotImplemented


_ALLOWED_MODULES = ("hpd_imaging.", "pathlib", "datetime", "builtins", "collections", "copyreg", "enum")


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in ("eval", "exec", "compile", "open", "__import__", "getattr"):
            raise pickle.UnpicklingError(f"index cache: refusing builtins.{name}")
        if module.startswith(_ALLOWED_MODULES) or module in _ALLOWED_MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"index cache: refusing global {module}.{name}")


def restricted_loads(blob: bytes) -> Any:
    return _IndexUnpickler(io.BytesIO(blob)).load()


def dumps_archive(archive: Any) -> tuple[bytes, bytes]:
    """(payload, records): the pickled Archive and, apart, the records of its stacks in pickling order."""
    buf = io.BytesIO()
    pickler = _IndexPickler(buf)
    pickler.dump(archive)
    return buf.getvalue(), pickle.dumps(pickler.records, protocol=pickle.HIGHEST_PROTOCOL)


class RecordsSource:
    """Where the records of the stacks of one cached index are: fetched once, on the first use of any."""

    def __init__(self, db_path: Path, root: str, key: str) -> None:
        self.db_path, self.root, self.key = db_path, root, key
        self._records: list[list[dict[str, Any]]] | None = None

    def get(self, position: int) -> list[dict[str, Any]]:
        if self._records is None:
            import sqlite3

            with contextlib.closing(sqlite3.connect(str(self.db_path))) as conn:
                row = conn.execute(
                    "SELECT records FROM archive_index WHERE root = ? AND key = ?", (self.root, self.key)
                ).fetchone()
            if row is None:
                raise ConfigError(
                    f"{self.db_path}: expected the header records of the cached index of {self.root}, "
                    "got none (the archive was re-indexed since); scan it again"
                )
            self._records = restricted_loads(bytes(row[0]))
        return self._records[position]


def attach_records_source(stacks: list[Stack], source: RecordsSource) -> None:
    for stack in stacks:
        stack.__dict__["_records_from"] = source


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """Digest of the source that turns header records into an index (archive stage + domain types).

    A developer changing a grouping rule without bumping a version must not get a stale cached index.
    Computed once per process (a few small files).
    """
    digest = hashlib.sha256(hpd_imaging.__version__.encode())
    root = Path(hpd_imaging.__file__).parent
    for source in [*sorted((root / "archive").glob("*.py")), *sorted((root / "domain").glob("*.py"))]:
        try:
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
        except OSError:
            digest.update(source.name.encode() + b"\0missing")
    return digest.hexdigest()


def index_key(
    study_dir: Path, files: list[tuple[str, int, int]], settings: ArchiveSettings, record_version: int
) -> str:
    """Digest of everything the index is a function of (see the module docstring)."""
    digest = hashlib.sha256()
    head = (INDEX_FORMAT, record_version, _code_fingerprint(), str(study_dir), settings.model_dump_json())
    digest.update(repr(head).encode())
    # pickle of a list of (str, int, int) is deterministic and much faster than formatting every entry
    digest.update(pickle.dumps(files, protocol=4))
    return digest.hexdigest()


def records_of(stack: Stack) -> list[dict[str, Any]]:
    """A lazily stored stack's records, fetched on first use and kept on it (by ``Stack.__getattr__``)."""
    return stack.records
