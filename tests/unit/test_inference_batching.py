"""The policy worker's batching rule: wait for more requests only while an active actor's ring is
not all in the batch yet, and never past maxWaitMs."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest

from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.streams import wire
from srl_runtime.streams.inference import (
    InferenceRequest,
    make_inference_client,
    make_inference_server,
)
from srl_runtime.streams.inference.batching import ActiveClients, gather_batch
from srl_runtime.streams.inference.zmq_stream import REQUEST

ROOT = "srl/_/batching"


def _req(client: bytes, in_flight: int = 1) -> InferenceRequest:
    return InferenceRequest(client=client, request_id=0, arrays={"obs": np.zeros((2, 4), np.float32)}, in_flight=in_flight)


def test_missing_counts_what_active_clients_still_have_in_flight() -> None:
    clients = ActiveClients(window=1.0)
    clients.note([_req(b"a", 2), _req(b"b", 1)], now=0.0)
    assert clients.missing(collections.Counter([b"a"]), now=0.1) == 2  # a's second slot and b
    assert clients.missing(collections.Counter([b"a", b"a", b"b"]), now=0.1) == 0
    assert clients.missing(collections.Counter([b"a", b"a"]), now=1.5) == 0  # b went quiet: forgotten
    assert clients.missing(collections.Counter(), now=1.5) == 0


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_gather_waits_for_an_actors_whole_ring_and_no_longer_than_max_wait(kind: str) -> None:
    records = MemoryNameRecords()
    server = make_inference_server(kind, records, ROOT, 0)
    a, b = (make_inference_client(kind, records, ROOT) for _ in range(2))
    obs = np.zeros((2, 4), np.float32)
    try:
        clients = ActiveClients(window=60.0)
        a.post_request({"obs": obs})
        started = time.monotonic()
        first = gather_batch(server, clients, 512, max_wait_ms=20_000, timeout=10)
        assert [r.in_flight for r in first] == [1]
        assert time.monotonic() - started < 10  # a alone with one request in flight: nothing to wait for
        ring = [a.post_request({"obs": obs}), a.post_request({"obs": obs}), b.post_request({"obs": obs})]
        batch = gather_batch(server, clients, 512, max_wait_ms=20_000, timeout=10)
        assert sorted(r.in_flight for r in batch) == [1, 2, 3]  # a: 1 unanswered + 2 new; b: 1
        for r in batch:  # answer everything (a's first request too) so counts start afresh
            server.respond(r, {"action": np.zeros(2, np.int64)})
        server.respond(first[0], {"action": np.zeros(2, np.int64)})
        a.wait(ring[0], timeout=10), a.wait(ring[1], timeout=10), b.wait(ring[2], timeout=10)
        a.post_request({"obs": obs})
        started = time.monotonic()
        assert len(gather_batch(server, clients, 512, max_wait_ms=500, timeout=10)) == 1
        assert time.monotonic() - started >= 0.45  # b is active but silent: waited to the deadline
    finally:
        a.close()
        b.close()
        server.close()
        records.close()


@pytest.mark.parametrize("n", [0, -1, 10**9, "2", True, 1.5])
def test_server_drops_requests_with_an_implausible_in_flight_count(n: object) -> None:
    import zmq

    records = MemoryNameRecords()
    server = make_inference_server("zmq", records, ROOT, 0)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(server.address)
    try:
        sock.send_multipart(wire.encode(REQUEST, {"id": 1, "n": n}, {"obs": np.zeros((2, 4), np.float32)}))
        assert server.poll_requests(512, timeout=0.5) == []
        deadline = time.monotonic() + 5
        while server.dropped == 0 and time.monotonic() < deadline:
            server.poll_requests(512, timeout=0.1)
        assert server.dropped == 1
    finally:
        sock.close(0)
        server.close()
        records.close()
