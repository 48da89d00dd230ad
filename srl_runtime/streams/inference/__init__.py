"""Inference stream (actor ↔ policy worker): inline, zmq (tcp) and shm (same host) transports."""

from __future__ import annotations

from typing import Any

from srl_runtime.name_records.base import NameRecords
from srl_runtime.streams.inference.base import InferenceClient, InferenceRequest, InferenceServer
from srl_runtime.streams.inference.inline import InlineInferenceClient
from srl_runtime.streams.inference.shm_stream import ShmInferenceClient, ShmInferenceServer
from srl_runtime.streams.inference.zmq_stream import ZmqInferenceClient, ZmqInferenceServer

__all__ = [
    "InferenceClient", "InferenceRequest", "InferenceServer", "InlineInferenceClient",
    "ShmInferenceClient", "ShmInferenceServer", "ZmqInferenceClient", "ZmqInferenceServer",
    "make_inference_client", "make_inference_server",
]


def make_inference_server(
    kind: str, name_records: NameRecords, root: str, index: int, host: str = "127.0.0.1", **kw: Any
) -> InferenceServer:
    """A policy worker's server: kind is 'zmq' or 'shm' (inline needs no server)."""
    if kind == "zmq":
        return ZmqInferenceServer(name_records, root, index, host, **kw)
    if kind == "shm":
        return ShmInferenceServer(name_records, root, index, host, **kw)
    raise ValueError(f"no inference server for stream kind {kind!r} (expected zmq or shm)")


def make_inference_client(
    kind: str, name_records: NameRecords | None, root: str, *, policy: Any = None, **kw: Any
) -> InferenceClient:
    """An actor's client: 'inline' (needs policy), 'zmq' or 'shm' (servers found in name records)."""
    if kind == "inline":
        if policy is None:
            raise ValueError("inline inference needs a policy")
        return InlineInferenceClient(policy)
    if name_records is None:
        raise ValueError(f"{kind} inference needs name records to find policy workers")
    if kind == "zmq":
        return ZmqInferenceClient(name_records, root, **kw)
    if kind == "shm":
        return ShmInferenceClient(name_records, root, **kw)
    raise ValueError(f"unknown inference stream kind {kind!r} (expected inline, zmq or shm)")
