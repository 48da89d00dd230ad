"""Name records in Redis: TTLs are Redis key expiries, subtrees are found with SCAN on a prefix.

A Redis outage (restart, failover, network blip) must not crash workers: every call retries with
exponential backoff for up to `retry_timeout` seconds before raising. The keep-alive re-writes each
owned entry (SET ... PX, not just PEXPIRE) so entries lost in a restart come back, and it watches the
server's run_id so entries without a TTL are re-added after a restart too.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from srl_runtime.name_records.base import NameEntryExists, NameRecords

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
_NO_TTL_WATCH_PERIOD = 5.0  # keep-alive period when we own only entries without a TTL


class RedisNameRecords(NameRecords):
    """Entries are Redis strings under `key_prefix` + name."""

    def __init__(
        self,
        address: str = "localhost:6379",
        *,
        db: int = 0,
        password: str | None = None,
        key_prefix: str = "",
        retry_timeout: float = 30.0,
        socket_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"redis address must be host:port, got {address!r}")
        self.address = address
        self.key_prefix = key_prefix
        self.retry_timeout = retry_timeout
        self._client = redis.Redis(
            host=host.strip("[]"),
            port=int(port),
            db=db,
            password=password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(socket_timeout, 2.0),
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),  # _call does the retrying, bounded by retry_timeout
            decode_responses=True,
        )
        self._run_id: str | None = None
        self._static: dict[str, str] = {}  # entries we added without a TTL, re-added after a restart

    # ---- retry
    def _call(self, fn: Callable[[redis.Redis], T]) -> T:
        """Run `fn(client)`, retrying connection errors with backoff for up to retry_timeout."""
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.05
        while True:
            try:
                return fn(self._client)
            except redis.AuthenticationError:
                raise  # a wrong password stays wrong: no retrying (it subclasses ConnectionError)
            except _RETRYABLE as e:
                if time.monotonic() + delay > deadline or self._closing.is_set():
                    raise
                log.debug("redis %s unavailable (%s); retrying in %.2fs", self.address, e, delay)
                time.sleep(delay * (0.5 + random.random()))  # jitter: clients must not retry in lockstep
                delay = min(delay * 2, 2.0)

    def _key(self, name: str) -> str:
        return self.key_prefix + name

    # ---- primitives
    def _put(self, name: str, value: str, ttl: float | None, replace: bool) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        ok = self._call(lambda r: r.set(self._key(name), value, px=px, nx=not replace))
        if not ok:
            raise NameEntryExists(name)

    def _refresh(self, name: str, value: str, ttl: float) -> None:
        # SET rather than PEXPIRE: re-creates the entry if the server lost it (restart, eviction).
        self._call(lambda r: r.set(self._key(name), value, px=max(1, int(ttl * 1000))))

    def _get(self, name: str) -> str | None:
        return self._call(lambda r: r.get(self._key(name)))

    def _subtree(self, root: str) -> dict[str, str]:
        prefix = self._key(root)
        pattern = _glob_escape(prefix) + ("/*" if root else "*")

        def scan(r: redis.Redis) -> dict[str, str]:
            keys = [prefix] if root else []
            keys += list(r.scan_iter(match=pattern, count=1000))
            if not keys:
                return {}
            values = r.mget(keys)
            n = len(self.key_prefix)
            # A key may expire between SCAN and MGET: those come back as None and are skipped.
            return {k[n:]: v for k, v in zip(keys, values, strict=True) if v is not None}

        return self._call(scan)

    def _delete(self, name: str) -> bool:
        with self._owned_lock:
            self._static.pop(name, None)
        return bool(self._call(lambda r: r.delete(self._key(name))))

    # ---- keep-alive that also survives a server restart
    def add(
        self,
        name: str,
        value: str,
        *,
        keepalive_ttl: float | None = None,
        replace: bool = False,
        delete_on_exit: bool = True,
    ) -> None:
        """Add `name` = `value`; entries added here are re-added if the Redis server restarts."""
        super().add(
            name, value, keepalive_ttl=keepalive_ttl, replace=replace, delete_on_exit=delete_on_exit
        )
        if self._run_id is None:
            self._run_id = self._server_run_id()
        key = name.strip("/")
        with self._owned_lock:
            if keepalive_ttl is None:
                self._static[key] = value
            else:
                self._static.pop(key, None)
        if keepalive_ttl is None:
            # The base keeps alive only TTL entries; we also need the thread to watch for restarts.
            self._ensure_keepalive(_NO_TTL_WATCH_PERIOD)

    def _server_run_id(self) -> str | None:
        try:
            return self._client.info("server").get("run_id")
        except _RETRYABLE:
            return None

    def _keepalive_loop(self) -> None:
        while True:
            with self._owned_lock:
                ttls = [t for _, t in self._owned.values() if t is not None]
            if self._closing.wait(min(ttls, default=_NO_TTL_WATCH_PERIOD) / 3):
                return
            run_id = self._server_run_id()
            restarted = run_id is not None and self._run_id is not None and run_id != self._run_id
            if run_id is not None:
                self._run_id = run_id
            # Snapshot after the run_id check, so a restart re-adds everything owned by then.
            with self._owned_lock:
                ttl_items = [(n, v, t) for n, (v, t) in self._owned.items() if t is not None]
                static_items = list(self._static.items()) if restarted else []
            if restarted:
                log.warning(
                    "redis %s restarted; re-adding %d owned entries",
                    self.address,
                    len(ttl_items) + len(static_items),
                )
            for name, value in static_items:
                try:
                    self._call(lambda r, n=name, v=value: r.set(self._key(n), v))
                except Exception:  # noqa: BLE001 - an outage must not kill the keep-alive thread
                    log.debug("re-adding %s failed", name, exc_info=True)
            for name, value, ttl in ttl_items:
                try:
                    self._refresh(name, value, ttl)
                except Exception:  # noqa: BLE001
                    log.debug("keep-alive of %s failed", name, exc_info=True)

    def close(self) -> None:
        """Stop keep-alives, remove our entries, close connections."""
        super().close()
        self._client.close()


def _glob_escape(s: str) -> str:
    """Escape Redis MATCH glob metacharacters."""
    return "".join("\\" + c if c in "*?[]\\^" else c for c in s)
