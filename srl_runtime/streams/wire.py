"""The stream wire format: one JSON header frame plus one raw buffer frame per numpy array.

Frame 0 is MAGIC + VERSION + compact JSON {"k": kind, "m": meta, "a": [[name, dtype, shape], ...]};
frames 1..n are the arrays' bytes in C order. No pickle anywhere: a peer can only make us build
arrays of whitelisted dtypes whose size matches the bytes it actually sent.
"""

from __future__ import annotations

import collections
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MAGIC = b"SRLW"
VERSION = 1
PREFIX = MAGIC + bytes([VERSION])
MAX_HEADER_BYTES = 64 * 1024  # headers carry names/shapes/meta only; anything bigger is hostile
MAX_ARRAYS = 256
MAX_NDIM = 32
MAX_DIM = 2**40  # keeps reshape from overflowing on zero-size arrays with absurd dims

# Little-endian, fixed-size numeric types only; object/str/void dtypes could smuggle anything.
ALLOWED_DTYPES: frozenset[str] = frozenset(
    np.dtype(t).newbyteorder("<").str
    for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64,
        np.uint8, np.uint16, np.uint32, np.uint64,
        np.float16, np.float32, np.float64,
    )
)

Arrays = dict[str, np.ndarray]


log = logging.getLogger(__name__)


class MalformedMessage(ValueError):
    """A message that does not follow the wire format; receivers drop and count it."""

    reason = "wire"  # what receivers count it under (content checks use finer reasons)


class DropCounter:
    """Mixin for stream receivers: `dropped` messages in all and `drop_reasons` by reason."""

    dropped: int = 0

    @property
    def drop_reasons(self) -> collections.Counter[str]:
        """Dropped messages by MalformedMessage.reason."""
        reasons = self.__dict__.get("_drop_reasons")
        if reasons is None:
            reasons = self.__dict__["_drop_reasons"] = collections.Counter()
        return reasons

    def _drop(self, err: MalformedMessage, what: str) -> None:
        self.dropped += 1
        self.drop_reasons[err.reason] += 1
        log.debug("dropped %s: %s", what, err)


def wire_dtype(dtype: np.dtype) -> np.dtype:
    """The little-endian dtype an array travels as; ValueError if it is not allowed."""
    dt = np.dtype(dtype)
    le = dt.newbyteorder("<")  # a no-op for native little-endian and 1-byte types
    if le.str not in ALLOWED_DTYPES:
        raise ValueError(f"dtype {dt} cannot be sent on a stream (allowed: {sorted(ALLOWED_DTYPES)})")
    return le


def prepare(array: np.ndarray) -> np.ndarray:
    """The array as a C-contiguous little-endian ndarray (no copy if it already is one)."""
    a = np.asarray(array)
    dt = wire_dtype(a.dtype)
    if a.dtype != dt or not a.flags.c_contiguous:
        a = np.require(a.astype(dt, copy=False), requirements="C")
    return a


def array_specs(arrays: Arrays) -> tuple[list[list[Any]], list[np.ndarray]]:
    """Header specs [[name, dtype, shape]] and the prepared arrays, in the same order."""
    if len(arrays) > MAX_ARRAYS:
        raise ValueError(f"at most {MAX_ARRAYS} arrays per message")
    specs, prepared = [], []
    for name, array in arrays.items():
        if not isinstance(name, str):
            raise ValueError(f"array names must be str, got {name!r}")
        a = prepare(array)
        specs.append([name, a.dtype.str, list(a.shape)])
        prepared.append(a)
    return specs, prepared


def encode_header(kind: str, meta: dict[str, Any], specs: list[list[Any]]) -> bytes:
    """Frame 0: prefix + compact JSON."""
    body = json.dumps({"k": kind, "m": meta, "a": specs}, separators=(",", ":")).encode()
    if len(body) + len(PREFIX) > MAX_HEADER_BYTES:
        raise ValueError(f"header is {len(body)} bytes; keep meta small (max {MAX_HEADER_BYTES})")
    return PREFIX + body


def encode(kind: str, meta: dict[str, Any], arrays: Arrays) -> list[bytes | memoryview]:
    """Frames to send with `send_multipart(frames, copy=False)`; arrays are not copied.

    The arrays' memory is handed to ZMQ as is: don't write into them until the message is gone.
    """
    specs, prepared = array_specs(arrays)
    frames: list[bytes | memoryview] = [encode_header(kind, meta, specs)]
    # 0-d and empty arrays still have a (possibly empty) buffer; memoryview keeps zmq happy with both
    frames.extend(a.data.cast("B") if a.size else b"" for a in prepared)
    return frames


def buffer_of(frame: Any) -> memoryview:
    """A read-only byte view of a zmq.Frame, bytes, memoryview or ndarray."""
    buf = getattr(frame, "buffer", None)  # zmq.Frame
    view = memoryview(buf if buf is not None else frame)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def decode_header(frame: Any) -> tuple[str, dict[str, Any], list[tuple[str, np.dtype, tuple[int, ...]]]]:
    """Parse and validate frame 0: (kind, meta, [(name, dtype, shape)])."""
    try:
        head = buffer_of(frame)
    except TypeError as e:
        raise MalformedMessage(f"frame 0 is not a buffer: {e}") from None
    if len(head) < len(PREFIX) or len(head) > MAX_HEADER_BYTES:
        raise MalformedMessage(f"header frame of {len(head)} bytes")
    if bytes(head[: len(MAGIC)]) != MAGIC:
        raise MalformedMessage("bad magic")
    if head[len(MAGIC)] != VERSION:
        raise MalformedMessage(f"unsupported wire version {head[len(MAGIC)]}")
    try:
        doc = json.loads(bytes(head[len(PREFIX) :]).decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedMessage(f"header is not JSON: {type(e).__name__}") from None
    if not isinstance(doc, dict) or set(doc) != {"k", "m", "a"}:
        raise MalformedMessage("header must be an object with keys k, m, a")
    kind, meta, specs = doc["k"], doc["m"], doc["a"]
    if not isinstance(kind, str) or not isinstance(meta, dict) or not isinstance(specs, list):
        raise MalformedMessage("header fields have wrong types")
    return kind, meta, parse_specs(specs)


def parse_specs(specs: Any, extra: int = 0) -> list[tuple]:
    """Validate [[name, dtype, shape, *extra]] entries; returns tuples (name, dtype, shape, *extra)."""
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise MalformedMessage("array list missing or too long")
    out, names = [], set()
    for spec in specs:
        if not isinstance(spec, list) or len(spec) != 3 + extra:
            raise MalformedMessage("array spec must be [name, dtype, shape]")
        name, dtype, shape = spec[:3]
        if not isinstance(name, str) or name in names:
            raise MalformedMessage("array name missing or duplicated")
        if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
            raise MalformedMessage(f"dtype {dtype!r} not allowed")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
            type(d) is int and 0 <= d <= MAX_DIM for d in shape
        ):
            raise MalformedMessage(f"bad shape {shape!r}")
        for x in spec[3:]:
            if type(x) is not int or x < 0:
                raise MalformedMessage("bad array offset")
        names.add(name)
        out.append((name, np.dtype(dtype), tuple(shape), *spec[3:]))
    return out


def nbytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Bytes of a C-contiguous array (Python ints: no overflow)."""
    return math.prod(shape) * dtype.itemsize


def view(buf: memoryview, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A zero-copy array over exactly `buf`; MalformedMessage if sizes disagree."""
    n = nbytes(dtype, shape)
    if n != len(buf):
        raise MalformedMessage(f"array of {shape} {dtype} needs {n} bytes, frame has {len(buf)}")
    try:
        return np.frombuffer(buf, dtype=dtype, count=math.prod(shape)).reshape(shape)
    except ValueError as e:
        raise MalformedMessage(f"cannot view buffer: {e}") from None


def decode(frames: Sequence[Any]) -> tuple[str, dict[str, Any], Arrays]:
    """(kind, meta, arrays) from received frames; arrays are zero-copy views of the frames."""
    if not frames:
        raise MalformedMessage("empty message")
    kind, meta, specs = decode_header(frames[0])
    if len(frames) != 1 + len(specs):
        raise MalformedMessage(f"header lists {len(specs)} arrays, message has {len(frames) - 1}")
    arrays: Arrays = {}
    for (name, dtype, shape), frame in zip(specs, frames[1:], strict=True):
        try:
            buf = buffer_of(frame)
        except TypeError as e:
            raise MalformedMessage(f"frame is not a buffer: {e}") from None
        arrays[name] = view(buf, dtype, shape)
    return kind, meta, arrays
