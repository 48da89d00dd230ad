"""Data streams between workers: inference (actor ↔ policy worker) and sample (actor → trainer).

Payloads are `dict[str, np.ndarray]` plus a small JSON meta dict, framed by `streams.wire`;
transports are inline, ZMQ over tcp, and shared memory on one host (`streams.shm`).
"""

from srl_runtime.streams.wire import MalformedMessage

__all__ = ["MalformedMessage"]
