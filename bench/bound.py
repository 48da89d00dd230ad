"""The compute bound of ours' stack: B = cores / (c_env + c_act + c_learn), frames per second.

Each c is single-thread CPU-seconds per env frame, measured in isolation in this one process with
torch on one thread, with the experiment file's own env stack, network and PPO settings:
  c_env    stepping the env batch ours' actors step (envsPerSlot envs, random actions)
  c_act    the batched forward pass + sampling (Policy.rollout) on envsPerSlot observations
  c_learn  one PPO train step (all its epochs and minibatches) on trainers.batchSize trajectories of
           sampleSteps (+ bootstrap) steps, divided by the frames it trains on
A frame is an emulator frame: agent steps x frame skip (1 for CartPole). Everything a real run adds
(streams, copies, the parameter DB, process switches) is outside B, so a run at B has no overhead.
Runs with ours' python:  PYTHONPATH=. python bench/bound.py bench/experiments/pong-best.yaml --seconds 2
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from srl_runtime.algorithms.factory import make_learner
from srl_runtime.config.load import load_experiment
from srl_runtime.envs import make_env_batch
from srl_runtime.policies.policy import Policy


def _timed(fn, seconds: float) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Call fn() until `seconds` of CPU time passed (at least twice); (CPU seconds, calls)."""
    fn()  # warm-up (allocations, first-call paths)
    calls = 0
    c0 = time.process_time()
    while True:
        fn()
        calls += 1
        used = time.process_time() - c0
        if used >= seconds and calls >= 2:
            return used, calls


def measure(path: str, seconds: float, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    spec = load_experiment(path).spec
    skip = spec.environment.atari.frame_skip if spec.environment.atari is not None else 1
    rows = spec.actors.envs_per_slot
    env = make_env_batch(spec.environment, rows, seed)
    policy = Policy(env.observation_space, env.action_space, spec.policy)
    obs = env.reset()

    actions = policy.rollout(obs)["action"]  # a fixed batch of valid actions: sampling is not the env's cost

    def env_step() -> None:
        env.step(actions)

    cpu, calls = _timed(env_step, seconds)
    c_env = cpu / (calls * env.rows * skip)
    cpu, calls = _timed(lambda: policy.rollout(obs), seconds)
    c_act = cpu / (calls * env.rows * skip)
    env.close()

    # One trainer batch of real transitions: batchSize columns x (sampleSteps + bootstrap) rows.
    cols, steps = spec.trainers.batch_size, spec.actors.sample_steps
    benv = make_env_batch(spec.environment, cols, seed + 1)
    o = benv.reset()
    buf: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "action", "logp", "value", "reward", "done", "truncated", "policy_version")}
    for t in range(steps + 1):
        out = policy.rollout(o)
        buf["obs"].append(o)
        for k in ("action", "logp", "value"):
            buf[k].append(out[k])
        buf["policy_version"].append(np.zeros(benv.rows, np.int64))
        if t < steps:
            st = benv.step(out["action"])
            buf["reward"].append(st.reward)
            buf["done"].append(st.terminated | st.truncated)
            buf["truncated"].append(st.truncated)
            o = st.obs
    buf["reward"].append(np.zeros(benv.rows, np.float32))
    buf["done"].append(np.zeros(benv.rows, bool))
    buf["truncated"].append(np.zeros(benv.rows, bool))
    benv.close()
    batch = {k: np.stack(v) for k, v in buf.items()}
    learner = make_learner(policy, spec.algorithm, total_train_steps=1_000_000)
    cpu, calls = _timed(lambda: learner.train_step(batch), seconds)
    c_learn = cpu / (calls * steps * benv.rows * skip)
    cores = os.cpu_count() or 1
    total = c_env + c_act + c_learn
    return {"experiment": os.path.basename(path), "cores": cores, "frame_skip": skip, "envs_per_slot": rows,
            "train_batch": [steps, cols], "c_env": c_env, "c_act": c_act, "c_learn": c_learn,
            "bound_frames_per_s": round(cores / total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment")
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measured part")
    args = parser.parse_args()
    print(json.dumps(measure(args.experiment, args.seconds)))


if __name__ == "__main__":
    main()
