"""Embedded metadata store: one SQLite file, shared safely by the processes of a local run.

WAL lets readers proceed while a writer commits; a busy timeout makes concurrent writers wait
instead of failing. Opening is different: switching a new file to WAL needs an exclusive lock, and
two processes that both hold a shared lock while asking for it deadlock, which SQLite reports at once
as "database is locked" without calling the busy handler. So every process opens the file (journal
mode, schema) under an flock on a sibling `<file>.open-lock`. WAL needs shared memory between
processes, so the file must be on a local filesystem (not NFS): cluster runs use the MongoDB store.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from srl_runtime.param_db.metadata import BestBy, MetadataStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY, train_step INTEGER NOT NULL, timestamp REAL NOT NULL,
    episode_return REAL, extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS tags (tag TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS evals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, tag TEXT NOT NULL,
    mean_return REAL NOT NULL, episodes INTEGER NOT NULL, timestamp REAL NOT NULL);
CREATE INDEX IF NOT EXISTS evals_version ON evals (version);
CREATE INDEX IF NOT EXISTS evals_return ON evals (mean_return);
"""


class SQLiteMetadataStore(MetadataStore):
    """Metadata in a SQLite file (WAL, busy timeout); one connection per process, guarded by a lock."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with self._lock:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross fork(): reopen in a child process.
        if self._conn is None or self._pid != os.getpid():
            with open(f"{self.path}.open-lock", "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file is closed
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable enough, faster
                conn.executescript(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlocks
            try:
                conn.execute(sql, args)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, args).fetchall()

    def record_version(
        self,
        version: int,
        *,
        train_step: int,
        timestamp: float,
        episode_return: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Insert or overwrite the record of `version`."""
        self._write(
            "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?)",
            (version, train_step, timestamp, episode_return, json.dumps(extra or {})),
        )

    def set_tag(self, tag: str, version: int) -> None:
        """Record that `tag` now names `version`."""
        self._write("INSERT OR REPLACE INTO tags VALUES (?, ?)", (tag, version))

    def remove_tag(self, tag: str) -> None:
        """Forget `tag`."""
        self._write("DELETE FROM tags WHERE tag = ?", (tag,))

    def add_eval_result(self, version: int, tag: str, mean_return: float, episodes: int) -> None:
        """Append one evaluation result."""
        self._write(
            "INSERT INTO evals (version, tag, mean_return, episodes, timestamp) VALUES (?, ?, ?, ?, ?)",
            (version, tag, float(mean_return), int(episodes), time.time()),
        )

    def get(self, version: int) -> dict[str, Any]:
        """The full record of `version`; raises KeyError."""
        rows = self._read("SELECT * FROM versions WHERE version = ?", (version,))
        tags = [r[0] for r in self._read("SELECT tag FROM tags WHERE version = ? ORDER BY tag", (version,))]
        evals = [
            {"tag": t, "mean_return": m, "episodes": e, "timestamp": ts}
            for t, m, e, ts in self._read(
                "SELECT tag, mean_return, episodes, timestamp FROM evals WHERE version = ? ORDER BY id",
                (version,),
            )
        ]
        if not rows and not evals:
            raise KeyError(version)
        rec: dict[str, Any] = {"version": version, "train_step": None, "timestamp": None,
                               "episode_return": None, "extra": {}}  # fmt: skip
        if rows:
            _, step, ts, ret, extra = rows[0]
            rec.update(train_step=step, timestamp=ts, episode_return=ret, extra=json.loads(extra))
        rec["tags"] = tags
        rec["evals"] = evals
        return rec

    def query_best(self, by: BestBy = "eval_return") -> dict[str, Any] | None:
        """The record with the highest eval mean return (or episode return)."""
        if by == "eval_return":
            sql = "SELECT version FROM evals ORDER BY mean_return DESC, version DESC LIMIT 1"
        elif by == "episode_return":
            sql = (
                "SELECT version FROM versions WHERE episode_return IS NOT NULL "
                "ORDER BY episode_return DESC, version DESC LIMIT 1"
            )
        else:
            raise ValueError(f"query_best: unknown key {by!r}")
        rows = self._read(sql)
        return self.get(rows[0][0]) if rows else None

    def list_versions(self) -> list[int]:
        """Recorded versions, ascending."""
        return [r[0] for r in self._read("SELECT version FROM versions ORDER BY version")]

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
