"""The inference path's caches and incremental bookkeeping never let a changed or malformed input through.

- wire.parse_specs_json remembers validated spec lists by their exact text,
- shm.ViewCache remembers one segment's views by layout text,
- the inference client counts in-flight requests per server and scans its pending requests only
  when servers change or a resend falls due.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.streams import shm, wire
from srl_runtime.streams.inference import make_inference_client, make_inference_server
from srl_runtime.streams.wire import MalformedMessage

pytestmark = pytest.mark.unit
ROOT = "srl/_/caches-test"


@pytest.fixture
def records() -> Iterator[MemoryNameRecords]:
    nr = MemoryNameRecords()
    yield nr
    nr.close()


@pytest.fixture
def segment() -> Iterator[shm.OwnedSegment]:
    seg = shm.OwnedSegment(4096)
    yield seg
    seg.close()


# ---- wire: validated spec lists by their exact bytes
def test_a_repeated_spec_list_is_validated_once() -> None:
    raw = b'[["cache_once","<f4",[16,4]]]'
    first = wire.parse_specs_json(raw)
    assert first == (wire.Spec("cache_once", np.dtype("<f4"), (16, 4), 256),)
    assert wire.parse_specs_json(bytes(raw)) is first  # equal bytes: the remembered result


def test_a_changed_byte_is_parsed_afresh() -> None:
    a = wire.parse_specs_json(b'[["cache_changed","<f4",[16,4]]]')
    b = wire.parse_specs_json(b'[["cache_changed","<f4",[16,5]]]')
    assert a[0].shape == (16, 4) and b[0].shape == (16, 5)


@pytest.mark.parametrize(
    "raw",
    [b'[["x","|O",[1]]]', b'[["x","<f4",[-1]]]', b'[["x","<f4",[1]],["x","<f4",[1]]]', b"[[", b"\xff"],
)
def test_an_invalid_spec_list_raises_every_time_and_is_not_remembered(raw: bytes) -> None:
    for _ in range(3):
        with pytest.raises(MalformedMessage):
            wire.parse_specs_json(raw)


def test_spec_lists_are_told_apart_from_layouts() -> None:
    raw = '[["cache_kind","<f4",[4],64]]'
    assert wire.parse_specs_json(raw, offsets=True)[0].offset == 64
    with pytest.raises(MalformedMessage):  # the same text is not a valid plain spec list
        wire.parse_specs_json(raw)


def test_long_spec_lists_are_validated_but_not_remembered() -> None:
    specs = [[f"long{i}", "<f4", [i]] for i in range(200)]
    raw = json.dumps(specs).encode()
    assert len(raw) > wire.SPEC_CACHE_MAX_BYTES
    a, b = wire.parse_specs_json(raw), wire.parse_specs_json(raw)
    assert a == b and a is not b


def test_the_sender_side_spec_cache_refuses_non_str_names() -> None:
    with pytest.raises(ValueError):
        wire.encode("k", {}, {1: np.ones(2)})  # type: ignore[dict-item]
    with pytest.raises(ValueError):  # still refused when asked again
        wire.encode("k", {}, {1: np.ones(2)})  # type: ignore[dict-item]


# ---- shm: views of one segment by layout text
def test_a_segment_reuses_views_for_the_same_layout(segment: shm.OwnedSegment) -> None:
    layout, _ = segment.write({"obs": np.arange(8, dtype=np.float32).reshape(2, 4)})
    first = segment.views.get(layout)
    again = segment.views.get(layout)
    assert again is not first and again["obs"] is first["obs"]  # a new dict of the same views
    first.clear()  # a caller mutating its dict cannot poison the cache
    np.testing.assert_array_equal(segment.views.get(layout)["obs"], np.arange(8).reshape(2, 4))
    segment.write({"obs": np.full((2, 4), 7, np.float32)})  # new contents show through the views
    np.testing.assert_array_equal(segment.read(layout)["obs"], np.full((2, 4), 7))


def test_a_changed_layout_on_the_same_segment_is_parsed_afresh(segment: shm.OwnedSegment) -> None:
    layout, _ = segment.write({"obs": np.zeros((2, 4), np.float32)})
    segment.views.get(layout)
    other = layout.replace("[2,4]", "[4,2]")
    assert segment.views.get(other)["obs"].shape == (4, 2)
    assert segment.views.get(layout)["obs"].shape == (2, 4)


@pytest.mark.parametrize(
    "layout",
    [
        '[["x","<f4",[2000],0]]',  # past the end
        '[["x","<f4",[4],4090]]',  # straddles the end
        '[["x","|O",[1],0]]',
        '[["x","<f4",[4]]]',  # no offset
        '[["x","<f4",[4],-64]]',
        "not json",
        [["x", "<f4", [4], 0]],  # a list, not JSON text
        None,
    ],
)
def test_a_hostile_layout_raises_every_time(segment: shm.OwnedSegment, layout: object) -> None:
    good, _ = segment.write({"x": np.zeros(4, np.float32)})
    segment.views.get(good)
    for _ in range(3):
        with pytest.raises(MalformedMessage):
            segment.views.get(layout)


def test_the_same_layout_is_checked_against_each_segment_size() -> None:
    small, big = shm.OwnedSegment(4096), shm.OwnedSegment(8192)
    layout = '[["x","<f4",[1024],4096]]'  # fits 8192 bytes only
    assert big.views.get(layout)["x"].shape == (1024,)
    with pytest.raises(MalformedMessage):
        small.views.get(layout)
    small.close()
    big.close()


def test_a_closed_segment_has_no_views_left(segment: shm.OwnedSegment) -> None:
    layout, _ = segment.write({"x": np.ones(4, np.float32)})
    segment.views.get(layout)
    segment.close()
    with pytest.raises(MalformedMessage):
        segment.views.get(layout)


# ---- the server: the same slot with a changed or hostile layout
def _send_request(sock: zmq.Socket, seg: shm.OwnedSegment, layout: object, rid: int) -> None:
    meta = {"id": rid, "n": 1, **shm.identity(), "shm": {"seg": seg.name, "a": layout, "r": 2048}}
    sock.send_multipart(wire.encode("infer_req", meta, {}))


def _poll_one(server: object, timeout: float = 3.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = server.poll_requests(64, timeout=0.1)  # type: ignore[attr-defined]
        if got:
            return got
    return []


def test_server_revalidates_a_slot_whose_layout_changed(records: MemoryNameRecords, segment: shm.OwnedSegment) -> None:
    server = make_inference_server("shm", records, ROOT, 0)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    try:
        layout, _ = segment.write({"obs": np.arange(8, dtype=np.float32).reshape(2, 4)})
        _send_request(sock, segment, layout, 1)
        (req,) = _poll_one(server)
        assert req.arrays["obs"].shape == (2, 4)
        _send_request(sock, segment, '[["obs","<f4",[4,2000],0]]', 2)  # the same slot, now past its end
        _send_request(sock, segment, layout.replace("[2,4]", "[1,4]"), 3)  # the same slot, another shape
        (req,) = _poll_one(server)
        assert req.request_id == 3 and req.arrays["obs"].shape == (1, 4)
        assert server.dropped == 1 and server.drop_reasons["wire"] == 1
        _send_request(sock, segment, layout, 4)  # and the first layout is still served
        (req,) = _poll_one(server)
        assert req.request_id == 4 and req.arrays["obs"].shape == (2, 4)
    finally:
        sock.close()
        server.close()


# ---- the client: incremental in-flight counts and resend deadlines
def _requests_at(server: object, want: int, timeout: float = 3.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += server.poll_requests(64, timeout=0.05)  # type: ignore[attr-defined]
    return got


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_client_declares_its_in_flight_count(kind: str, records: MemoryNameRecords) -> None:
    server = make_inference_server(kind, records, ROOT, 0)
    client = make_inference_client(kind, records, ROOT)
    obs = {"obs": np.ones((2, 4), np.float32)}
    try:
        rids = [client.post_request(obs) for _ in range(3)]
        reqs = _requests_at(server, 3)
        assert [r.in_flight for r in reqs] == [1, 2, 3]
        for r in reqs[:2]:
            server.respond(r, {"action": np.zeros(2)})
        for rid in rids[:2]:
            client.wait(rid, timeout=3)
        client.cancel(rids[2])
        client.post_request(obs)  # the answered and the cancelled ones no longer count
        (req,) = _requests_at(server, 1)
        assert req.in_flight == 1
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_client_resends_only_once_a_request_is_overdue(kind: str, records: MemoryNameRecords) -> None:
    server = make_inference_server(kind, records, ROOT, 0)
    client = make_inference_client(kind, records, ROOT, resend_after=0.3)
    try:
        rid = client.post_request({"obs": np.ones((2, 4), np.float32)})
        assert len(_requests_at(server, 1)) == 1
        assert not client.is_ready(rid)
        assert _requests_at(server, 1, timeout=0.1) == []  # not due yet: nothing re-sent
        time.sleep(0.35)
        assert not client.is_ready(rid)  # now due: re-sent (its in-flight count is still 1)
        (again,) = _requests_at(server, 1)
        assert again.request_id == rid and again.in_flight == 1
        server.respond(again, {"action": np.zeros(2)})
        assert client.wait(rid, timeout=3)["action"].shape == (2,)
    finally:
        client.close()
        server.close()
