"""How a policy worker gathers inference requests into one forward pass.

`gather_batch` takes whatever requests are queued (up to `max_rows` rows) and, once one is in hand,
waits for more only while some client (actor) that sent requests in the last ACTIVE_CLIENT_SECONDS
has fewer requests in the batch than it had pending when it last sent one (every client says so
in each request: an actor with a ring of 2 slots has 2), and never longer than `max_wait_ms`.
Once every active actor's whole ring is in the batch nothing more can come before this batch is
answered, so waiting on would only idle the actors. Before, the wait ran to `max_wait_ms` whenever
the batch held fewer than `max_rows` rows: with fewer rows in flight than that (4 actors x 16 rows
against the default 512) every batch waited 2 ms, which set the pace of ring-1 actors.
"""

from __future__ import annotations

import collections
import time

from srl_runtime.streams.inference.base import InferenceRequest, InferenceServer

ACTIVE_CLIENT_SECONDS = 1.0  # a client (actor) that sent a request this recently is expected to send more


class ActiveClients:
    """Clients that sent requests in the last `window` seconds, and how many they keep in flight."""

    def __init__(self, window: float = ACTIVE_CLIENT_SECONDS) -> None:
        self.window = window
        self._seen: dict[bytes, tuple[float, int]] = {}  # client identity -> (monotonic time, in flight)

    def note(self, requests: list[InferenceRequest], now: float) -> None:
        """Record who sent `requests` and the in-flight count each declared."""
        for r in requests:
            self._seen[r.client] = (now, r.in_flight)

    def missing(self, batch: collections.Counter[bytes], now: float) -> int:
        """Requests still to come from active clients, given the batch's requests per client."""
        short = 0
        for client, (seen, in_flight) in list(self._seen.items()):
            if now - seen > self.window:  # gone quiet (stopped, or restarted under a new identity)
                del self._seen[client]
            else:
                short += max(0, in_flight - batch[client])
        return short


def gather_batch(
    server: InferenceServer, clients: ActiveClients, max_rows: int, max_wait_ms: float, timeout: float
) -> list[InferenceRequest]:
    """Requests for one forward pass ([] if none came within `timeout` s); see the module doc."""
    requests = server.poll_requests(max_rows, timeout=timeout)
    if not requests:
        return requests
    now = time.monotonic()
    clients.note(requests, now)
    batch = collections.Counter(r.client for r in requests)
    if max_wait_ms <= 0 or not clients.missing(batch, now):
        return requests
    rows = sum(r.rows for r in requests)
    deadline = now + max_wait_ms / 1000
    while rows < max_rows and (now := time.monotonic()) < deadline:
        more = server.poll_requests(max_rows - rows, timeout=deadline - now)
        if not more:
            break
        requests.extend(more)
        rows += sum(r.rows for r in more)
        clients.note(more, now)
        batch.update(r.client for r in more)
        if not clients.missing(batch, now):
            break
    return requests
