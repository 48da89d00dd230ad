"""Evaluation worker: every interval, plays the tagged version deterministically and records the return.

An evaluation can take long (long episodes): the stop flag is checked every `progress_interval`
seconds while playing, and an evaluation cut short by a stop records nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from srl_runtime.envs import make_env_batch
from srl_runtime.param_db import make_parameter_db
from srl_runtime.policies import Policy
from srl_runtime.workers.base import PollResult, Worker, WorkerContext
from srl_runtime.workers.placement import set_torch_threads
from srl_runtime.workers.setup import ProgressSources

log = logging.getLogger(__name__)


class EvaluationWorker(Worker):
    """Deterministic evaluation of `evaluation.tag`."""

    role = "eval"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.spec = ctx.experiment.spec.evaluation
        self.sources = ProgressSources()
        self.last_version = -1
        self.results: list[dict[str, Any]] = []

    def _configure(self) -> None:
        spec = self.ctx.experiment.spec
        set_torch_threads(1)
        self.envs = self._own(make_env_batch(spec.environment, 1, seed=self.ctx.seed))
        self.policy = Policy(
            self.envs.observation_space, self.envs.action_space, spec.policy, device=self.spec.device,
            critic_obs_space=self.envs.critic_obs_space,
        )  # fmt: skip
        self.param_db = self.sources.param_db = self._own(make_parameter_db(spec.parameter_db, self.ctx.run_dir))
        self._next = time.monotonic()

    def _poll(self) -> PollResult:
        now = time.monotonic()
        if now < self._next:
            time.sleep(min(0.2, self._next - now))
            return PollResult()
        self._next = now + self.spec.interval_seconds
        try:
            ckpt = self.param_db.get(tag=self.spec.tag)
        except Exception:  # noqa: BLE001 - nothing tagged yet
            return PollResult()
        if ckpt.version == self.last_version:
            return PollResult()
        self.policy.load_state(ckpt.state["policy"], ckpt.version)
        returns, steps = self.play(self.spec.episodes)
        if len(returns) < self.spec.episodes:  # stopped mid-evaluation
            return PollResult(sample_count=steps)
        self.last_version = ckpt.version
        mean = float(np.mean(returns))
        self.results.append({"version": ckpt.version, "mean_return": mean, "episodes": len(returns)})
        store = getattr(self.param_db, "metadata", None)
        if store is not None:
            try:
                store.add_eval_result(ckpt.version, self.spec.tag, mean, len(returns))
            except Exception as err:  # noqa: BLE001 - the result stays in progress
                log.warning("recording eval result failed: %s", err)
        log.info("eval: version %d mean return %.1f over %d episodes", ckpt.version, mean, len(returns))
        return PollResult(sample_count=steps, batch_count=1)

    def play(self, episodes: int) -> tuple[list[float], int]:
        """Run `episodes` deterministic episodes; returns their raw returns and the steps taken."""
        obs = self.envs.reset()
        state = self.policy.initial_rnn_state(self.envs.rows)
        returns: list[float] = []
        steps = 0
        next_check = time.monotonic() + self.progress_interval
        while len(returns) < episodes and not self.stop_requested:
            if time.monotonic() >= next_check:  # the stop flag, even in the middle of a long episode
                next_check = time.monotonic() + self.progress_interval
                self._check_stop_flag()
            critic_obs = self.envs.critic_obs() if self.policy.centralized else None
            out = self.policy.rollout(obs, state if self.policy.recurrent else None, deterministic=True, critic_obs=critic_obs)
            step = self.envs.step(out["action"])
            steps += self.envs.rows
            obs = step.obs
            if self.policy.recurrent:
                state = out["rnn_state"]
                state[step.terminated | step.truncated] = 0.0
            returns.extend(step.episode_returns)
        return returns, steps

    def progress(self) -> dict[str, Any]:
        return {
            "eval": self.results[-1] if self.results else None,
            "rejected_checkpoints": self.sources.param_db.rejected_checkpoints,
        }
