"""A synchronous single-process PPO loop (env batch -> Policy.rollout -> PPOLearner): tests and tuning."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from srl_runtime.algorithms.ppo import PPOLearner
from srl_runtime.config.experiment import EnvironmentSpec, PolicySpec, PPOSpec
from srl_runtime.envs import make_env_batch
from srl_runtime.policies.policy import Policy


@dataclass
class SyncResult:
    """Outcome of a run: whether the target was reached, and at what cost."""

    solved: bool
    env_steps: int
    seconds: float
    train_steps: int
    mean_return: float
    episodes: int
    history: list[tuple[int, float]] = field(default_factory=list)  # (env_steps, mean of window)
    cpu_seconds: float = 0.0  # process CPU time: less sensitive than wall time to a shared machine


def run_sync_ppo(
    env: EnvironmentSpec,
    policy_spec: PolicySpec,
    ppo: PPOSpec,
    *,
    num_envs: int = 16,
    sample_steps: int = 32,
    max_env_steps: int = 200_000,
    target_return: float | None = None,
    window: int = 20,
    seed: int = 0,
) -> SyncResult:
    """Collect [T+1, B] batches (the last row bootstraps and starts the next batch) and train until done."""
    torch.manual_seed(seed)
    batch_env = make_env_batch(env, num_envs, seed)
    policy = Policy(batch_env.observation_space, batch_env.action_space, policy_spec)
    total = max(1, max_env_steps // (num_envs * sample_steps))
    learner = PPOLearner(policy, ppo, total_train_steps=total)
    T, B = sample_steps, batch_env.rows
    recent: deque[float] = deque(maxlen=window)
    history: list[tuple[int, float]] = []
    episodes = 0
    env_steps = 0
    start = time.perf_counter()
    cpu_start = time.process_time()

    obs = batch_env.reset()
    h = policy.initial_rnn_state(B)
    out = policy.rollout(obs, h)
    # Row 0 of every batch is the previous batch's bootstrap row (overlap of one step).
    buf: dict[str, list[np.ndarray]] = {}

    def push(o: np.ndarray, h_before: np.ndarray, res: dict[str, np.ndarray]) -> None:
        buf.setdefault("obs", []).append(o)
        buf.setdefault("rnn_state", []).append(h_before)
        buf.setdefault("action", []).append(res["action"])
        buf.setdefault("logp", []).append(res["logp"])
        buf.setdefault("value", []).append(res["value"])

    push(obs, h, out)
    try:
        while env_steps < max_env_steps:
            for _ in range(T):
                step = batch_env.step(out["action"])
                env_steps += B
                done = step.terminated | step.truncated
                buf.setdefault("reward", []).append(step.reward)
                buf.setdefault("done", []).append(done)
                buf.setdefault("truncated", []).append(step.truncated)
                if step.episode_returns:
                    recent.extend(step.episode_returns)
                    episodes += len(step.episode_returns)
                h = out["rnn_state"]
                if policy.recurrent and done.any():
                    h = h.copy()
                    h[done] = 0.0
                obs = step.obs
                out = policy.rollout(obs, h)
                push(obs, h, out)
            # The newest row has no reward yet: pad it; it only bootstraps.
            buf["reward"].append(np.zeros(B, np.float32))
            buf["done"].append(np.zeros(B, bool))
            buf["truncated"].append(np.zeros(B, bool))
            batch = {k: np.stack(v) for k, v in buf.items()}
            if not policy.recurrent:
                del batch["rnn_state"]
            learner.train_step(batch)
            buf = {}
            push(obs, h, out)
            mean = float(np.mean(recent)) if recent else float("nan")
            history.append((env_steps, mean))
            if target_return is not None and len(recent) == window and mean >= target_return:
                return SyncResult(
                    True, env_steps, time.perf_counter() - start, learner.train_steps, mean, episodes, history,
                    time.process_time() - cpu_start,
                )
    finally:
        batch_env.close()
    mean = float(np.mean(recent)) if recent else float("nan")
    return SyncResult(
        False, env_steps, time.perf_counter() - start, learner.train_steps, mean, episodes, history,
        time.process_time() - cpu_start,
    )
