"""Streams between real processes (spawn), peers found through on-disk name records."""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Iterator
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from srl_runtime.name_records import keys
from srl_runtime.name_records.directory import DirectoryNameRecords
from srl_runtime.streams import wire
from srl_runtime.streams.inference import make_inference_client, make_inference_server
from srl_runtime.streams.sample import make_sample_consumer, make_sample_producer

pytestmark = pytest.mark.integration
ROOT = "srl/_/streams-proc"
CTX = mp.get_context("spawn")
MALFORMED_COUNT = 10_000


# ---------------------------------------------------------------- child processes


def run_inference_server(kind: str, records: str, index: int, ttl: float, stop: Any, dropped: Synchronized) -> None:
    """A policy worker stand-in: action = 2 * obs[:, 0], until `stop` is set."""
    nr = DirectoryNameRecords(records)
    server = make_inference_server(kind, nr, ROOT, index, keepalive_ttl=ttl)
    while not stop.is_set():
        for req in server.poll_requests(512, timeout=0.05):
            server.respond(req, {"action": req.arrays["obs"][:, 0] * 2, "server": np.full(req.rows, os.getpid())})
        dropped.value = server.dropped
    server.close()
    nr.close()


def run_sample_consumer(kind: str, records: str, stop: Any, dropped: Synchronized, results: Any) -> None:
    """A trainer stand-in: reports (meta, checksum) of every sample."""
    nr = DirectoryNameRecords(records)
    consumer = make_sample_consumer(kind, nr, ROOT, 0)
    while not stop.is_set():
        got = consumer.consume(timeout=0.05)
        dropped.value = consumer.dropped
        if got is not None:
            meta, arrays = got
            results.put((meta, {k: float(v.astype(np.float64).sum()) for k, v in arrays.items()}))
    consumer.close()
    nr.close()


def run_shm_client_then_hang(records: str, ready: Any) -> None:
    """An actor that posts requests, then waits to be killed (its segments must not outlive it)."""
    nr = DirectoryNameRecords(records)
    client = make_inference_client("shm", nr, ROOT)
    for _ in range(3):
        client.post_request({"obs": np.ones((32, 4), np.float32)})
    ready.set()
    time.sleep(60)


# ---------------------------------------------------------------- fixtures and helpers


class Peer:
    """A child process with a stop event and a shared dropped counter."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.stop = CTX.Event()
        self.dropped = CTX.Value("q", 0)
        self.results = CTX.Queue()
        extra = (self.results,) if target is run_sample_consumer else ()
        self.proc = CTX.Process(target=target, args=(*args, self.stop, self.dropped, *extra), daemon=True)
        self.proc.start()

    def wait_dropped(self, n: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.dropped.value < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.dropped.value

    def finish(self) -> None:
        self.stop.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.kill()
        assert self.proc.exitcode == 0, f"peer exited with {self.proc.exitcode}"

    def kill(self) -> None:
        if self.proc.pid is not None and self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(5)


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, DirectoryNameRecords]]:
    monkeypatch.setenv("SRL_IPC_DIR", str(tmp_path))  # ipc sockets of killed servers go with tmp_path
    path = str(tmp_path / "records")
    nr = DirectoryNameRecords(path)
    yield path, nr
    nr.close()


def wait_key(nr: DirectoryNameRecords, key: str, timeout: float = 20) -> str:
    return nr.wait(key, timeout=timeout, poll_interval=0.05)


def malformed_messages(n: int, rng: np.random.Generator) -> Iterator[list[bytes]]:
    """n messages of every malformation class, in rotation."""
    good = [bytes(f) for f in wire.encode("sample", {"i": 1}, {"x": np.ones((4, 4), np.float32)})]
    head = good[0]
    for i in range(n):
        c = i % 6
        if c == 0:  # random bytes
            yield [rng.bytes(int(rng.integers(0, 200)))]
        elif c == 1:  # truncated multipart: header promises an array that never comes
            yield [head]
        elif c == 2:  # bad header JSON
            yield [wire.PREFIX + b'{"k": "sample", "m": {', good[1]]
        elif c == 3:  # wrong sizes
            yield [head, good[1][:-4]]
        elif c == 4:  # disallowed dtype / bad magic
            yield [head.replace(b"<f4", b"|O8"), good[1]] if i % 12 == 4 else [b"JUNK" + head[4:], good[1]]
        else:  # header truncated mid-way
            yield [head[: int(rng.integers(0, len(head)))], good[1]]


# ---------------------------------------------------------------- inference


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_inference_across_processes(kind: str, records: tuple[str, DirectoryNameRecords]) -> None:
    path, nr = records
    server = Peer(run_inference_server, kind, path, 0, 10.0)
    try:
        wait_key(nr, keys.inference_stream(ROOT, 0))
        client = make_inference_client(kind, nr, ROOT)
        obs = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
        for i in range(20):
            out = client.wait(client.post_request({"obs": obs + i}), timeout=10)
            np.testing.assert_allclose(out["action"], (obs[:, 0] + i) * 2, rtol=1e-6)
            assert int(out["server"][0]) == server.proc.pid
        client.close()
    finally:
        server.finish()
    assert glob.glob(f"/dev/shm/srl_{os.getpid()}_*") == []


def test_inline_inference_in_process() -> None:
    class Policy:
        def rollout(self, obs: np.ndarray) -> dict[str, np.ndarray]:
            return {"action": obs.argmax(1)}

    client = make_inference_client("inline", None, ROOT, policy=Policy())
    obs = np.eye(4, dtype=np.float32)
    np.testing.assert_array_equal(client.wait(client.post_request({"obs": obs}))["action"], np.arange(4))
    client.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_killed_policy_worker_is_replaced(kind: str, records: tuple[str, DirectoryNameRecords]) -> None:
    """SIGKILL the server; a request posted meanwhile is answered by its restarted successor."""
    path, nr = records
    first = Peer(run_inference_server, kind, path, 0, 1.0)
    second = None
    try:
        first_address = wait_key(nr, keys.inference_stream(ROOT, 0))
        client = make_inference_client(kind, nr, ROOT, refresh_interval=0.1)
        obs = np.ones((8, 4), np.float32)
        assert int(client.wait(client.post_request({"obs": obs}), timeout=10)["server"][0]) == first.proc.pid
        first.kill()
        rid = client.post_request({"obs": obs})  # goes to the dead server's address
        with pytest.raises(TimeoutError):
            client.wait(rid, timeout=0.3)
        second = Peer(run_inference_server, kind, path, 0, 1.0)
        out = client.wait(rid, timeout=20)
        assert int(out["server"][0]) == second.proc.pid
        assert nr.get(keys.inference_stream(ROOT, 0)) != first_address
        client.close()
    finally:
        first.kill()
        if second is not None:
            second.finish()


def test_dead_shm_client_segments_are_removed(records: tuple[str, DirectoryNameRecords]) -> None:
    path, nr = records
    server = make_inference_server("shm", nr, ROOT, 0)
    ready = CTX.Event()
    proc = CTX.Process(target=run_shm_client_then_hang, args=(path, ready), daemon=True)
    proc.start()
    try:
        assert ready.wait(20)
        taken = []
        deadline = time.monotonic() + 10
        while len(taken) < 3 and time.monotonic() < deadline:
            taken += server.poll_requests(512, timeout=0.1)
        assert len(taken) == 3
        assert glob.glob(f"/dev/shm/srl_{proc.pid}_*")
        del taken  # views into the client's memory
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        deadline = time.monotonic() + 5
        while glob.glob(f"/dev/shm/srl_{proc.pid}_*") and time.monotonic() < deadline:
            server.poll_requests(512, timeout=0.2)
        assert glob.glob(f"/dev/shm/srl_{proc.pid}_*") == []
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        server.close()


# ---------------------------------------------------------------- samples


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_samples_across_processes(kind: str, records: tuple[str, DirectoryNameRecords]) -> None:
    path, nr = records
    consumer = Peer(run_sample_consumer, kind, path)
    try:
        wait_key(nr, keys.sample_stream(ROOT, 0))
        producer = make_sample_producer(kind, nr, ROOT)
        buf = {"obs": np.zeros((64, 8, 4), np.float32), "reward": np.zeros((64, 8), np.float32)}
        for i in range(50):
            buf["obs"][...] = i
            buf["reward"][...] = 1
            producer.post({"i": i}, buf, timeout=10)
        producer.flush(timeout=10)
        got = [consumer.results.get(timeout=10) for _ in range(50)]
        assert sorted(m["i"] for m, _ in got) == list(range(50))
        for meta, sums in got:
            assert sums == {"obs": meta["i"] * 64 * 8 * 4, "reward": 64 * 8}
        producer.close()
    finally:
        consumer.finish()
    assert consumer.dropped.value == 0


# ---------------------------------------------------------------- robustness


def test_ten_thousand_malformed_messages(records: tuple[str, DirectoryNameRecords]) -> None:
    """Garbage at a ZMQ inference server and a ZMQ sample consumer in other processes: all dropped, still serving."""
    path, nr = records
    server = Peer(run_inference_server, "zmq", path, 0, 10.0)
    consumer = Peer(run_sample_consumer, "zmq", path)
    ctx = zmq.Context.instance()
    try:
        server_address = wait_key(nr, keys.inference_stream(ROOT, 0))
        consumer_address = wait_key(nr, keys.sample_stream(ROOT, 0))
        rng = np.random.default_rng(7)
        for kind, address in ((zmq.DEALER, server_address), (zmq.PUSH, consumer_address)):
            sock = ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 5000)  # deliver everything before close returns
            sock.connect(address)
            for frames in malformed_messages(MALFORMED_COUNT, rng):
                sock.send_multipart(frames)
            sock.close()
        assert server.wait_dropped(MALFORMED_COUNT) == MALFORMED_COUNT
        assert consumer.wait_dropped(MALFORMED_COUNT) == MALFORMED_COUNT

        client = make_inference_client("zmq", nr, ROOT)
        out = client.wait(client.post_request({"obs": np.ones((3, 4), np.float32)}), timeout=10)
        np.testing.assert_array_equal(out["action"], [2.0, 2.0, 2.0])
        client.close()
        producer = make_sample_producer("zmq", nr, ROOT)
        producer.post({"ok": True}, {"x": np.arange(5, dtype=np.int64)}, timeout=10)
        meta, sums = consumer.results.get(timeout=10)
        assert meta == {"ok": True} and sums == {"x": 10.0}
        producer.close()
        assert server.dropped.value == MALFORMED_COUNT and consumer.dropped.value == MALFORMED_COUNT
        assert server.proc.is_alive() and consumer.proc.is_alive()
    finally:
        server.finish()
        consumer.finish()
