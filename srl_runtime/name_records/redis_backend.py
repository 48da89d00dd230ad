"""Name records in Redis: TTLs are Redis key expiries; subtrees come from a lexicographic name index.

A Redis outage (restart, failover, network blip) must not crash workers: redis-py's own `Retry`
retries connection errors and timeouts with jittered exponential backoff, about `retry_timeout`
seconds in all, before raising; a wrong password is never retried. The keep-alive re-writes each
owned entry (SET ... PX, not just PEXPIRE) so entries lost in a restart come back; entries without a
TTL are re-added when the server's run_id changes.

Every name is also a member of one sorted set (`key_prefix` + INDEX_KEY, all scores 0), so a subtree
is a ZRANGEBYLEX plus an MGET, O(log N + M), instead of a SCAN over the whole keyspace (which, with
15,000 workers' progress keys, costs every reader ~15 round trips and the server a full keyspace walk).
Writes add the name in the same pipelined round trip; names whose key expired are dropped from the
index by the next subtree read that finds them gone (an owner's next write puts a name back). A
re-read of an unchanged subtree is one round trip (the MGET of the names found last time rides
along with the ZRANGEBYLEX), and `add_and_get` sends a write and a read in one pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry

from srl_runtime.name_records.base import NameEntryExists, NameRecords

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
_NO_TTL_WATCH_PERIOD = 5.0  # keep-alive period when we own only entries without a TTL
_BACKOFF_BASE = 0.05  # first retry after ~0.1 s (jittered 50-100%), doubling
_BACKOFF_CAP = 2.0  # ... up to 2 s between tries
INDEX_KEY = "\x00srl-name-index"  # the sorted set of every name (a NUL keeps it out of any subtree)


class _Retry(Retry):
    """redis-py's Retry that never retries an authentication error (a subclass of ConnectionError):
    a wrong or missing password stays wrong."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(e: Exception) -> bool:
            return not isinstance(e, redis.AuthenticationError) and (is_retryable is None or is_retryable(e))

        return super().call_with_retry(do, fail, retryable, with_failure_count)


def retries_for(timeout: float, base: float = _BACKOFF_BASE, cap: float = _BACKOFF_CAP) -> int:
    """How many retries of ExponentialBackoff(cap, base) delays add up to `timeout` seconds."""
    total, n = 0.0, 0
    while total < timeout:
        n += 1
        total += min(cap, base * 2**n)
    return n


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
        self._index = key_prefix + INDEX_KEY
        # Equal jitter (each delay 50-100% of the exponential one): clients must not retry in lockstep.
        self._retry = _Retry(
            EqualJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE),
            retries_for(retry_timeout),
            supported_errors=_RETRYABLE,
        )
        self._client = redis.Redis(
            host=host.strip("[]"),
            port=int(port),
            db=db,
            password=password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=min(socket_timeout, 2.0),
            health_check_interval=30,
            retry=self._retry,
            decode_responses=True,
        )
        self._run_id: str | None = None
        self._static: dict[str, str] = {}  # entries we added without a TTL, re-added after a restart
        self._subtree_names: dict[str, list[str]] = {}  # root -> the names its last read found

    def _key(self, name: str) -> str:
        return self.key_prefix + name

    # ---- primitives
    def _put(self, name: str, value: str, ttl: float | None, replace: bool) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._key(name), value, px=px, nx=not replace)
        pipe.zadd(self._index, {name: 0})
        ok, _ = pipe.execute()
        if not ok:
            raise NameEntryExists(name)

    def _put_and_get(self, name: str, value: str, ttl: float | None, replace: bool, read: str) -> str | None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._key(name), value, px=px, nx=not replace)
        pipe.zadd(self._index, {name: 0})
        pipe.get(self._key(read))
        ok, _, found = pipe.execute()
        if not ok:
            raise NameEntryExists(name)
        return found

    def _refresh(self, name: str, value: str, ttl: float) -> None:
        # SET rather than PEXPIRE: re-creates the entry (and its index member) if the server lost it.
        self._put(name, value, ttl, replace=True)

    # The client decodes replies (decode_responses=True): they are str, though redis-py's
    # annotations say bytes | str whatever the setting; hence the casts to str below.
    def _get(self, name: str) -> str | None:
        return cast(str | None, self._client.get(self._key(name)))

    def _subtree(self, root: str) -> dict[str, str]:
        # One round trip when the names are those of the last read of this root (a directory at
        # rest): ZRANGEBYLEX and the MGET of the names it found last time go in one pipeline; only
        # when the names changed does a second MGET follow.
        lo, hi = (f"[{root}/", f"({root}0") if root else ("-", "+")  # '0' follows '/'
        known = self._subtree_names.get(root)
        values: list[str | None]  # decode_responses=True: replies are str
        if known is None:
            listed = cast(list[str], self._client.zrangebylex(self._index, lo, hi))
            names = ([root] if root else []) + listed
            values = cast(list[str | None], self._client.mget([self._key(n) for n in names])) if names else []
        else:
            pipe = self._client.pipeline(transaction=False)
            pipe.zrangebylex(self._index, lo, hi)
            pipe.mget([self._key(n) for n in known])
            listed, values = pipe.execute()
            names = ([root] if root else []) + listed
            if names != known:
                values = cast(list[str | None], self._client.mget([self._key(n) for n in names])) if names else []
        found = {n: v for n, v in zip(names, values, strict=True) if v is not None}
        gone = [n for n in names[1 if root else 0 :] if n not in found]
        if gone:  # expired keys: drop their names (an owner's next write puts its name back)
            self._client.zrem(self._index, *gone)
            names = [n for n in names if n in found or n == root]
        if names:
            self._subtree_names[root] = names
        else:  # MGET needs a key: read the index alone next time
            self._subtree_names.pop(root, None)
        return found

    def _delete(self, name: str) -> bool:
        with self._owned_lock:
            self._static.pop(name, None)
        pipe = self._client.pipeline(transaction=False)
        pipe.delete(self._key(name))
        pipe.zrem(self._index, name)
        deleted, _ = pipe.execute()
        return bool(deleted)

    # ---- keep-alive that also survives a server restart
    def _added(self, name: str, value: str, keepalive_ttl: float | None) -> None:
        """Entries added without a TTL are remembered and re-added if the Redis server restarts."""
        with self._owned_lock:
            if keepalive_ttl is None:
                self._static[name] = value
            else:
                self._static.pop(name, None)
        if keepalive_ttl is None:
            if self._run_id is None:
                self._run_id = self._server_run_id()
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
            period = min(ttls, default=_NO_TTL_WATCH_PERIOD) / 3
            if self._closing.wait(period):
                return
            # The run_id is asked for only while we own entries without a TTL: TTL entries are
            # re-created by their refresh anyway, so a worker that owns only those sends no INFO.
            restarted = False
            if self._static:
                run_id = self._server_run_id()
                restarted = run_id is not None and self._run_id is not None and run_id != self._run_id
                if run_id is not None:
                    self._run_id = run_id
            # Snapshot after the run_id check, so a restart re-adds everything owned by then.
            with self._owned_lock:
                ttl_items = [
                    (n, v, t)
                    for n, (v, t) in self._owned.items()
                    if t is not None and (restarted or self._due_for_refresh(n, period))
                ]
                static_items = list(self._static.items()) if restarted else []
            if restarted:
                log.warning(
                    "redis %s restarted; re-adding %d owned entries",
                    self.address,
                    len(ttl_items) + len(static_items),
                )
            for name, value in static_items:
                try:
                    self._put(name, value, None, replace=True)
                except Exception:  # noqa: BLE001 - an outage must not kill the keep-alive thread
                    log.debug("re-adding %s failed", name, exc_info=True)
            for name, _, _ in ttl_items:
                try:
                    # Under the lock with the current value, so an add() in between is never undone.
                    with self._owned_lock:
                        current = self._owned.get(name)
                        if current is not None and current[1] is not None:
                            self._refresh(name, current[0], current[1])
                            self._written[name] = time.monotonic()
                except Exception:  # noqa: BLE001
                    log.debug("keep-alive of %s failed", name, exc_info=True)

    def close(self) -> None:
        """Stop keep-alives, remove our entries (once, without retrying), close connections."""
        self._client.set_retry(_Retry(NoBackoff(), 0, supported_errors=_RETRYABLE))
        super().close()
        self._client.close()
