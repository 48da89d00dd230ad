"""Streams within one process (threads, in-memory name records): semantics, batching, failover."""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameEntryNotFound
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.streams import wire
from srl_runtime.streams.inference import (
    InferenceServer,
    make_inference_client,
    make_inference_server,
)
from srl_runtime.streams.inference.base import RoundTrips
from srl_runtime.streams.sample import make_sample_consumer, make_sample_producer

pytestmark = pytest.mark.unit
ROOT = "srl/_/streams-test"


class Doubler:
    """A stand-in policy: action = 2 * obs[:, 0]."""

    def rollout(self, obs: np.ndarray, **_: np.ndarray) -> dict[str, np.ndarray]:
        return {"action": obs[:, 0] * 2, "rows": np.full(len(obs), len(obs))}


def serve(server: InferenceServer, stop: threading.Event, max_rows: int = 512) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            for req in server.poll_requests(max_rows, 0.02):
                server.respond(req, Doubler().rollout(**req.arrays))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


@pytest.fixture
def records() -> Iterator[MemoryNameRecords]:
    nr = MemoryNameRecords()
    yield nr
    nr.close()


def our_segments() -> list[str]:
    return glob.glob(f"/dev/shm/srl_{os.getpid()}_*")


def test_inline_calls_policy() -> None:
    client = make_inference_client("inline", None, ROOT, policy=Doubler())
    obs = np.arange(8, dtype=np.float32).reshape(4, 2)
    rid = client.post_request({"obs": obs})
    assert client.is_ready(rid)
    np.testing.assert_array_equal(client.wait(rid)["action"], obs[:, 0] * 2)
    with pytest.raises(KeyError):
        client.wait(rid)
    trips = client.round_trips.summary()
    assert trips["count"] == 1 and 0 < trips["p50"] == trips["p99"] < 1
    client.close()


def test_round_trips_keep_a_window_of_recent_requests() -> None:
    trips = RoundTrips(window=100)
    assert trips.summary() == {"window": 0, "count": 0}
    for ms in range(1, 201):  # 1..200 ms; the window holds the last 100: 101..200
        trips.observe(ms / 1000)
    s = trips.summary()
    assert s["count"] == 200 and s["window"] == 100
    assert s["p50"] == pytest.approx(0.1505) and s["p99"] == pytest.approx(0.19901)


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_inference_round_trip(kind: str, records: MemoryNameRecords) -> None:
    server = make_inference_server(kind, records, ROOT, 0)
    assert records.get(keys.inference_stream(ROOT, 0)) == server.address
    client = make_inference_client(kind, records, ROOT)
    stop = threading.Event()
    t = serve(server, stop)
    obs = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    ids = [client.post_request({"obs": obs + i}) for i in range(10)]
    for i, rid in enumerate(ids):
        out = client.wait(rid, timeout=5)
        np.testing.assert_allclose(out["action"], (obs[:, 0] + i) * 2, rtol=1e-6)
    trips = client.round_trips.summary()  # post to answer, per request, as the actor sees it
    assert trips["count"] == 10 and 0 < trips["p50"] <= trips["p99"] < 5
    # a reply bigger than the slot's reply area arrives inline, and later slots grow to fit it
    big = np.zeros((5000, 4), np.float32)
    np.testing.assert_array_equal(client.wait(client.post_request({"obs": big}), timeout=5)["action"], 0)
    stop.set()
    t.join()
    client.close()
    server.close()
    assert server.dropped == 0
    assert our_segments() == []
    with pytest.raises(NameEntryNotFound):
        records.get(keys.inference_stream(ROOT, 0))


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_adaptive_batching_respects_max_rows(kind: str, records: MemoryNameRecords) -> None:
    server = make_inference_server(kind, records, ROOT, 0)
    client = make_inference_client(kind, records, ROOT)
    ids = [client.post_request({"obs": np.zeros((8, 4), np.float32)}) for _ in range(10)]
    batches = []
    deadline = time.monotonic() + 5
    while sum(len(b) for b in batches) < 10 and time.monotonic() < deadline:
        batch = server.poll_requests(20, timeout=0.5)
        assert sum(r.rows for r in batch) <= 20
        batches.append(batch)
        for req in batch:
            server.respond(req, {"action": req.arrays["obs"][:, 0]})
        time.sleep(0.05)  # let the rest arrive so the next poll takes several
    assert sum(len(b) for b in batches) == 10 and max(len(b) for b in batches) == 2
    for rid in ids:
        assert client.wait(rid, timeout=5)["action"].shape == (8,)
    assert server.poll_requests(20, timeout=0.01) == []
    client.close()
    server.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_client_follows_a_restarted_server(kind: str, records: MemoryNameRecords) -> None:
    first = make_inference_server(kind, records, ROOT, 0)
    client = make_inference_client(kind, records, ROOT, refresh_interval=0.05)
    rid = client.post_request({"obs": np.ones((4, 2), np.float32)})
    assert len(first.poll_requests(64, timeout=2)) == 1  # taken, never answered: the server "dies"
    first.close()
    with pytest.raises(TimeoutError):
        client.wait(rid, timeout=0.2)  # no server at all: times out cleanly
    second = make_inference_server(kind, records, ROOT, 0)
    assert second.address != first.address
    stop = threading.Event()
    t = serve(second, stop)
    np.testing.assert_array_equal(client.wait(rid, timeout=5)["action"], np.full(4, 2.0))
    stop.set()
    t.join()
    client.close()
    second.close()


def test_client_spreads_requests_round_robin(records: MemoryNameRecords) -> None:
    servers = [make_inference_server("zmq", records, ROOT, i) for i in range(2)]
    client = make_inference_client("zmq", records, ROOT)
    ids = [client.post_request({"obs": np.ones((1, 1), np.float32)}) for _ in range(6)]
    counts = []
    for s in servers:
        got = []
        deadline = time.monotonic() + 3
        while len(got) < 3 and time.monotonic() < deadline:
            got += s.poll_requests(64, timeout=0.2)
        counts.append(len(got))
        for req in got:
            s.respond(req, {"action": req.arrays["obs"][:, 0]})
    assert counts == [3, 3]
    for rid in ids:
        client.wait(rid, timeout=5)
    client.close()
    for s in servers:
        s.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_server_drops_garbage_and_keeps_serving(kind: str, records: MemoryNameRecords) -> None:
    server = make_inference_server(kind, records, ROOT, 0)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.address)
    bad = [
        [b"junk"],
        wire.encode("infer_req", {"id": -1}, {}),
        wire.encode("infer_req", {"id": "x"}, {}),
        wire.encode("nope", {"id": 1}, {}),
        wire.encode("infer_req", {"id": 1}, {"x": np.ones(3)})[:1],
        # shm references that must not be mapped: bad names, someone else's segment, no such segment
        wire.encode("infer_req", {"id": 1, "pid": 1, "ns": "", "shm": {"seg": "/etc/passwd", "a": "[]", "r": 0}}, {}),
        wire.encode("infer_req", {"id": 1, "pid": 1, "ns": "", "shm": {"seg": "srl_2_0123456789", "a": "[]", "r": 0}}, {}),
        wire.encode("infer_req", {"id": 1, "pid": 1, "ns": "", "shm": {"seg": "srl_1_0123456789", "a": "[]", "r": 0}}, {}),
        wire.encode("infer_req", {"id": 1, "shm": 5}, {}),
    ]
    # zmq ignores the shm field: the last four are valid (empty) requests to it
    expected = len(bad) if kind == "shm" else len(bad) - 4
    for frames in bad:
        sock.send_multipart(frames, copy=False)
    taken = []
    deadline = time.monotonic() + 3
    while server.dropped < expected and time.monotonic() < deadline:
        taken += server.poll_requests(64, timeout=0.1)
    assert server.dropped == expected
    client = make_inference_client(kind, records, ROOT)
    stop = threading.Event()
    t = serve(server, stop)
    rid = client.post_request({"obs": np.ones((2, 2), np.float32)})
    np.testing.assert_array_equal(client.wait(rid, timeout=5)["action"], [2.0, 2.0])
    stop.set()
    t.join()
    sock.close()
    client.close()
    server.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_sample_stream_delivers_copies(kind: str, records: MemoryNameRecords) -> None:
    consumer = make_sample_consumer(kind, records, ROOT, 0)
    assert records.get(keys.sample_stream(ROOT, 0)) == consumer.address
    producer = make_sample_producer(kind, records, ROOT)
    buf = {"obs": np.zeros((16, 4, 3), np.float32), "done": np.zeros((16, 4), np.bool_)}
    for i in range(5):
        buf["obs"][...] = i
        producer.post({"i": i}, buf, timeout=5)  # buffer reused at once, as actors do
    buf["obs"][...] = -1
    got = [consumer.consume(timeout=5) for _ in range(5)]
    assert [m["i"] for m, _ in got] == list(range(5))
    for i, (_, arrays) in enumerate(got):
        assert arrays["obs"].shape == (16, 4, 3) and float(arrays["obs"].min()) == i
        assert arrays["done"].dtype == np.bool_
    assert consumer.consume(timeout=0.05) is None
    producer.flush(timeout=2)
    producer.close()
    consumer.close()
    assert consumer.dropped == 0 and our_segments() == []


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_sample_producer_applies_back_pressure(kind: str, records: MemoryNameRecords) -> None:
    consumer = make_sample_consumer(kind, records, ROOT, 0, hwm=2) if kind == "zmq" else make_sample_consumer(kind, records, ROOT, 0)
    producer = (
        make_sample_producer(kind, records, ROOT, hwm=2) if kind == "zmq" else make_sample_producer(kind, records, ROOT, ring_size=3)
    )
    big = {"obs": np.zeros((1024, 1024), np.uint8)}  # 1 MiB: kernel socket buffers can't hide many
    posted = 0
    with pytest.raises(TimeoutError):
        for _ in range(200):
            producer.post({}, big, timeout=0.3)
            posted += 1
    assert 2 <= posted < 50
    assert consumer.consume(timeout=2) is not None
    producer.post({}, big, timeout=2)  # room again once the trainer takes one
    producer.close()
    consumer.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_a_consumer_that_stops_consuming_does_not_starve_the_others(kind: str, records: MemoryNameRecords) -> None:
    """Two trainers in a group: one waits in the all-reduce (consumes nothing) for the other, which
    still needs samples. The producers must keep feeding the one that consumes."""
    waiting = make_sample_consumer(kind, records, ROOT, 0, **({"hwm": 2} if kind == "zmq" else {}))
    hungry = make_sample_consumer(kind, records, ROOT, 1, **({"hwm": 2} if kind == "zmq" else {}))
    producer = (
        make_sample_producer(kind, records, ROOT, hwm=2) if kind == "zmq" else make_sample_producer(kind, records, ROOT, ring_size=4)
    )
    sample = {"obs": np.zeros((256, 1024), np.uint8)}
    received: list[int] = []
    done = threading.Event()

    def consume() -> None:  # the hungry trainer, in its own thread as in its own process
        while not done.is_set():
            if hungry.consume(timeout=0.05) is not None:
                received.append(1)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    try:
        for i in range(40):
            producer.post({"i": i}, sample, timeout=5)  # TimeoutError here is the starvation
        deadline = time.monotonic() + 10
        while len(received) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        t.join(5)
    # Every post went through; what the waiting trainer did not hold went to the hungry one.
    assert len(received) >= 10, f"the consuming trainer got only {len(received)} of 40"
    producer.close()
    waiting.close()
    hungry.close()


def test_no_consumer_times_out(records: MemoryNameRecords) -> None:
    for kind in ("zmq", "shm"):
        producer = make_sample_producer(kind, records, ROOT, refresh_interval=0.05)
        with pytest.raises(TimeoutError):
            producer.post({}, {"x": np.zeros(3)}, timeout=0.2)
        producer.close()


def test_shm_sample_consumer_rejects_bad_references(records: MemoryNameRecords) -> None:
    consumer = make_sample_consumer("shm", records, ROOT, 0)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(consumer.address)
    from srl_runtime.streams import shm

    seg = shm.OwnedSegment(4096)
    me = shm.identity()
    bad = [
        {"m": {}, **me, "shm": {"seg": seg.name, "a": '[["x", "<f4", [2000], 0]]'}},  # past the end
        {"m": {}, **me, "shm": {"seg": seg.name, "a": '[["x", "<f4", [4], 4090]]'}},  # straddles the end
        {"m": {}, "pid": 1, "ns": me["ns"], "shm": {"seg": seg.name, "a": "[]"}},  # not pid 1's
        {"m": [], **me, "shm": {"seg": seg.name, "a": "[]"}},
        {"m": {}, **me, "shm": {"seg": seg.name, "a": '[["x", "|O", [1], 0]]'}},
        {"m": {}, **me, "shm": {"seg": seg.name, "a": [["x", "<f4", [4], 64]]}},  # a list, not JSON text
    ]
    for note in bad:
        sock.send_multipart(wire.encode("shm_sample", note, {}))
    ok = {"m": {"fine": True}, **me, "shm": {"seg": seg.name, "a": '[["x", "<f4", [4], 64]]'}}
    sock.send_multipart(wire.encode("shm_sample", ok, {}))
    got = consumer.consume(timeout=3)
    assert got is not None and got[0] == {"fine": True} and consumer.dropped == len(bad)
    assert sock.poll(3000) and wire.decode(sock.recv_multipart())[0] == "shm_release"
    sock.close()
    consumer.close()
    seg.close()
