"""Reads the experiment summary the trainer publishes in the name-record Redis.

The operator only reads one key (keys.experiment_state), with a short timeout: an unreachable Redis
must never stall or fail a reconcile — the status keeps its last values and says why. The password
(of the experiment's own Redis, from its Secret) never appears in a reason.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from srl_runtime.name_records import keys

_clients: dict[tuple[str, str | None], redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(address: str, timeout: float, password: str | None) -> redis.Redis:
    with _clients_lock:
        c = _clients.get((address, password))
        if c is None:
            host, _, port = address.rpartition(":")
            c = redis.Redis(
                host=host.strip("[]"),
                port=int(port),
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                password=password,
                decode_responses=True,
                retry=Retry(NoBackoff(), 0),  # one try per reconcile; the next reconcile is the retry
            )
            for key in [k for k in _clients if k[0] == address]:  # a replaced password: drop the old client
                _clients.pop(key).close()
            _clients[(address, password)] = c
        return c


def read_summary(
    address: str, experiment: str, namespace: str | None, timeout: float = 1.0, *, password: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None) on success (summary None when not written yet), (None, reason) when unreachable
    or refused (a wrong or missing password)."""
    key = keys.experiment_state(keys.experiment_root(experiment, namespace))
    try:
        raw = _client(address, timeout, password).get(key)
    except (redis.RedisError, OSError, ValueError) as e:
        return None, f"redis {address}: {type(e).__name__}: {e}"
    if raw is None:
        return None, None
    try:
        summary = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, f"redis {address}: {key} is not JSON ({e})"
    if not isinstance(summary, dict):
        return None, f"redis {address}: {key} is not a JSON object"
    return summary, None
