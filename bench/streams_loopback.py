"""Loopback micro-benchmark of the streams between two processes.

Prints inference round trips/s (a batch of 32 CartPole observations, one request in flight and
several pipelined) and sample-stream MB/s, for ZMQ over tcp://127.0.0.1 and for shared memory.

    python bench/streams_loopback.py [--seconds 3] [--kinds zmq,shm] [--sample-mb 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from typing import Any

import numpy as np

from srl_runtime.name_records import keys
from srl_runtime.name_records.directory import DirectoryNameRecords
from srl_runtime.streams.inference import make_inference_client, make_inference_server
from srl_runtime.streams.sample import make_sample_consumer, make_sample_producer

ROOT = "srl/_/bench"
CTX = mp.get_context("spawn")


def serve_inference(kind: str, records: str, stop: Any) -> None:
    """Answer with CartPole-sized outputs (action, log-prob, value) without a network."""
    server = make_inference_server(kind, DirectoryNameRecords(records), ROOT, 0)
    while not stop.is_set():
        for req in server.poll_requests(512, timeout=0.05):
            n = req.rows
            server.respond(req, {"action": np.zeros(n, np.int64), "logp": np.zeros(n, np.float32),
                                 "value": req.arrays["obs"][:, 0].copy()})
    server.close()


def consume_samples(kind: str, records: str, stop: Any, report: Any) -> None:
    """Count bytes received; report (messages, bytes, first-to-last seconds)."""
    consumer = make_sample_consumer(kind, DirectoryNameRecords(records), ROOT, 0)
    count = nbytes = 0
    first = last = 0.0
    while not stop.is_set():
        got = consumer.consume(timeout=0.05)
        if got is None:
            continue
        last = time.perf_counter()
        if count == 0:
            first = last
        count += 1
        nbytes += sum(a.nbytes for a in got[1].values())
    report.put((count, nbytes, last - first))
    consumer.close()


def bench_inference(kind: str, records: str, seconds: float, in_flight: int) -> float:
    nr = DirectoryNameRecords(records)
    stop = CTX.Event()
    proc = CTX.Process(target=serve_inference, args=(kind, records, stop), daemon=True)
    proc.start()
    nr.wait(keys.inference_stream(ROOT, 0), timeout=60, poll_interval=0.05)
    client = make_inference_client(kind, nr, ROOT)
    obs = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    for _ in range(50):  # warm up connections and slots
        client.wait(client.post_request({"obs": obs}), timeout=10)
    done = 0
    start = time.perf_counter()
    pending = [client.post_request({"obs": obs}) for _ in range(in_flight)]
    while time.perf_counter() - start < seconds:
        client.wait(pending.pop(0), timeout=10)
        done += 1
        pending.append(client.post_request({"obs": obs}))
    rate = done / (time.perf_counter() - start)
    for rid in pending:
        client.wait(rid, timeout=10)
    client.close()
    stop.set()
    proc.join(10)
    nr.close()
    return rate


def bench_samples(kind: str, records: str, seconds: float, sample_mb: float) -> tuple[float, float]:
    nr = DirectoryNameRecords(records)
    stop, report = CTX.Event(), CTX.Queue()
    proc = CTX.Process(target=consume_samples, args=(kind, records, stop, report), daemon=True)
    proc.start()
    nr.wait(keys.sample_stream(ROOT, 0), timeout=60, poll_interval=0.05)
    producer = make_sample_producer(kind, nr, ROOT)
    # [T=64, B=8, ...] float32 observations sized to `sample_mb`, plus small per-step arrays
    width = max(1, int(sample_mb * 2**20 / (64 * 8 * 4)))
    sample = {"obs": np.ones((64, 8, width), np.float32), "reward": np.ones((64, 8), np.float32),
              "done": np.zeros((64, 8), np.bool_), "action": np.zeros((64, 8), np.int64)}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        producer.post({"actor": 0, "policy_version": 1}, sample, timeout=10)
    producer.flush(timeout=10)
    time.sleep(0.2)
    producer.close()
    stop.set()
    count, nbytes, elapsed = report.get(timeout=20)
    proc.join(10)
    nr.close()
    return nbytes / max(elapsed, 1e-9) / 1e6, count / max(elapsed, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--kinds", default="zmq,shm")
    parser.add_argument("--sample-mb", type=float, default=1.0, help="payload of one sample message")
    args = parser.parse_args()
    for kind in args.kinds.split(","):
        with tempfile.TemporaryDirectory() as records:
            rt1 = bench_inference(kind, f"{records}/a", args.seconds, in_flight=1)
            rt4 = bench_inference(kind, f"{records}/b", args.seconds, in_flight=4)
            mbs, msgs = bench_samples(kind, f"{records}/c", args.seconds, args.sample_mb)
        print(f"{kind:4s} inference (32 x CartPole obs): {rt1:8.0f} round trips/s (1 in flight), "
              f"{rt4:8.0f} round trips/s (4 in flight)")
        print(f"{kind:4s} samples ({args.sample_mb:g} MB messages):   {mbs:8.0f} MB/s ({msgs:.0f} msg/s)")


if __name__ == "__main__":
    main()
