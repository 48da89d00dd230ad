"""Sample stream (actor → trainer): zmq (PUSH/PULL over tcp) and shm (same-host slot ring)."""

from __future__ import annotations

from typing import Any

from srl_runtime.name_records.base import NameRecords
from srl_runtime.streams.sample.base import SampleConsumer, SampleProducer
from srl_runtime.streams.sample.shm_stream import ShmSampleConsumer, ShmSampleProducer
from srl_runtime.streams.sample.zmq_stream import ZmqSampleConsumer, ZmqSampleProducer

__all__ = [
    "SampleConsumer", "SampleProducer", "ShmSampleConsumer", "ShmSampleProducer",
    "ZmqSampleConsumer", "ZmqSampleProducer", "make_sample_consumer", "make_sample_producer",
]


def make_sample_producer(kind: str, name_records: NameRecords, root: str, **kw: Any) -> SampleProducer:
    """An actor's producer; consumers are found under keys.sample_streams(root)."""
    if kind == "zmq":
        return ZmqSampleProducer(name_records, root, **kw)
    if kind == "shm":
        return ShmSampleProducer(name_records, root, **kw)
    raise ValueError(f"unknown sample stream kind {kind!r} (expected zmq or shm)")


def make_sample_consumer(
    kind: str, name_records: NameRecords, root: str, trainer_index: int, host: str = "127.0.0.1", **kw: Any
) -> SampleConsumer:
    """A trainer's consumer, registered at keys.sample_stream(root, trainer_index)."""
    if kind == "zmq":
        return ZmqSampleConsumer(name_records, root, trainer_index, host, **kw)
    if kind == "shm":
        return ShmSampleConsumer(name_records, root, trainer_index, host, **kw)
    raise ValueError(f"unknown sample stream kind {kind!r} (expected zmq or shm)")
