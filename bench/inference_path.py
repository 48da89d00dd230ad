"""Micro-benchmark of the inference path's Python cost: one request's round trip in one process.

A client and a server (shm and zmq) share one process and MemoryNameRecords; each round trip is
post_request + the server's poll_requests + respond (a fake policy: precomputed arrays) + the
client's wait, with CartPole-sized requests (obs float32 [16, 4]) and replies as the experiment
schema makes them, both checked against that schema as the actor and the policy worker do. With no
forward pass and no second process, what is left is the streams' own per-request cost.

Prints one JSON line: microseconds per round trip (median of --repeats timed runs) and Python
function calls per round trip (cProfile's total calls / round trips), per transport.

    python bench/inference_path.py [--rounds 2000] [--repeats 5] [--kinds shm,zmq] [--repo DIR]

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


def _child(kinds: list[str], rounds: int, profile_rounds: int) -> dict[str, Any]:
    return {kind: measure(kind, rounds, profile_rounds) for kind in kinds}


def _run_checkout(repo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of every kind in a fresh interpreter that imports from `repo`."""
    env = dict(os.environ, PYTHONPATH=f"{repo}{os.pathsep}{repo / 'operator'}")
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--kinds", args.kinds,
        "--rounds", str(args.rounds), "--profile-rounds", str(args.profile_rounds),
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=repo, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _summarise(runs: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    """Median us and calls per kind over the repeated runs (all runs' us kept for the spread)."""
    return {
        kind: {
            "us_per_round_trip": round(statistics.median(r[kind]["us"] for r in runs), 1),
            "us_runs": [round(r[kind]["us"], 1) for r in runs],
            "calls_per_round_trip": round(statistics.median(r[kind]["calls"] for r in runs), 1),
        }
        for kind in kinds
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2000, help="timed round trips per run")
    p.add_argument("--profile-rounds", type=int, default=300, help="round trips under cProfile (call counts)")
    p.add_argument("--repeats", type=int, default=5, help="runs per checkout (median reported)")
    p.add_argument("--kinds", default="shm,zmq")
    p.add_argument("--repo", type=Path, help="another checkout to time as 'before' (e.g. an export of main)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if args.child:
        print(json.dumps(_child(kinds, args.rounds, args.profile_rounds)))
        return
    checkouts = {"after": HERE} if args.repo is None else {"before": args.repo.resolve(), "after": HERE}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for _ in range(args.repeats):  # interleaved: background load hits both checkouts alike
        for name, repo in checkouts.items():
            runs[name].append(_run_checkout(repo, args))
    result: dict[str, Any] = {
        "rows": ROWS, "rounds": args.rounds, "repeats": args.repeats,
        **{name: {"repo": str(checkouts[name]), **_summarise(r, kinds)} for name, r in runs.items()},
    }  # fmt: skip
    if args.repo is not None:
        result["ratio_before_over_after"] = {
            kind: {
                metric: round(result["before"][kind][metric] / result["after"][kind][metric], 2)
                for metric in ("us_per_round_trip", "calls_per_round_trip")
            }
            for kind in kinds
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
