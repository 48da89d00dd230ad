"""Wire format: round trips for every allowed dtype and many shapes; every malformation rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq

from srl_runtime.streams import wire
from srl_runtime.streams.wire import MalformedMessage, decode, encode

pytestmark = pytest.mark.unit

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.float16, np.float32, np.float64]
SHAPES = [(), (0,), (1,), (7,), (3, 0, 2), (32, 4), (2, 3, 4, 5), (1,) * 10]


def sample(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip(dtype: type, shape: tuple[int, ...]) -> None:
    a = sample(dtype, shape)
    kind, meta, arrays = decode(encode("k", {"x": [1, "y"], "z": None}, {"a": a, "b": a.T}))
    assert (kind, meta) == ("k", {"x": [1, "y"], "z": None})
    for name, ref in (("a", a), ("b", a.T)):
        assert arrays[name].dtype == ref.dtype and arrays[name].shape == ref.shape
        np.testing.assert_array_equal(arrays[name], ref)


def test_non_contiguous_and_big_endian_arrive_equal() -> None:
    base = np.arange(60, dtype=">i4").reshape(3, 4, 5)
    strided = base[:, ::2, 1:]
    _, _, arrays = decode(encode("k", {}, {"s": strided}))
    assert arrays["s"].dtype == np.dtype("<i4")
    np.testing.assert_array_equal(arrays["s"], strided)


def test_no_arrays_and_many_arrays() -> None:
    assert decode(encode("k", {"a": 1}, {})) == ("k", {"a": 1}, {})
    many = {f"x{i}": np.full(3, i) for i in range(wire.MAX_ARRAYS)}
    _, _, out = decode(encode("k", {}, many))
    assert list(out) == list(many) and int(out["x255"][0]) == 255


def test_round_trip_through_zmq_frames_is_zero_copy() -> None:
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://wire-test")
    b.connect("inproc://wire-test")
    obs = np.random.rand(256, 84).astype(np.float32)  # above pyzmq's copy threshold
    a.send_multipart(encode("obs", {"n": 1}, {"obs": obs}), copy=False)
    frames = b.recv_multipart(copy=False)
    _, _, arrays = decode(frames)
    np.testing.assert_array_equal(arrays["obs"], obs)
    assert np.shares_memory(arrays["obs"], np.frombuffer(frames[1].buffer, np.uint8))
    a.close(0)
    b.close(0)


@pytest.mark.parametrize("bad", [np.array(["a"]), np.array([object()]), np.zeros(2, np.complex64),
                                 np.zeros(2, "datetime64[s]"), np.zeros(2, [("a", "i4")])])
def test_encode_refuses_unsafe_dtypes(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode("k", {}, {"x": bad})


def raw_header(specs: bytes, body: bytes, magic: bytes = wire.MAGIC, version: int = wire.VERSION) -> bytes:
    """Frame 0 from its two sections as given (the specs length is theirs)."""
    return magic + bytes([version]) + wire.SPECS_LEN.pack(len(specs)) + specs + body


def header(doc: object, magic: bytes = wire.MAGIC, version: int = wire.VERSION) -> bytes:
    """Frame 0 from a {"k", "m", "a"} document: "a" goes to the specs section (none: empty), the rest to the body."""
    if isinstance(doc, dict) and "a" in doc:
        specs, body = json.dumps(doc["a"]).encode(), {k: v for k, v in doc.items() if k != "a"}
    else:
        specs, body = b"", doc
    return raw_header(specs, json.dumps(body).encode(), magic, version)


GOOD = np.arange(6, dtype=np.float32).reshape(2, 3)
GOOD_HEAD = {"k": "k", "m": {}, "a": [["x", "<f4", [2, 3]]]}

MALFORMED: dict[str, list[object]] = {
    "empty message": [],
    "empty header": [b""],
    "short header": [b"SRL"],
    "bad magic": [b"XXXX\x01{}"],
    "bad version": [header(GOOD_HEAD, version=9), GOOD.tobytes()],
    "not json": [raw_header(b'[["x","<f4",[2,3]]]', b"{nope"), GOOD.tobytes()],
    "not utf8": [raw_header(b'[["x","<f4",[2,3]]]', b"\xff\xfe"), GOOD.tobytes()],
    "deep json": [raw_header(b"[]", b"[" * 30000 + b"]" * 30000)],
    "specs not json": [raw_header(b'[["x","<f4",[2,3]]', b'{"k":"k","m":{}}'), GOOD.tobytes()],
    "specs not utf8": [raw_header(b"\xff\xfe", b'{"k":"k","m":{}}'), GOOD.tobytes()],
    "specs deep json": [raw_header(b"[" * 30000 + b"]" * 30000, b'{"k":"k","m":{}}')],
    "specs past the end": [wire.PREFIX + wire.SPECS_LEN.pack(100) + b'[["x","<f4",[2,3]]]', GOOD.tobytes()],
    "no specs length": [wire.PREFIX + b"["],
    "version 1 header": [wire.MAGIC + b"\x01" + json.dumps(GOOD_HEAD).encode(), GOOD.tobytes()],
    "huge header": [wire.PREFIX + b" " * wire.MAX_HEADER_BYTES + b"{}"],
    "json list": [header([1, 2])],
    "missing key": [header({"k": "k", "m": {}})],
    "extra key": [header({**GOOD_HEAD, "z": 1}), GOOD.tobytes()],
    "kind not str": [header({**GOOD_HEAD, "k": 5}), GOOD.tobytes()],
    "meta not dict": [header({**GOOD_HEAD, "m": []}), GOOD.tobytes()],
    "arrays not list": [header({**GOOD_HEAD, "a": {}}), GOOD.tobytes()],
    "spec not list": [header({**GOOD_HEAD, "a": ["x"]}), GOOD.tobytes()],
    "spec too short": [header({**GOOD_HEAD, "a": [["x", "<f4"]]}), GOOD.tobytes()],
    "name not str": [header({**GOOD_HEAD, "a": [[1, "<f4", [2, 3]]]}), GOOD.tobytes()],
    "duplicate name": [header({**GOOD_HEAD, "a": [["x", "<f4", [6]], ["x", "<f4", [6]]]}),
                       GOOD.tobytes(), GOOD.tobytes()],
    "object dtype": [header({**GOOD_HEAD, "a": [["x", "|O", [1]]]}), b"\0" * 8],
    "big endian dtype": [header({**GOOD_HEAD, "a": [["x", ">f4", [2, 3]]]}), GOOD.tobytes()],
    "unicode dtype": [header({**GOOD_HEAD, "a": [["x", "<U2", [3]]]}), b"\0" * 24],
    "garbage dtype": [header({**GOOD_HEAD, "a": [["x", "float32!", [2, 3]]]}), GOOD.tobytes()],
    "negative dim": [header({**GOOD_HEAD, "a": [["x", "<f4", [-2, -3]]]}), GOOD.tobytes()],
    "float dim": [header({**GOOD_HEAD, "a": [["x", "<f4", [2.0, 3]]]}), GOOD.tobytes()],
    "bool dim": [header({**GOOD_HEAD, "a": [["x", "<f4", [True, 6]]]}), GOOD.tobytes()],
    "absurd dims": [header({**GOOD_HEAD, "a": [["x", "<f4", [0, 2**62, 2**62]]]}), b""],
    "too many dims": [header({**GOOD_HEAD, "a": [["x", "<f4", [1] * 40]]}), b"\0" * 4],
    "shape not list": [header({**GOOD_HEAD, "a": [["x", "<f4", 6]]}), GOOD.tobytes()],
    "frame too short": [header(GOOD_HEAD), GOOD.tobytes()[:-1]],
    "frame too long": [header(GOOD_HEAD), GOOD.tobytes() + b"\0"],
    "size overflow": [header({**GOOD_HEAD, "a": [["x", "<f8", [2**40, 2**40]]]}), b"\0" * 8],
    "missing frame": [header(GOOD_HEAD)],
    "extra frame": [header(GOOD_HEAD), GOOD.tobytes(), b"x"],
    "too many arrays": [header({**GOOD_HEAD, "a": [[f"x{i}", "<f4", [0]] for i in range(300)]})]
    + [b""] * 300,
    "header not a buffer": [12345],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_is_rejected(name: str) -> None:
    with pytest.raises(MalformedMessage):
        decode(MALFORMED[name])


def test_random_bytes_never_escape_as_other_errors() -> None:
    rng = np.random.default_rng(1)
    valid = encode("k", {"m": 1}, {"x": GOOD})
    head = bytes(valid[0])
    for _ in range(2000):
        choice = rng.integers(4)
        if choice == 0:
            frames = [rng.bytes(int(rng.integers(0, 64))) for _ in range(int(rng.integers(1, 4)))]
        elif choice == 1:  # flip bytes in a valid header
            h = bytearray(head)
            for i in rng.integers(0, len(h), size=3):
                h[i] = int(rng.integers(256))
            frames = [bytes(h), GOOD.tobytes()]
        elif choice == 2:  # truncate the header
            frames = [head[: int(rng.integers(0, len(head)))], GOOD.tobytes()]
        else:  # right header, random payload length
            frames = [head, rng.bytes(int(rng.integers(0, 48)))]
        try:
            decode(frames)
        except MalformedMessage:
            pass


def test_the_malformed_cases_differ_from_a_good_header_only_where_they_say() -> None:
    kind, meta, arrays = decode([header(GOOD_HEAD), GOOD.tobytes()])
    assert (kind, meta) == ("k", {}) and np.array_equal(arrays["x"], GOOD)
    kind, meta, arrays = decode([raw_header(b'[["x","<f4",[2,3]]]', b'{"k":"k","m":{}}'), GOOD.tobytes()])
    assert np.array_equal(arrays["x"], GOOD)
