"""zmq_util.send_frames / recv_frames: the same messages as pyzmq's send_multipart / recv_multipart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from srl_runtime.streams import wire, zmq_util

pytestmark = pytest.mark.unit


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    endpoint = f"inproc://zmq-util-{uuid.uuid4().hex}"  # a closed socket's endpoint is freed asynchronously
    a.bind(endpoint)
    b.connect(endpoint)
    yield a, b
    a.close(0)
    b.close(0)


@pytest.mark.parametrize("copy", [True, False])
def test_frames_round_trip_like_multipart(pair: tuple[zmq.Socket, zmq.Socket], copy: bool) -> None:
    a, b = pair
    big = np.random.rand(256, 84).astype(np.float32)  # above pyzmq's copy threshold: zero-copy send
    frames = wire.encode("k", {"n": 1}, {"small": np.arange(4), "big": big, "empty": np.zeros((3, 0))})
    assert zmq_util.send_frames(a, frames)
    assert b.poll(3000)
    got = zmq_util.recv_frames(b, copy)
    assert got is not None and len(got) == len(frames)
    assert all(isinstance(f, bytes if copy else zmq.Frame) for f in got)
    kind, meta, arrays = wire.decode(got)
    assert (kind, meta) == ("k", {"n": 1})
    np.testing.assert_array_equal(arrays["big"], big)
    assert arrays["empty"].shape == (3, 0)
    # and interoperates with pyzmq's own calls both ways
    a.send_multipart([b"x", b"y"])
    assert b.poll(3000) and zmq_util.recv_frames(b, True) == [b"x", b"y"]
    assert zmq_util.send_frames(b, [b"only"])
    assert a.poll(3000) and a.recv_multipart() == [b"only"]


def test_recv_frames_on_an_empty_queue_is_none(pair: tuple[zmq.Socket, zmq.Socket]) -> None:
    assert zmq_util.recv_frames(pair[1], True) is None
    assert zmq_util.recv_frames(pair[1], False) is None


def test_send_frames_reports_a_full_queue_and_sends_nothing() -> None:
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)  # no peer: DEALER blocks (NOBLOCK: Again) with nowhere to send
    try:
        assert zmq_util.send_frames(dealer, [b"a", b"b"]) is False
    finally:
        dealer.close(0)


def test_send_frames_on_a_closed_socket_raises() -> None:
    sock = zmq.Context.instance().socket(zmq.PAIR)
    sock.close(0)
    with pytest.raises(zmq.ZMQError):
        zmq_util.send_frames(sock, [b"a"])
