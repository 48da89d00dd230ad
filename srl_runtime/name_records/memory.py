"""In-memory name records: for workers that all live in one process (serial mode, tests)."""

from __future__ import annotations

import threading
import time

from srl_runtime.name_records.base import NameEntryExists, NameRecords


class MemoryNameRecords(NameRecords):
    """A dict with expiry times, guarded by a lock. Instances share nothing unless `store` is passed."""

    def __init__(self, store: dict[str, tuple[str, float | None]] | None = None) -> None:
        super().__init__()
        self._store = {} if store is None else store
        self._lock = threading.Lock()

    def _live(self, name: str, now: float) -> tuple[str, float | None] | None:
        entry = self._store.get(name)
        if entry is not None and entry[1] is not None and entry[1] < now:
            del self._store[name]
            return None
        return entry

    def _put(self, name: str, value: str, ttl: float | None, replace: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if not replace and self._live(name, now) is not None:
                raise NameEntryExists(name)
            self._store[name] = (value, None if ttl is None else now + ttl)

    def _get(self, name: str) -> str | None:
        with self._lock:
            entry = self._live(name, time.monotonic())
            return None if entry is None else entry[0]

    def _subtree(self, root: str) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            names = [n for n in self._store if n == root or n.startswith(root + "/")]
            return {n: e[0] for n in names if (e := self._live(n, now)) is not None}

    def _delete(self, name: str) -> bool:
        with self._lock:
            return self._store.pop(name, None) is not None
