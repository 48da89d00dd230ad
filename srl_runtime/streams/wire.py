"""The stream wire format: one header frame plus one raw buffer frame per numpy array.

Frame 0 is MAGIC + VERSION + a little-endian uint16 n + n bytes of compact JSON specs
[[name, dtype, shape], ...] + compact JSON {"k": kind, "m": meta}; frames 1..n are the arrays' bytes
in C order. No pickle anywhere: a peer can only make us build arrays of whitelisted dtypes whose
size matches the bytes it actually sent.

The specs travel as their own byte string (version 2; version 1 nested them in the JSON) because a
stream's messages repeat the same few spec lists: a receiver validates each distinct spec list once
and looks the result up by its exact bytes afterwards (see parse_specs_json), and a sender encodes
each distinct one once.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

MAGIC = b"SRLW"
VERSION = 2
PREFIX = MAGIC + bytes([VERSION])
SPECS_LEN = struct.Struct("<H")  # byte length of the specs JSON, right after PREFIX
HEAD = len(PREFIX) + SPECS_LEN.size  # where the specs JSON starts
MAX_HEADER_BYTES = 64 * 1024  # headers carry names/shapes/meta only; anything bigger is hostile
MAX_ARRAYS = 256
MAX_NDIM = 32
MAX_DIM = 2**40  # keeps reshape from overflowing on zero-size arrays with absurd dims
SPEC_CACHE_SIZE = 256  # distinct spec lists (or shm layouts) remembered as validated, per process
SPEC_CACHE_MAX_BYTES = 4096  # longer spec lists are validated every time (bounds the cache's memory)

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
    if a.dtype.str in ALLOWED_DTYPES and a.flags.c_contiguous:  # the usual case: nothing to do
        return a
    dt = wire_dtype(a.dtype)
    if a.dtype != dt or not a.flags.c_contiguous:
        a = np.require(a.astype(dt, copy=False), requirements="C")
    return a


SpecKey = tuple[tuple[Any, ...], ...]  # ((name, dtype str, shape[, offset]), ...): a spec list, hashable


def array_specs(arrays: Arrays) -> tuple[bytes, list[np.ndarray]]:
    """The specs JSON [[name, dtype, shape]] and the prepared arrays, in the same order."""
    if len(arrays) > MAX_ARRAYS:
        raise ValueError(f"at most {MAX_ARRAYS} arrays per message")
    prepared = [prepare(a) for a in arrays.values()]
    key = tuple(zip(arrays, [a.dtype.str for a in prepared], [a.shape for a in prepared], strict=True))
    return specs_json(key), prepared


@functools.lru_cache(maxsize=SPEC_CACHE_SIZE)
def specs_json(key: SpecKey) -> bytes:
    """Compact JSON of a spec list given as a SpecKey (cached: a stream sends the same few)."""
    for spec in key:
        if not isinstance(spec[0], str):
            raise ValueError(f"array names must be str, got {spec[0]!r}")
    return json.dumps([[name, dtype, list(shape), *rest] for name, dtype, shape, *rest in key], separators=(",", ":")).encode()


def encode_header(kind: str, meta: dict[str, Any], specs: bytes) -> bytes:
    """Frame 0: prefix + specs length + specs JSON (from array_specs) + compact JSON of kind and meta."""
    body = json.dumps({"k": kind, "m": meta}, separators=(",", ":")).encode()
    if HEAD + len(specs) + len(body) > MAX_HEADER_BYTES:
        raise ValueError(f"header is {HEAD + len(specs) + len(body)} bytes; keep meta small (max {MAX_HEADER_BYTES})")
    return PREFIX + SPECS_LEN.pack(len(specs)) + specs + body


NO_SPECS = specs_json(())


def encode(kind: str, meta: dict[str, Any], arrays: Arrays) -> list[bytes | memoryview]:
    """Frames to send with `send_multipart(frames, copy=False)`; arrays are not copied.

    The arrays' memory is handed to ZMQ as is: don't write into them until the message is gone.
    """
    if not arrays:
        return [encode_header(kind, meta, NO_SPECS)]
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


def decode_header(frame: Any) -> tuple[str, dict[str, Any], tuple[Spec, ...]]:
    """Parse and validate frame 0: (kind, meta, specs)."""
    try:
        head = buffer_of(frame)
    except TypeError as e:
        raise MalformedMessage(f"frame 0 is not a buffer: {e}") from None
    if len(head) < HEAD or len(head) > MAX_HEADER_BYTES:
        raise MalformedMessage(f"header frame of {len(head)} bytes")
    if head[: len(MAGIC)] != MAGIC:
        raise MalformedMessage("bad magic")
    if head[len(MAGIC)] != VERSION:
        raise MalformedMessage(f"unsupported wire version {head[len(MAGIC)]}")
    (n,) = SPECS_LEN.unpack_from(head, len(PREFIX))
    if HEAD + n > len(head):
        raise MalformedMessage(f"specs of {n} bytes in a header of {len(head)}")
    specs = parse_specs_json(bytes(head[HEAD : HEAD + n]))
    doc = _json(bytes(head[HEAD + n :]), "header")
    if not isinstance(doc, dict) or doc.keys() != {"k", "m"}:
        raise MalformedMessage("header must be an object with keys k, m")
    kind, meta = doc["k"], doc["m"]
    if not isinstance(kind, str) or not isinstance(meta, dict):
        raise MalformedMessage("header fields have wrong types")
    return kind, meta, specs


def _json(raw: bytes | str, what: str) -> Any:
    """json.loads of UTF-8 bytes or a str; MalformedMessage if it is not JSON."""
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedMessage(f"{what} is not JSON: {type(e).__name__}") from None


class Spec(NamedTuple):
    """One validated array spec: where and how to view an array's bytes."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int  # bytes of the array (Python ints: no overflow)
    offset: int = 0  # shared-memory layouts only: where in the segment the array starts


def parse_specs_json(raw: bytes | str, offsets: bool = False) -> tuple[Spec, ...]:
    """Validated specs from their JSON text (see parse_specs), remembered by the exact text.

    A stream repeats a few spec lists (one per message shape, one per shm slot layout), so each is
    validated once: a later message with the same bytes gets the same (immutable) result, one with
    any byte changed is parsed and validated afresh. Invalid text is never remembered (it raises
    MalformedMessage every time), and lists over SPEC_CACHE_MAX_BYTES are not remembered at all.
    """
    if len(raw) <= SPEC_CACHE_MAX_BYTES:
        return _parse_specs_cached(raw, offsets)
    return _parse_specs_json(raw, offsets)


def _parse_specs_json(raw: bytes | str, offsets: bool) -> tuple[Spec, ...]:
    return tuple(parse_specs(_json(raw, "array specs"), offsets))


_parse_specs_cached = functools.lru_cache(maxsize=SPEC_CACHE_SIZE)(_parse_specs_json)


def parse_specs(specs: Any, offsets: bool = False) -> list[Spec]:
    """Validate [[name, dtype, shape]] entries ([[name, dtype, shape, offset]] with `offsets`)."""
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise MalformedMessage("array list missing or too long")
    out: list[Spec] = []
    names: set[str] = set()
    width = 4 if offsets else 3
    for spec in specs:
        if not isinstance(spec, list) or len(spec) != width:
            raise MalformedMessage(f"array spec must be [name, dtype, shape{', offset' if offsets else ''}]")
        name, dtype, shape = spec[:3]
        if not isinstance(name, str) or name in names:
            raise MalformedMessage("array name missing or duplicated")
        if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
            raise MalformedMessage(f"dtype {dtype!r} not allowed")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(
            type(d) is int and 0 <= d <= MAX_DIM for d in shape
        ):
            raise MalformedMessage(f"bad shape {shape!r}")
        offset = spec[3] if offsets else 0
        if type(offset) is not int or offset < 0:
            raise MalformedMessage("bad array offset")
        names.add(name)
        dt = np.dtype(dtype)
        out.append(Spec(name, dt, tuple(shape), nbytes(dt, tuple(shape)), offset))
    return out


def nbytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Bytes of a C-contiguous array (Python ints: no overflow)."""
    return math.prod(shape) * dtype.itemsize


def view(buf: memoryview, spec: Spec) -> np.ndarray:
    """A zero-copy array over exactly `buf`; MalformedMessage if sizes disagree."""
    if spec.nbytes != len(buf):
        raise MalformedMessage(f"array of {spec.shape} {spec.dtype} needs {spec.nbytes} bytes, frame has {len(buf)}")
    try:
        return np.frombuffer(buf, dtype=spec.dtype, count=spec.nbytes // spec.dtype.itemsize).reshape(spec.shape)
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
    for spec, frame in zip(specs, frames[1:], strict=True):
        try:
            buf = buffer_of(frame)
        except TypeError as e:
            raise MalformedMessage(f"frame is not a buffer: {e}") from None
        arrays[spec.name] = view(buf, spec)
    return kind, meta, arrays
