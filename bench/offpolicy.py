"""Sample efficiency with stale samples: CartPole-v1 env steps until the mean return reaches 475.

Arms (every seed runs each arm; the order rotates per seed):
  on_policy   PPO, the actors act with the trainer's current policy
  vtrace      PPO with `offPolicyCorrection: vtrace`, every batch `maxStaleness` versions stale
  ppo_stale   PPO without correction, equally stale
The staleness is that of a deliberately slow trainer: once the sample queue is full every batch
waits behind the others and arrives `--lag` versions old, measured as the trainer's buffer measures
it (its oldest row), which is at most `trainers.maxStaleness` so nothing is dropped
(`srl_runtime.algorithms.sync_loop`, `policy_lag`). One process, the trainer's own learner code,
the experiment's settings (bench/experiments/cartpole-best.yaml by default; its PPO settings, network,
env batch, batch length and return window).

Prints one JSON document: per arm the steps-to-target of every seed (null: not reached within
--max-steps; censored, not dropped: the median counts it as above every solved run), the medians,
vtrace / on_policy, and the load average before and after. Run: ~/.cache/srl/venv/bin/python
bench/offpolicy.py [--seeds 1 2 3 4 5] [--lag 8].
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from srl_runtime.algorithms.sync_loop import run_sync_ppo  # noqa: E402
from srl_runtime.config.load import load_experiment  # noqa: E402

ARMS = ("on_policy", "vtrace", "ppo_stale")


def censored_median(values: list[int | None]) -> float | None:
    """Median where None (not reached) ranks above every number; None if the median is censored."""
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    n = len(ranked)
    middle = ranked[(n - 1) // 2 : n // 2 + 1]
    if any(v is None for v in middle):
        return None
    return float(sum(middle)) / len(middle)  # type: ignore[arg-type]


def run_arm(experiment: Any, arm: str, seed: int, lag: int, max_steps: int, target: float) -> dict[str, Any]:
    spec = experiment.spec
    algorithm = spec.algorithm.model_copy(deep=True)
    algorithm.ppo.off_policy_correction = "vtrace" if arm == "vtrace" else "none"
    result = run_sync_ppo(
        spec.environment,
        spec.policy,
        algorithm,
        num_envs=spec.actors.envs_per_slot * spec.actors.ring_size * spec.actors.replicas,
        sample_steps=spec.actors.sample_steps,
        max_env_steps=max_steps,
        target_return=target,
        window=spec.stop.return_window,
        seed=seed,
        policy_lag=0 if arm == "on_policy" else lag,
        max_staleness=spec.trainers.max_staleness,
    )
    return {
        "arm": arm,
        "seed": seed,
        "steps_to_target": result.env_steps if result.solved else None,
        "env_steps": result.env_steps,
        "final_mean_return": result.mean_return,
        "mean_staleness": result.mean_staleness,
        "dropped_stale": result.dropped_stale,
        "seconds": round(result.seconds, 1),
        "cpu_seconds": round(result.cpu_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=str(BENCH / "experiments" / "cartpole-best.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--lag", type=int, default=8, help="staleness of every batch in the stale arms (versions)")
    parser.add_argument("--max-staleness", type=int, default=8, help="trainers.maxStaleness for the run")
    parser.add_argument("--max-steps", type=int, default=600_000, help="env steps per run before it counts as unsolved")
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.lag > args.max_staleness:
        parser.error("--lag above --max-staleness: every stale batch would be dropped")

    torch.set_num_threads(1)
    experiment = load_experiment(args.experiment)
    experiment.spec.trainers.max_staleness = args.max_staleness
    load_before = os.getloadavg()
    started = time.time()
    runs: list[dict[str, Any]] = []
    for i, seed in enumerate(args.seeds):
        order = args.arms[i % len(args.arms) :] + args.arms[: i % len(args.arms)]
        for arm in order:
            run = run_arm(experiment, arm, seed, args.lag, args.max_steps, args.target)
            runs.append(run)
            print(f"offpolicy: {json.dumps(run)}", file=sys.stderr, flush=True)

    arms: dict[str, Any] = {}
    for arm in args.arms:
        steps = [r["steps_to_target"] for r in runs if r["arm"] == arm]
        arms[arm] = {
            "steps_to_target": dict(zip([r["seed"] for r in runs if r["arm"] == arm], steps, strict=True)),
            "median": censored_median(steps),
            "solved": sum(s is not None for s in steps),
            "mean_staleness": sum(r["mean_staleness"] for r in runs if r["arm"] == arm) / len(steps),
        }
    on, vt = arms.get("on_policy", {}).get("median"), arms.get("vtrace", {}).get("median")
    out = {
        "bench": "offpolicy",
        "experiment": os.path.relpath(Path(args.experiment).resolve(), BENCH.parent),
        "target_mean_return": args.target,
        "return_window": experiment.spec.stop.return_window,
        "lag": args.lag,
        "max_staleness": args.max_staleness,
        "max_steps": args.max_steps,
        "seeds": args.seeds,
        "arms": arms,
        "vtrace_over_on_policy": None if on is None or vt is None else round(vt / on, 3),
        "runs": runs,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "wall_seconds": round(time.time() - started, 1),
        "host": platform.node(),
        "torch": torch.__version__,
    }
    text = json.dumps(out, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
