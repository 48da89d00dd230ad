"""Inline inference: the policy lives in the actor; requests are answered on the spot."""

from __future__ import annotations

import itertools
import time
from typing import Protocol

from srl_runtime.streams.inference.base import Arrays, InferenceClient


class RolloutPolicy(Protocol):
    """Anything with `rollout(**arrays) -> arrays`."""

    def rollout(self, **arrays: object) -> Arrays: ...


class InlineInferenceClient(InferenceClient):
    """Calls `policy.rollout(**arrays)` inside post_request; wait just hands the result back.

    Its round trip is the forward pass itself."""

    def __init__(self, policy: RolloutPolicy) -> None:
        self._policy = policy
        self._ids = itertools.count()
        self._results: dict[int, Arrays] = {}

    def post_request(self, arrays: Arrays) -> int:
        request_id = next(self._ids)
        started = time.perf_counter()
        self._results[request_id] = self._policy.rollout(**arrays)
        self.round_trips.observe(time.perf_counter() - started)
        return request_id

    def is_ready(self, request_id: int) -> bool:
        return request_id in self._results

    def wait(self, request_id: int, timeout: float | None = None) -> Arrays:
        try:
            return self._results.pop(request_id)
        except KeyError:
            raise KeyError(f"unknown or already consumed request {request_id}") from None

    def close(self) -> None:
        self._results.clear()
