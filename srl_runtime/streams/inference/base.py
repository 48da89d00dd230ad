"""The inference-stream interface: actors post observations, policy workers answer with actions."""

from __future__ import annotations

import abc
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srl_runtime.streams.wire import DropCounter

Arrays = dict[str, np.ndarray]
RequestCheck = Callable[[Arrays], Any]  # raises MalformedMessage (e.g. StreamSchema.check_request)
ReplyCheck = Callable[[Arrays, "int | None"], Any]  # (arrays, rows of the request or None)


ROUND_TRIP_WINDOW = 2048  # most recent round trips kept for quantiles


class RoundTrips:
    """Seconds from `post_request` to the answer being in the client's hands, for the most recent
    ROUND_TRIP_WINDOW requests (exact quantiles of that window, not histogram bucket edges)."""

    def __init__(self, window: int = ROUND_TRIP_WINDOW) -> None:
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self.count = 0  # round trips observed in all

    def observe(self, seconds: float) -> None:
        """Record one round trip."""
        self._recent.append(seconds)
        self.count += 1

    def summary(self) -> dict[str, float | int]:
        """{"p50", "p99", "mean": seconds over the window, "window": its size, "count": all observed}."""
        out: dict[str, float | int] = {"window": len(self._recent), "count": self.count}
        if self._recent:
            values = np.fromiter(self._recent, np.float64, len(self._recent))
            p50, p99 = np.quantile(values, [0.5, 0.99])
            out.update(p50=float(p50), p99=float(p99), mean=float(values.mean()))
        return out


class InferenceClient(DropCounter, abc.ABC):
    """Actor side: post a batch of rows, collect the policy's answer later.

    Network clients drop (and count) replies that fail their `check`; the request stays pending.
    `round_trips` holds the latency an actor sees per request (see RoundTrips).
    """

    @property
    def round_trips(self) -> RoundTrips:
        """Recent request round trips (created on first use)."""
        trips = self.__dict__.get("_round_trips")
        if trips is None:
            trips = self.__dict__["_round_trips"] = RoundTrips()
        return trips

    @abc.abstractmethod
    def post_request(self, arrays: Arrays) -> int:
        """Send arrays (e.g. obs [N,...], rnn_state [N,H]); returns a request id. Never blocks on peers."""

    @abc.abstractmethod
    def is_ready(self, request_id: int) -> bool:
        """True once the answer to `request_id` has arrived."""

    @abc.abstractmethod
    def wait(self, request_id: int, timeout: float | None = None) -> Arrays:
        """The answer to `request_id` (consumed); TimeoutError after `timeout` seconds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets and memory."""

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class InferenceRequest:
    """One request as the server sees it; `arrays` are only valid until `respond`."""

    client: bytes
    request_id: int
    arrays: Arrays
    handle: Any = field(default=None, repr=False)  # transport-private (e.g. the shm slot to answer into)
    in_flight: int = 1  # requests the client had pending when it sent this one (this one included)

    @property
    def rows(self) -> int:
        """Leading dimension of the first array (1 for scalars or no arrays)."""
        for a in self.arrays.values():
            return int(a.shape[0]) if a.ndim else 1
        return 1


class InferenceServer(DropCounter, abc.ABC):
    """Policy-worker side: gather requests into batches, answer each one. One thread per server.

    Requests that are malformed or fail the server's `check` are dropped and counted, never returned.
    """

    address: str = ""

    @abc.abstractmethod
    def poll_requests(self, max_rows: int, timeout: float) -> list[InferenceRequest]:
        """Wait up to `timeout` s for a request, then take what is queued, up to `max_rows` rows."""

    @abc.abstractmethod
    def respond(self, request: InferenceRequest, arrays: Arrays) -> None:
        """Send the answer to one request (rows aligned with the request's rows)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Unregister and release sockets."""

    def __enter__(self) -> InferenceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
