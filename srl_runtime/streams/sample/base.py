"""The sample-stream interface: actors push trajectories, trainers pull them."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np

from srl_runtime.streams.wire import DropCounter

Arrays = dict[str, np.ndarray]
SampleCheck = Callable[[dict[str, Any], Arrays], Any]  # raises MalformedMessage (StreamSchema.check_sample)


class SampleProducer(abc.ABC):
    """Actor side. post copies what it needs before returning, so callers may reuse their buffers."""

    @abc.abstractmethod
    def post(self, meta: dict[str, Any], arrays: Arrays, timeout: float | None = None) -> None:
        """Queue one sample; blocks while consumers are full (back-pressure). TimeoutError after `timeout`."""

    @abc.abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Wait until posted samples have left this process (best effort within `timeout`)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release sockets and memory."""

    def __enter__(self) -> SampleProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SampleConsumer(DropCounter, abc.ABC):
    """Trainer side. One thread per consumer; malformed samples or ones failing `check` are dropped and counted."""

    address: str = ""

    @abc.abstractmethod
    def consume(self, timeout: float) -> tuple[dict[str, Any], Arrays] | None:
        """The next (meta, arrays), or None if nothing valid arrived within `timeout` s."""

    @abc.abstractmethod
    def close(self) -> None:
        """Unregister and release sockets."""

    def __enter__(self) -> SampleConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
