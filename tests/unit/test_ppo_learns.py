"""Acceptance: synchronous PPO (EnvBatch -> Policy.rollout -> PPOLearner) solves CartPole-v1 to 195."""

from __future__ import annotations

import pytest
import torch

from srl_runtime.algorithms.sync_loop import run_sync_ppo
from srl_runtime.config.experiment import EnvironmentSpec, PolicySpec, PPOSpec

pytestmark = pytest.mark.unit

# Budget in env steps, not seconds: typically solved in ~20-30k steps (seeds 0-2).
MAX_ENV_STEPS = 80_000


def test_ppo_solves_cartpole_195() -> None:
    torch.set_num_threads(1)
    result = run_sync_ppo(
        EnvironmentSpec(id="CartPole-v1"),
        PolicySpec(),
        PPOSpec(),
        num_envs=16,
        sample_steps=32,
        max_env_steps=MAX_ENV_STEPS,
        target_return=195.0,
        window=20,
        seed=0,
    )
    assert result.solved, f"mean of last 20 = {result.mean_return:.1f} after {result.env_steps} steps"
    print(f"solved in {result.env_steps} env steps, {result.seconds:.1f}s, {result.train_steps} train steps")
