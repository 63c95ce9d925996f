"""Header-index cache: SQLite file in the run's output folder, one row per file of the archive.

A row is keyed by the file's absolute path and is valid while the file's size and ``st_mtime_ns`` are
unchanged; it stores the extracted header record as JSON (not the dataset). A second table keeps the finished
index of each archive root (index_cache.py), so a re-scan of an unchanged archive only walks and stats the
files and loads that one row; after a change it decodes the cached records and re-reads only what changed.
All writes of one scan go in one transaction with ``executemany`` (WAL journal), because one commit per file
would dominate the time of a 100,000-file scan.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hpd_imaging.archive.headers import RECORD_VERSION

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS headers (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archive_index (
    root TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,  -- pickled Archive, read on every warm re-scan: kept small
    records BLOB NOT NULL   -- the stacks' header records, read only when one is used (after payload: never
);                          -- traversed when only payload is selected)
"""


class HeaderCache:
    """Persistent ``path -> (size, mtime_ns, record)`` map; use as a context manager."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(db_path))
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key='record_version'").fetchone()
        if row is None or row[0] != str(RECORD_VERSION):
            if row is not None:
                logger.info("%s: header records of version %s are outdated; re-reading all", db_path, row[0])
            with self._conn:
                self._conn.execute("DELETE FROM headers")
                self._conn.execute("DELETE FROM archive_index")
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('record_version', ?)",
                    (str(RECORD_VERSION),),
                )

    def load(self, prefix: str) -> dict[str, tuple[int, int, str]]:
        """Every cached row whose path starts with ``prefix`` (the archive root); records as JSON text."""
        rows = self._conn.execute(
            "SELECT path, size, mtime_ns, record FROM headers WHERE substr(path, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return {path: (size, mtime_ns, record) for path, size, mtime_ns, record in rows}

    def store(
        self, rows: Iterable[tuple[str, int, int, dict[str, Any]]], removed: Iterable[str] = ()
    ) -> None:
        """Insert or replace the given rows and delete the removed paths, in one transaction."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO headers(path, size, mtime_ns, record) VALUES (?, ?, ?, ?)",
                (
                    (path, size, mtime, json.dumps(record, separators=(",", ":")))
                    for path, size, mtime, record in rows
                ),
            )
            self._conn.executemany("DELETE FROM headers WHERE path = ?", ((p,) for p in removed))

    def load_index(self, root: str, key: str) -> bytes | None:
        """The whole-index payload stored for ``root`` when it was stored under ``key``, else None."""
        row = self._conn.execute(
            "SELECT payload FROM archive_index WHERE root = ? AND key = ?", (root, key)
        ).fetchone()
        return bytes(row[0]) if row is not None else None

    def store_index(self, root: str, key: str, payload: bytes, records: bytes) -> None:
        """Replace the whole-index payload of ``root`` (one row per archive root)."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO archive_index(root, key, payload, records) VALUES (?, ?, ?, ?)",
                (root, key, payload, records),
            )

    def drop_index(self, root: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM archive_index WHERE root = ?", (root,))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HeaderCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
