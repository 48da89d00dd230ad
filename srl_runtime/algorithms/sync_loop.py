"""A synchronous single-process loop (env batch -> Policy.rollout -> learner): tests, tuning, benches.

With `policy_lag` the actors lag the learner as behind a trainer slower than its actors once the
sample queue is full: every batch arrives `policy_lag` versions stale, measured as the trainer's
buffer does (its oldest row: the overlap row an actor carries over is one version older than the
rest). Batches staler than `max_staleness` are dropped, as that buffer would.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from srl_runtime.algorithms.factory import make_learner
from srl_runtime.config.experiment import AlgorithmSpec, EnvironmentSpec, PolicySpec, PPOSpec
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
    mean_staleness: float = 0.0  # versions between the acting and the training policy, per trained batch
    dropped_stale: int = 0  # batches dropped for staleness


def run_sync_ppo(
    env: EnvironmentSpec,
    policy_spec: PolicySpec,
    ppo: PPOSpec | AlgorithmSpec,
    *,
    num_envs: int = 16,
    sample_steps: int = 32,
    max_env_steps: int = 200_000,
    target_return: float | None = None,
    window: int = 20,
    seed: int = 0,
    policy_lag: int = 0,
    max_staleness: int | None = None,
) -> SyncResult:
    """Collect [T+1, B] batches (the last row bootstraps and starts the next batch) and train until done.

    `ppo` is PPO's settings or a whole algorithm block (PPG, IMPALA).
    """
    torch.manual_seed(seed)
    batch_env = make_env_batch(env, num_envs, seed)
    critic_space = batch_env.critic_obs_space
    policy = Policy(batch_env.observation_space, batch_env.action_space, policy_spec, critic_obs_space=critic_space)
    total = max(1, max_env_steps // (num_envs * sample_steps))
    algorithm = ppo if isinstance(ppo, AlgorithmSpec) else AlgorithmSpec(ppo=ppo)
    learner = make_learner(policy, algorithm, total_train_steps=total)
    # The acting policy: the learner's own, or a copy `policy_lag` versions behind it.
    actor = policy
    history_states: deque[tuple[int, dict]] = deque(maxlen=max(1, policy_lag))
    if policy_lag > 0:
        actor = Policy(batch_env.observation_space, batch_env.action_space, policy_spec, critic_obs_space=critic_space)
        actor.load_state(policy.get_state(), policy.version)
        history_states.append((policy.version, policy.get_state()))
    centralized = policy.centralized
    T, B = sample_steps, batch_env.rows
    recent: deque[float] = deque(maxlen=window)
    history: list[tuple[int, float]] = []
    episodes = 0
    env_steps = 0
    staleness: list[int] = []
    dropped = 0
    start = time.perf_counter()
    cpu_start = time.process_time()

    obs = batch_env.reset()
    critic_obs = batch_env.critic_obs() if centralized else None
    h = actor.initial_rnn_state(B)
    out = actor.rollout(obs, h, critic_obs=critic_obs)
    # Row 0 of every batch is the previous batch's bootstrap row (overlap of one step).
    buf: dict[str, list[np.ndarray]] = {}

    def push(o: np.ndarray, h_before: np.ndarray, res: dict[str, np.ndarray], c: np.ndarray | None, version: int) -> None:
        buf.setdefault("obs", []).append(o)
        buf.setdefault("rnn_state", []).append(h_before)
        buf.setdefault("action", []).append(res["action"])
        buf.setdefault("logp", []).append(res["logp"])
        buf.setdefault("value", []).append(res["value"])
        buf.setdefault("policy_version", []).append(np.full(B, version, np.int64))
        if c is not None:
            buf.setdefault("critic_obs", []).append(c)

    def result(solved: bool) -> SyncResult:
        mean = float(np.mean(recent)) if recent else float("nan")
        return SyncResult(
            solved, env_steps, time.perf_counter() - start, learner.train_steps, mean, episodes, history,
            time.process_time() - cpu_start, float(np.mean(staleness)) if staleness else 0.0, dropped,
        )  # fmt: skip

    push(obs, h, out, critic_obs, actor.version)
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
                if actor.recurrent and done.any():
                    h = h.copy()
                    h[done] = 0.0
                obs = step.obs
                critic_obs = batch_env.critic_obs() if centralized else None
                out = actor.rollout(obs, h, critic_obs=critic_obs)
                out_version = actor.version
                push(obs, h, out, critic_obs, out_version)
            # The newest row has no reward yet: pad it; it only bootstraps.
            buf["reward"].append(np.zeros(B, np.float32))
            buf["done"].append(np.zeros(B, bool))
            buf["truncated"].append(np.zeros(B, bool))
            batch = {k: np.stack(v) for k, v in buf.items()}
            if not policy.recurrent:
                del batch["rnn_state"]
            lag = policy.version - int(batch["policy_version"].min())
            if max_staleness is not None and lag > max_staleness:
                dropped += 1
            else:
                staleness.append(lag)
                learner.train_step(batch)
                policy.advance_version()  # each train step is a new version for the acting copy
            buf = {}
            push(obs, h, out, critic_obs, out_version)  # acted on by the policy before this train step
            if policy_lag > 0:
                history_states.append((policy.version, policy.get_state()))
                version, state = history_states[0]
                if version != actor.version:
                    actor.load_state(state, version)
            mean = float(np.mean(recent)) if recent else float("nan")
            history.append((env_steps, mean))
            if target_return is not None and len(recent) == window and mean >= target_return:
                return result(True)
    finally:
        batch_env.close()
    return result(False)
