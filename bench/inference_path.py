"""Micro-benchmark of the inference path's Python cost: one request's round trip in one process.

A client and a server (shm and zmq) share one process and MemoryNameRecords; each round trip is
post_request + the server's poll_requests + respond (a fake policy: precomputed arrays) + the
client's wait, with CartPole-sized requests (obs float32 [16, 4]) and replies as the experiment
schema makes them, both checked against that schema as the actor and the policy worker do. With no
forward pass and no second process, what is left is the streams' own per-request cost.

Prints one JSON line: microseconds per round trip (median of --repeats timed runs) and Python
function calls per round trip (cProfile's total calls / round trips), per transport.

--serve K:R,... also measures the policy worker's own per-batch cost: a real PolicyWorker
(configured as in a run: CartPole's 2x64 tanh MLP on the numpy acting path, gather_batch, the
schema checks) whose `_poll` serves K clients with R requests of 16 rows in flight each, every
client collecting its R answers and posting R new ones between two batches. Server and client
sides are timed (wall and thread CPU) and profiled separately and reported per request, so a cost
shows up on the side that pays it. --top N (with --child) prints each side's N dearest functions
(cProfile, by own time) to stderr.

    python bench/inference_path.py [--rounds 2000] [--repeats 5] [--kinds shm,zmq] [--repo DIR]
        [--serve 4:1,4:2] [--serve-rounds 1000]

--repo DIR also times the checkout at DIR (e.g. an export of main: the "before") with this same
script, interleaving the two checkouts' runs so load on the machine hits both alike, and reports
both and the ratio before/after. Each measurement runs in a fresh interpreter importing from its
checkout only.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = "srl/_/inference_path"
ROWS = 16  # CartPole, envsPerSlot 16
HERE = Path(__file__).resolve().parent.parent  # this checkout


def _schema() -> Any:
    import gymnasium as gym

    from srl_runtime.config.load import parse_experiment
    from srl_runtime.streams.schema import stream_schema

    exp = parse_experiment({
        "apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "inference-path"},
        "spec": {"environment": {"id": "CartPole-v1"}, "actors": {"envsPerSlot": ROWS}, "stop": {"trainSteps": 1}},
    })  # fmt: skip
    env = gym.make("CartPole-v1")
    return stream_schema(exp.spec, env.observation_space, env.action_space)


def measure(kind: str, rounds: int, profile_rounds: int) -> dict[str, float]:
    """{"us": microseconds per round trip, "calls": Python calls per round trip} for one transport."""
    import numpy as np

    from srl_runtime.name_records.memory import MemoryNameRecords
    from srl_runtime.streams.inference import make_inference_client, make_inference_server

    schema = _schema()
    records = MemoryNameRecords()
    server = make_inference_server(kind, records, ROOT, 0, check=schema.check_request)
    client = make_inference_client(kind, records, ROOT, check=schema.check_reply)
    obs = np.random.default_rng(0).standard_normal((ROWS, 4)).astype(np.float32)
    reply = schema.conform(schema.reply, {
        "action": np.zeros(ROWS), "logp": np.zeros(ROWS), "value": np.zeros(ROWS),
        "rnn_state": np.zeros((ROWS, 0)), "policy_version": np.zeros(ROWS),
    })  # fmt: skip

    def round_trip() -> None:
        rid = client.post_request({"obs": obs})
        for req in server.poll_requests(512, timeout=5.0):
            server.respond(req, reply)
        client.wait(rid, timeout=5.0)

    try:
        for _ in range(200):  # connections, slots, caches
            round_trip()
        start = time.perf_counter()
        for _ in range(rounds):
            round_trip()
        us = (time.perf_counter() - start) / rounds * 1e6
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(profile_rounds):
            round_trip()
        prof.disable()
        calls = pstats.Stats(prof).total_calls / profile_rounds  # type: ignore[attr-defined]
        if server.dropped or client.dropped:
            raise RuntimeError(f"{kind}: dropped {server.dropped} requests, {client.dropped} replies")
    finally:
        client.close()
        server.close()
        records.close()
    return {"us": us, "calls": calls}


def _policy_worker(kind: str, records: Any, run_dir: Path) -> Any:
    """A configured PolicyWorker serving `kind` on CartPole (16 rows per request), as in a run."""
    from srl_runtime.config.load import parse_experiment
    from srl_runtime.workers.base import WorkerContext
    from srl_runtime.workers.policy_worker import PolicyWorker

    exp = parse_experiment({
        "apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "inference-path"},
        "spec": {
            "environment": {"id": "CartPole-v1"}, "actors": {"envsPerSlot": ROWS},
            "policyWorkers": {"replicas": 1}, "streams": {"inference": kind}, "stop": {"trainSteps": 1},
        },
    })  # fmt: skip
    worker = PolicyWorker(WorkerContext(experiment=exp, role="policy", index=0, name_records=records, run_dir=run_dir))
    worker.configure()
    return worker


def measure_serve(kind: str, k: int, r: int, rounds: int, profile_rounds: int, top: int = 0) -> dict[str, float]:
    """Per request: server and client wall us, thread-CPU us and Python calls, K clients x R in flight.

    One round is one `PolicyWorker._poll` (which must take all K x R requests in one batch) and then
    every client waiting for its R answers and posting R new requests.
    """
    import tempfile

    import numpy as np

    from srl_runtime.name_records.memory import MemoryNameRecords
    from srl_runtime.streams.inference import make_inference_client

    records = MemoryNameRecords()
    with tempfile.TemporaryDirectory(prefix="srl-inference-path-") as run_dir:
        worker = _policy_worker(kind, records, Path(run_dir))
        clients = [make_inference_client(kind, records, worker.ctx.root, check=worker.schema.check_reply) for _ in range(k)]
        obs = np.random.default_rng(0).standard_normal((ROWS, 4)).astype(np.float32)
        in_flight: list[list[int]] = [[c.post_request({"obs": obs}) for _ in range(r)] for c in clients]
        per_round = k * r
        spent = {"server": [0.0, 0.0], "client": [0.0, 0.0]}  # side -> [wall s, thread CPU s]
        profiles = {"server": cProfile.Profile(), "client": cProfile.Profile()}
        batches = [0]  # forward passes in the timed rounds

        def serve() -> None:  # usually one batch; more when a request was still in zmq's I/O thread
            served = 0
            while served < per_round:
                served += worker._poll().batch_count
                batches[0] += 1
            if served != per_round:
                raise RuntimeError(f"{kind} k={k} r={r}: served {served} requests, {per_round} were in flight")

        def collect() -> None:
            for c, ids in zip(clients, in_flight, strict=True):
                for rid in ids:
                    c.wait(rid, timeout=5.0)
                ids[:] = [c.post_request({"obs": obs}) for _ in range(r)]

        def timed(side: str, fn: Any, profiled: bool) -> None:
            wall, cpu = time.perf_counter(), time.thread_time()
            if profiled:
                profiles[side].enable()
            fn()
            if profiled:
                profiles[side].disable()
            spent[side][0] += time.perf_counter() - wall
            spent[side][1] += time.thread_time() - cpu

        try:
            for _ in range(100):  # connections, slots, caches
                serve()
                collect()
            for _ in range(profile_rounds):
                timed("server", serve, True)
                timed("client", collect, True)
            spent = {"server": [0.0, 0.0], "client": [0.0, 0.0]}
            batches[0] = 0
            for _ in range(rounds):
                timed("server", serve, False)
                timed("client", collect, False)
            if worker.server.dropped or any(c.dropped for c in clients):
                raise RuntimeError(f"{kind}: dropped requests or replies")
        finally:
            for c in clients:
                c.close()
            worker.exit()
            records.close()
    n = rounds * per_round
    out: dict[str, float] = {"requests_per_batch": n / batches[0]}
    for side, (wall, cpu) in spent.items():
        stats = pstats.Stats(profiles[side])
        out[f"{side}_us"] = wall / n * 1e6
        out[f"{side}_cpu_us"] = cpu / n * 1e6
        out[f"{side}_calls"] = stats.total_calls / (profile_rounds * per_round)  # type: ignore[attr-defined]
        if top:
            _print_top(stats, top, profile_rounds * per_round, f"{kind} k={k} r={r} {side}")
    return out


def _print_top(stats: pstats.Stats, top: int, requests: int, title: str) -> None:
    """The `top` functions by own time, per request (us own, us cumulative, calls), to stderr."""
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    print(f"===== {title}: own us, cumulative us, calls per request (under cProfile)", file=sys.stderr)
    for (path, line, name), (_, calls, own, cum, _) in rows:
        where = f"{Path(path).name}:{line}({name})" if path != "~" else name
        print(f"{own / requests * 1e6:8.2f} {cum / requests * 1e6:8.2f} {calls / requests:6.2f}  {where}", file=sys.stderr)


def _child(kinds: list[str], rounds: int, profile_rounds: int, serve: list[tuple[int, int]], serve_rounds: int, top: int) -> dict[str, Any]:
    out: dict[str, Any] = {kind: measure(kind, rounds, profile_rounds) for kind in kinds if rounds}
    for kind in kinds:
        for k, r in serve:
            out[f"serve_{kind}_k{k}r{r}"] = measure_serve(kind, k, r, serve_rounds, max(1, profile_rounds // (k * r)), top)
    return out


def _serve_pairs(text: str) -> list[tuple[int, int]]:
    """"4:1,4:2" -> [(4, 1), (4, 2)]: (clients, requests in flight per client)."""
    pairs = [tuple(int(x) for x in part.split(":")) for part in text.split(",") if part]
    if not all(len(p) == 2 and min(p) >= 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"--serve wants K:R pairs, got {text!r}")
    return pairs  # type: ignore[return-value]


def _run_checkout(repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of every kind in a fresh interpreter that imports from `repo`."""
    # One BLAS/OpenMP thread, as bench/runproc.py and the operator's pods give every worker: numpy's
    # OpenBLAS otherwise splits the forward pass of batches of >= ~128 rows over both cores of a
    # small machine, which made the policy worker's batch 3-4x dearer here under load.
    env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{repo / 'operator'}", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--kinds", args.kinds,
        "--rounds", str(args.rounds), "--profile-rounds", str(args.profile_rounds),
        "--serve", args.serve, "--serve-rounds", str(args.serve_rounds),
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=repo, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


RENAME = {"us": "us_per_round_trip", "calls": "calls_per_round_trip"}  # round-trip metrics' reported names


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the repeated runs, and the least of each time (`_min`).

    On a loaded machine the least time is the steadier estimate of what the code itself costs (load
    only ever adds); wall us of every run are kept for the spread.
    """
    out: dict[str, Any] = {}
    for case, metrics in runs[0].items():
        out[case] = {RENAME.get(m, m): round(statistics.median(r[case][m] for r in runs), 1) for m in metrics}
        for m in metrics:
            if m.endswith("us"):
                out[case][f"{RENAME.get(m, m)}_min"] = round(min(r[case][m] for r in runs), 1)
            if m.endswith("us") and "cpu" not in m:
                out[case][f"{RENAME.get(m, m)}_runs"] = [round(r[case][m], 1) for r in runs]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2000, help="timed round trips per run (0: skip them)")
    p.add_argument("--profile-rounds", type=int, default=300, help="round trips under cProfile (call counts)")
    p.add_argument("--repeats", type=int, default=5, help="runs per checkout (median reported)")
    p.add_argument("--kinds", default="shm,zmq")
    p.add_argument("--serve", default="", help="K:R,... policy-worker cases: K clients, R requests in flight each")
    p.add_argument("--serve-rounds", type=int, default=1000, help="timed policy-worker batches per case and run")
    p.add_argument("--top", type=int, default=0, help="with --child: print each serve side's N dearest functions")
    p.add_argument("--repo", type=Path, help="another checkout to time as 'before' (e.g. an export of main)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    serve = _serve_pairs(args.serve)
    if args.child:
        print(json.dumps(_child(kinds, args.rounds, args.profile_rounds, serve, args.serve_rounds, args.top)))
        return
    checkouts = {"after": HERE} if args.repo is None else {"before": args.repo.resolve(), "after": HERE}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for _ in range(args.repeats):  # interleaved: background load hits both checkouts alike
        for name, repo in checkouts.items():
            runs[name].append(_run_checkout(repo, args))
    result: dict[str, Any] = {
        "rows": ROWS, "rounds": args.rounds, "serve_rounds": args.serve_rounds, "repeats": args.repeats,
        **{name: {"repo": str(checkouts[name]), **_summarise(r)} for name, r in runs.items()},
    }  # fmt: skip
    if args.repo is not None:
        before, after = result["before"], result["after"]
        result["ratio_before_over_after"] = {
            case: {m: round(v / after[case][m], 2) for m, v in metrics.items() if not m.endswith("_runs") and after[case][m]}
            for case, metrics in before.items()
            if case != "repo"
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
