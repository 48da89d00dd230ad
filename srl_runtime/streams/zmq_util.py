"""ZMQ plumbing shared by the streams: one context per process, sockets that close quickly."""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

import zmq

DEFAULT_LINGER_MS = 0  # a dead peer must never keep a worker from exiting
MAX_MESSAGE_BYTES = 1 << 30  # libzmq allocates what the peer announces; cap it per frame

_context: zmq.Context | None = None
_context_pid: int | None = None


def context() -> zmq.Context:
    """The process-wide ZMQ context (a fresh one after fork: contexts must not cross forks)."""
    global _context, _context_pid
    if _context is None or _context_pid != os.getpid():
        _context = zmq.Context()
        _context_pid = os.getpid()
    return _context


def socket(kind: int, *, linger_ms: int = DEFAULT_LINGER_MS, receiver: bool = True, **options: Any) -> zmq.Socket:
    """A socket with LINGER set and, for receivers, a per-frame size cap."""
    sock = context().socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    if receiver:
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name.upper()), value)
    return sock


def bind_tcp(sock: zmq.Socket, host: str, port: int = 0, advertise: str | None = None) -> str:
    """Bind to `port` on `host` (0: any free port); returns the address peers connect to:
    the bound endpoint, or `advertise` (a stable DNS name, e.g. a pod's Service name) with its port."""
    sock.bind(f"tcp://{host}:{port}")
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if not advertise:
        return bound
    return f"tcp://{advertise}:{bound.rsplit(':', 1)[1]}"


def ipc_path(prefix: str) -> str:
    """A fresh unix-socket path for an ipc:// endpoint (short enough for sun_path)."""
    base = os.environ.get("SRL_IPC_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"srl-{prefix}-{uuid.uuid4().hex[:12]}.sock")


def bind_ipc(sock: zmq.Socket, prefix: str) -> tuple[str, str]:
    """Bind to a new ipc:// endpoint; returns (address, path) — the caller removes the path on close."""
    path = ipc_path(prefix)
    sock.bind(f"ipc://{path}")
    return f"ipc://{path}", path


def remove_file(path: str | None) -> None:
    """Remove an ipc socket file, ignoring that it is already gone."""
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


_POLLIN = int(zmq.POLLIN)  # plain ints: pyzmq's flag enums cost a Python call per | or &


def readable(sock: zmq.Socket, timeout_ms: int = 0) -> bool:
    """True once a message can be received from `sock` without blocking (waiting up to timeout_ms).

    zmq_poll on the one socket: about half the cost of sock.poll (which builds a Poller each call),
    and cheaper than a NOBLOCK recv that ends in zmq.Again (an exception per empty queue).
    """
    return bool(zmq.zmq_poll([(sock, _POLLIN)], timeout_ms))


def ready(socks: list[zmq.Socket], timeout_ms: int) -> list[zmq.Socket]:
    """Those of `socks` with a message to receive, waiting up to timeout_ms for the first."""
    return [sock for sock, _ in zmq.zmq_poll([(sock, _POLLIN) for sock in socks], timeout_ms)]


# pyzmq's Python Socket wraps each frame's send/recv in Python (flag-enum arithmetic, type checks,
# a getsockopt wrapper per RCVMORE): ~6 us of a small 3-frame message's ~11. The inference streams
# send and receive several small messages per request, so they call the Cython methods underneath
# with plain int flags instead. Semantics are send_multipart / recv_multipart's.
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv
_get = zmq.backend.Socket.get
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)


def send_frames(sock: zmq.Socket, frames: list[Any]) -> bool:
    """sock.send_multipart(frames, copy=False, flags=NOBLOCK); False (nothing sent) if the queue is full.

    As with send_multipart, frames under the socket's copy_threshold are copied and bigger ones are
    handed to ZMQ as they are (don't write into them until the message is gone). A multipart message
    is queued whole or not at all, so zmq.Again can only come from the first frame.
    """
    last = len(frames) - 1
    try:
        for i in range(last):
            _send(sock, frames[i], _MORE, False)
        _send(sock, frames[last], _NOBLOCK, False)
    except zmq.Again:
        return False
    return True


def recv_frames(sock: zmq.Socket, copy: bool) -> list[Any] | None:
    """The next message's frames (sock.recv_multipart(NOBLOCK, copy)), or None if none is queued.

    copy=True gives bytes (cheapest for small frames: headers, CartPole-sized arrays), copy=False
    zmq.Frames (no copy of big payloads).
    """
    try:
        parts = [_recv(sock, _NOBLOCK, copy)]
    except zmq.Again:
        return None
    while _get(sock, _RCVMORE):  # the rest of a multipart message arrives with its first frame
        parts.append(_recv(sock, _NOBLOCK, copy))
    return parts
