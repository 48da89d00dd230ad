"""The SRL architecture cases of the bench: policy workers against inline inference, and the streams.

    python bench/architecture.py [--quick] [--rounds N] [--window S]

Policy workers: real `srl run` experiments (process mode) of `--actors` actors with inference
inline (policyWorkers.replicas 0) and with one policy worker over shared memory and over ZMQ, on
CartPole-v1 and on the zero-cost stub env SrlStub-v0 (so that figure is streams + forward pass).
Each run is measured over a fixed window after start-up (every actor stepping and the trainer's first
train step, then `--warmup` s),
from the workers' own progress records: env frames/s (per actor, between two progress records, by
their timestamps), rows per forward pass of the policy worker (inferred rows / forward passes in the
window), and the actor's inference round trip p50/p99 (post_request until the answer is read off
the socket: the latency an actor sees; inline: the forward pass), from each actor's window of its
most recent requests. The run is then stopped with SIGINT.

Streams (streams_loopback.py's cases, between two processes): sample-stream MB/s over shm and ZMQ,
inference round trips/s (shm, ZMQ; one request in flight), next to np.copyto MB/s of the same
message size and a raw os.pipe ping-pong (round trips/s) between two processes.

Every round runs every case once, the order rotated per round. The LAST stdout line is one JSON
object: {"policy_workers": {...}, "streams": {...}, "rounds": N, "load_average": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # streams_loopback beside this file
import streams_loopback  # noqa: E402

from srl_runtime.envs.stub import STUB_ENV_ID  # noqa: E402
from srl_runtime.name_records import keys  # noqa: E402
from srl_runtime.name_records.directory import DirectoryNameRecords  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ENVS = {"cartpole": "CartPole-v1", "stub": STUB_ENV_ID}
INFERENCE = ("inline", "shm", "zmq")
START_TIMEOUT = 600.0  # seconds for every actor to step (start-up on a loaded 2-core machine can take minutes)
STOP_TIMEOUT = 30.0  # seconds for `srl run` to stop after SIGINT before it is killed


def experiment(name: str, env_id: str, inference: str, actors: int, ring: int, envs_per_slot: int) -> dict[str, Any]:
    """The experiment of one case: CartPole's bench network and PPO, `actors` actors, one trainer."""
    return {
        "apiVersion": "srl.dev/v1alpha1",
        "kind": "RLExperiment",
        "metadata": {"name": name},
        "spec": {
            "seed": 1,
            "environment": {"id": env_id},
            "policy": {"encoder": "mlp", "hiddenSizes": [64, 64], "activation": "tanh"},
            "algorithm": {"ppo": {"epochs": 2, "minibatches": 8, "learningRate": 0.003}},
            "actors": {"replicas": actors, "ringSize": ring, "envsPerSlot": envs_per_slot, "sampleSteps": 64, "bootstrapSteps": 1},
            "policyWorkers": {"replicas": 0 if inference == "inline" else 1},
            "streams": {"inference": inference},
            "trainers": {"replicas": 1, "batchSize": 16, "maxStaleness": 4},
            "stop": {"wallSeconds": 3600},
        },
    }


def read_progress(records: DirectoryNameRecords, root: str) -> dict[tuple[str, int], dict[str, Any]]:
    """Every worker's newest progress record, by (role, index)."""
    out = {}
    for raw in records.get_subtree(keys.progress_root(root)):
        try:
            p = json.loads(raw)
            out[(str(p["role"]), int(p["index"]))] = p
        except (ValueError, KeyError, TypeError):
            continue  # a record caught mid-write
    return out


def _actors(progress: dict[tuple[str, int], dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {i: p for (role, i), p in progress.items() if role == "actor"}


def measure_run(env: str, inference: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start one experiment, wait for every actor to step, measure `args.window` s, stop it."""
    name = f"arch-{env}-{inference}"
    doc = experiment(name, ENVS[env], inference, args.actors, args.ring, args.envs_per_slot)
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    run_dir = workdir / name
    cmd = [sys.executable, "-m", "srl_runtime.cli", "run", str(path), "--run-dir", str(run_dir), "--overwrite", "--quiet"]
    launched = time.monotonic()
    env = {**os.environ, "PYTHONPATH": f"{args.repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=args.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    root = keys.experiment_root(name)
    try:
        records = DirectoryNameRecords(run_dir / "name_records")
        startup = None
        while True:  # start-up: every actor has stepped, and the trainer has trained (steady state)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            if time.monotonic() - launched > START_TIMEOUT:
                raise RuntimeError(f"{name}: actors not stepping or trainer not training after {START_TIMEOUT:.0f}s")
            progress = read_progress(records, root) if (run_dir / "name_records").exists() else {}
            actors = _actors(progress)
            if startup is None and len(actors) == args.actors and all(p.get("env_frames", 0) > 0 for p in actors.values()):
                startup = time.monotonic() - launched
            # Until the trainer's first train step the actors run against a sample queue nobody drains
            # (they stall when it is full): a window that starts there measures start-up, not throughput.
            if startup is not None and progress.get(("trainer", 0), {}).get("train_steps", 0) > 0:
                break
            time.sleep(0.2)
        training = time.monotonic() - launched
        time.sleep(args.warmup)
        first = read_progress(records, root)
        time.sleep(args.window)
        last = read_progress(records, root)
        return {"startup_seconds": round(startup, 2), "training_after_seconds": round(training, 2), **window_figures(first, last)}
    finally:
        stop(proc)


def window_figures(first: dict[tuple[str, int], dict[str, Any]], last: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """Frames/s, rows per forward pass and round-trip quantiles between two progress snapshots."""
    fps = 0.0
    p50s, p99s = [], []
    for i, end in _actors(last).items():
        begin = _actors(first).get(i)
        if begin is None or end["time"] <= begin["time"]:
            raise RuntimeError(f"actor {i} published no progress during the window")
        fps += (end["env_frames"] - begin["env_frames"]) / (end["time"] - begin["time"])
        trips = end.get("inference_round_trips") or {}
        if "p50" in trips:
            p50s.append(trips["p50"])
            p99s.append(trips["p99"])
    out: dict[str, Any] = {"frames_per_second": round(fps, 1)}
    if p50s:  # the median actor's quantiles over its most recent requests
        out["round_trip_p50_ms"] = round(statistics.median(p50s) * 1e3, 4)
        out["round_trip_p99_ms"] = round(statistics.median(p99s) * 1e3, 4)
    pw_end, pw_begin = last.get(("policy", 0)), first.get(("policy", 0))
    if pw_end is not None and pw_begin is not None:
        passes = pw_end.get("forward_passes", 0) - pw_begin.get("forward_passes", 0)
        rows = pw_end["samples"] - pw_begin["samples"]
        out["rows_per_forward_pass"] = round(rows / passes, 2) if passes > 0 else None
        out["requests_per_forward_pass"] = round((pw_end["batches"] - pw_begin["batches"]) / passes, 2) if passes > 0 else None
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (the launcher stops its workers), then kill the process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


# ---------------------------------------------------------------- streams


def memcpy_mb_per_second(nbytes: int, seconds: float) -> float:
    """np.copyto of one message-sized float32 array into a preallocated one, in MB/s."""
    src = np.ones(max(1, nbytes // 4), np.float32)
    dst = np.empty_like(src)
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        np.copyto(dst, src)
        done += 1
    return done * src.nbytes / elapsed / 1e6


PIPE_ECHO = "import os, sys\nr, w = map(int, sys.argv[1:])\nwhile b := os.read(r, 1):\n    os.write(w, b)"


def pipe_round_trips_per_second(seconds: float) -> float:
    """One byte there and back between two processes over two os.pipe()s (the child echoes)."""
    to_child_r, to_child = os.pipe()
    from_child, from_child_w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", PIPE_ECHO, str(to_child_r), str(from_child_w)], pass_fds=(to_child_r, from_child_w))
    os.close(to_child_r)
    os.close(from_child_w)

    def round_trip() -> None:
        os.write(to_child, b"x")
        if not os.read(from_child, 1):
            raise RuntimeError("pipe echo process exited")

    try:
        for _ in range(100):  # warm up
            round_trip()
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            round_trip()
            done += 1
        return done / elapsed
    finally:
        os.close(to_child)  # the child reads EOF and exits
        os.close(from_child)
        child.wait(10)


def stream_case(case: str, args: argparse.Namespace, workdir: Path) -> float:
    """One stream figure: MB/s for memcpy and sample cases, round trips/s for pipe and inference."""
    nbytes = int(args.sample_mb * 2**20)
    if case == "memcpy":
        return memcpy_mb_per_second(nbytes, args.stream_seconds)
    if case == "pipe":
        return pipe_round_trips_per_second(args.stream_seconds)
    kind, what = case.split("_", 1)
    records = tempfile.mkdtemp(dir=workdir)
    if what == "samples":
        return streams_loopback.bench_samples(kind, records, args.stream_seconds, args.sample_mb)[0]
    return streams_loopback.bench_inference(kind, records, args.stream_seconds, in_flight=1)


STREAM_CASES = {  # name -> unit
    "memcpy": "MB/s", "shm_samples": "MB/s", "zmq_samples": "MB/s",
    "pipe": "round trips/s", "shm_inference": "round trips/s", "zmq_inference": "round trips/s",
}


# ---------------------------------------------------------------- rounds and summary


def rotated(cases: list[Any], k: int) -> list[Any]:
    """`cases` starting at position k (mod len): round k runs them in this order."""
    k %= len(cases)
    return cases[k:] + cases[:k]


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over rounds of the numeric values."""
    keys_ = {k for r in rounds for k, v in r.items() if isinstance(v, (int, float))}
    return {k: round(statistics.median(r[k] for r in rounds if isinstance(r.get(k), (int, float))), 4) for k in sorted(keys_)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows (<= 4 min on 2 cores)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, help="seconds measured per policy-worker run (quick 3, full 10)")
    parser.add_argument("--warmup", type=float, help="seconds after every actor stepped and the trainer trained, before the window (quick 1, full 3)")
    parser.add_argument("--stream-seconds", type=float, help="seconds per stream figure (quick 0.7, full 2)")
    parser.add_argument("--sample-mb", type=float, default=1.0, help="payload of one sample message (and of memcpy)")
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--ring", type=int, default=2, help="actors.ringSize")
    parser.add_argument("--envs-per-slot", type=int, default=16, help="actors.envsPerSlot")
    parser.add_argument("--envs", default="cartpole,stub")
    parser.add_argument("--inference", default=",".join(INFERENCE))
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose `srl run` the policy-worker cases run (before/after)")
    parser.add_argument("--skip", choices=("policy_workers", "streams"), action="append", default=[])
    args = parser.parse_args()
    args.window = args.window or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.stream_seconds = args.stream_seconds or (0.7 if args.quick else 2.0)
    load_start = list(os.getloadavg())

    pw_cases = [(e, i) for e in args.envs.split(",") for i in args.inference.split(",")] if "policy_workers" not in args.skip else []
    st_cases = list(STREAM_CASES) if "streams" not in args.skip else []
    pw_rounds: dict[str, list[dict[str, Any]]] = {f"{e}/{i}": [] for e, i in pw_cases}
    st_rounds: dict[str, list[float]] = {c: [] for c in st_cases}
    with tempfile.TemporaryDirectory(prefix="srl-arch-") as tmp:
        workdir = Path(tmp)
        for r in range(args.rounds):
            (workdir / f"round{r}").mkdir()
            for e, i in rotated(pw_cases, r) if pw_cases else []:
                figures = measure_run(e, i, args, workdir / f"round{r}")
                figures["load_average_1m"] = round(os.getloadavg()[0], 2)
                pw_rounds[f"{e}/{i}"].append(figures)
                print(f"round {r} policy_workers {e}/{i}: {figures}", file=sys.stderr, flush=True)
            for c in rotated(st_cases, r) if st_cases else []:
                value = stream_case(c, args, workdir / f"round{r}")
                st_rounds[c].append(round(value, 1))
                print(f"round {r} streams {c}: {value:.1f} {STREAM_CASES[c]}", file=sys.stderr, flush=True)

    policy_workers: dict[str, Any] = {
        "config": {"actors": args.actors, "ring_size": args.ring, "envs_per_slot": args.envs_per_slot,
                   "policy_workers": 1, "trainers": 1, "window_seconds": args.window, "warmup_seconds": args.warmup},
        "cases": {case: {"median": median_of(rs), "rounds": rs} for case, rs in pw_rounds.items()},
        "ratios_to_inline": {},  # frames/s of shm or zmq over inline, per round (same round, adjacent runs)
    }
    for e in args.envs.split(","):
        base = pw_rounds.get(f"{e}/inline")
        for i in ("shm", "zmq"):
            other = pw_rounds.get(f"{e}/{i}")
            if base and other:
                per_round = [round(o["frames_per_second"] / b["frames_per_second"], 3) for o, b in zip(other, base, strict=True)]
                policy_workers["ratios_to_inline"][f"{e}/{i}"] = {"median": statistics.median(per_round), "rounds": per_round}
    streams: dict[str, Any] = {
        "sample_mb": args.sample_mb,
        "units": {c: STREAM_CASES[c] for c in st_cases},
        "cases": {c: {"median": statistics.median(v), "rounds": v} for c, v in st_rounds.items()},
        "ratios": {},
    }
    for num, den in (("shm_samples", "memcpy"), ("zmq_samples", "memcpy"), ("shm_inference", "pipe"), ("zmq_inference", "pipe")):
        if st_rounds.get(num) and st_rounds.get(den):
            per_round = [round(a / b, 3) for a, b in zip(st_rounds[num], st_rounds[den], strict=True)]
            streams["ratios"][f"{num}/{den}"] = {"median": statistics.median(per_round), "rounds": per_round}
    print(json.dumps({
        "policy_workers": policy_workers,
        "streams": streams,
        "rounds": args.rounds,
        "load_average": list(os.getloadavg()),  # 1, 5, 15 min at the end
        "load_average_start": load_start,
    }))


if __name__ == "__main__":
    main()
