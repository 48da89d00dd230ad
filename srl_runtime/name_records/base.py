"""The name-record API: a small key/value store with TTL keep-alives, shared by every backend.

Workers register where they listen (stream addresses, trainer peers) and publish progress; others
find them with get/get_subtree/wait. An entry added with a keep-alive TTL disappears unless its
owner keeps refreshing it, so a dead worker's addresses expire on their own.
"""

from __future__ import annotations

import abc
import threading
import time


class NameEntryNotFound(KeyError):
    """No entry under that name."""


class NameEntryExists(KeyError):
    """An entry exists and replace was not asked for."""


class NameRecords(abc.ABC):
    """Backends implement the `_`-prefixed primitives; keep-alive bookkeeping lives here."""

    def __init__(self) -> None:
        self._owned: dict[str, tuple[str, float | None]] = {}  # name -> (value, ttl) we keep alive
        self._written: dict[str, float] = {}  # name -> monotonic time of our last write of it
        self._delete_on_exit: set[str] = set()
        self._owned_lock = threading.Lock()
        self._keepalive_thread: threading.Thread | None = None
        self._closing = threading.Event()

    # ---- primitives a backend provides
    @abc.abstractmethod
    def _put(self, name: str, value: str, ttl: float | None, replace: bool) -> None: ...

    @abc.abstractmethod
    def _get(self, name: str) -> str | None: ...

    @abc.abstractmethod
    def _subtree(self, root: str) -> dict[str, str]: ...

    @abc.abstractmethod
    def _delete(self, name: str) -> bool: ...

    def _put_and_get(self, name: str, value: str, ttl: float | None, replace: bool, read: str) -> str | None:
        """_put, then _get(read); backends with round trips override it to send both at once."""
        self._put(name, value, ttl, replace)
        return self._get(read)

    def _refresh(self, name: str, value: str, ttl: float) -> None:
        """Extend an entry's life; backends with native TTLs may override."""
        self._put(name, value, ttl, replace=True)

    # ---- public API
    def add(
        self,
        name: str,
        value: str,
        *,
        keepalive_ttl: float | None = None,
        replace: bool = False,
        delete_on_exit: bool = True,
    ) -> None:
        """Add `name` = `value`; with keepalive_ttl the entry expires unless this client lives."""
        self._add(name, value, keepalive_ttl, replace, delete_on_exit, read=None)

    def add_and_get(
        self,
        name: str,
        value: str,
        *,
        read: str,
        keepalive_ttl: float | None = None,
        replace: bool = False,
        delete_on_exit: bool = True,
    ) -> str | None:
        """`add(name, value, ...)`, then the value under `read` (None if absent), in one round trip
        where the backend has round trips (Redis: one pipeline). A worker's progress write and its
        stop-flag read travel together this way, once a second."""
        return self._add(name, value, keepalive_ttl, replace, delete_on_exit, read=_norm(read))

    def _add(
        self,
        name: str,
        value: str,
        keepalive_ttl: float | None,
        replace: bool,
        delete_on_exit: bool,
        read: str | None,
    ) -> str | None:
        name = _norm(name)
        # Under the lock so a keep-alive refresh can never re-write an older value over this one.
        with self._owned_lock:
            if read is None:
                self._put(name, value, keepalive_ttl, replace)
                found = None
            else:
                found = self._put_and_get(name, value, keepalive_ttl, replace, read)
            self._written[name] = time.monotonic()
            if keepalive_ttl is not None:
                self._owned[name] = (value, keepalive_ttl)
            else:
                self._owned.pop(name, None)
            if delete_on_exit:
                self._delete_on_exit.add(name)
            else:
                self._delete_on_exit.discard(name)
        if keepalive_ttl is not None:
            self._ensure_keepalive(keepalive_ttl)
        self._added(name, value, keepalive_ttl)
        return found

    def _added(self, name: str, value: str, keepalive_ttl: float | None) -> None:  # noqa: B027 - optional hook
        """Called after every add; backends that track more per entry override it."""

    def add_subentry(self, name: str, value: str, *, keepalive_ttl: float | None = None) -> str:
        """Add a uniquely named child of `name`; returns the child's full name."""
        import uuid

        sub = f"{_norm(name)}/{uuid.uuid4().hex[:12]}"
        self.add(sub, value, keepalive_ttl=keepalive_ttl)
        return sub

    def get(self, name: str) -> str:
        """The value under `name`; raises NameEntryNotFound."""
        value = self._get(_norm(name))
        if value is None:
            raise NameEntryNotFound(name)
        return value

    def get_subtree(self, name_root: str) -> list[str]:
        """Values of `name_root` and all entries below it, ordered by name."""
        entries = self._subtree(_norm(name_root))
        return [entries[k] for k in sorted(entries)]

    def find_subtree(self, name_root: str) -> list[str]:
        """Names of `name_root` and all entries below it, sorted."""
        return sorted(self._subtree(_norm(name_root)))

    def wait(self, name: str, timeout: float | None = None, poll_interval: float = 0.1) -> str:
        """Block until `name` exists; raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            value = self._get(_norm(name))
            if value is not None:
                return value
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"name record {name!r} did not appear within {timeout}s")
            if self._closing.wait(poll_interval):
                raise TimeoutError(f"name records closed while waiting for {name!r}")

    def delete(self, name: str) -> None:
        """Remove `name`; raises NameEntryNotFound if absent."""
        name = _norm(name)
        with self._owned_lock:
            self._owned.pop(name, None)
            self._written.pop(name, None)
            self._delete_on_exit.discard(name)
        if not self._delete(name):
            raise NameEntryNotFound(name)

    def clear_subtree(self, name_root: str) -> None:
        """Remove `name_root` and everything below it."""
        for name in self.find_subtree(name_root):
            with self._owned_lock:
                self._owned.pop(name, None)
                self._written.pop(name, None)
                self._delete_on_exit.discard(name)
            self._delete(name)

    def reset(self) -> None:
        """Remove the entries this client added with delete_on_exit; keep-alives stop."""
        with self._owned_lock:
            names = list(self._delete_on_exit)
            self._delete_on_exit.clear()
            self._owned.clear()
            self._written.clear()
        for name in names:
            try:
                self._delete(name)
            except Exception:  # noqa: BLE001 - best effort on shutdown; the TTL cleans up the rest
                pass

    def close(self) -> None:
        """Stop keep-alives and remove our entries."""
        self._closing.set()
        self.reset()
        if self._keepalive_thread is not None:
            self._keepalive_thread.join(timeout=5)

    # ---- keep-alive
    def _due_for_refresh(self, name: str, period: float) -> bool:
        """True unless `name` was written within the last `period` s (call under _owned_lock).

        An entry re-written by its owner anyway (a worker's progress, every second) costs the
        keep-alive nothing: it still has more than ttl - period to live at the next keep-alive tick.
        """
        return time.monotonic() - self._written.get(name, -float("inf")) >= period

    def _ensure_keepalive(self, ttl: float) -> None:
        if self._keepalive_thread is None or not self._keepalive_thread.is_alive():
            self._keepalive_thread = threading.Thread(
                target=self._keepalive_loop, name="name-records-keepalive", daemon=True
            )
            self._keepalive_thread.start()

    def _keepalive_loop(self) -> None:
        while True:
            with self._owned_lock:
                items = [(n, v, t) for n, (v, t) in self._owned.items() if t is not None]
            period = min((t for _, _, t in items), default=5.0) / 3
            if self._closing.wait(period):
                return
            for name, _, _ in items:
                try:
                    with self._owned_lock:
                        current = self._owned.get(name)
                        if current is not None and current[1] is not None and self._due_for_refresh(name, period):
                            self._refresh(name, current[0], current[1])
                            self._written[name] = time.monotonic()
                except Exception:  # noqa: BLE001 - a backend outage must not kill the worker
                    pass


def _norm(name: str) -> str:
    return name.strip("/")
