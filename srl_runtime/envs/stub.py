"""A zero-cost environment for measuring the pipeline around it (streams, forward pass, training).

`SrlStub-v0` has CartPole's spaces (4 float32 observations, 2 actions) and no physics: every step
returns zero observations and reward 1, and an episode is truncated after a fixed number of steps
(`max_episode_steps`, 200 by default). Actors get the vectorised `StubVectorEnv` (same-step
auto-reset, as for CartPole), so stepping 16 envs costs a few microseconds; evaluation and
`gym.make` get the single `StubEnv`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

STUB_ENV_ID = "SrlStub-v0"
STUB_EPISODE_STEPS = 200  # default episode length (the registered max_episode_steps)
OBSERVATION_SPACE = gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32)  # CartPole's shape and dtype
ACTION_SPACE = gym.spaces.Discrete(2)


class StubEnv(gym.Env):
    """One stub environment: zero observations, reward 1; the registration's TimeLimit ends episodes."""

    observation_space = OBSERVATION_SPACE
    action_space = ACTION_SPACE

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros(4, np.float32), 1.0, False, False, {}


class StubVectorEnv(VectorEnv):
    """`num_envs` stub environments stepped together, each truncated after `max_episode_steps` steps."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, max_episode_steps: int = STUB_EPISODE_STEPS) -> None:
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = OBSERVATION_SPACE
        self.single_action_space = ACTION_SPACE
        self.observation_space = gym.vector.utils.batch_space(OBSERVATION_SPACE, num_envs)
        self.action_space = gym.vector.utils.batch_space(ACTION_SPACE, num_envs)
        self.steps = np.zeros(num_envs, np.int64)
        self._reward = np.ones(num_envs, np.float32)
        self._terminated = np.zeros(num_envs, np.bool_)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        self.steps[:] = 0
        return np.zeros((self.num_envs, 4), np.float32), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        self.steps[truncated] = 0  # same-step reset: the next observation starts a new episode
        return np.zeros((self.num_envs, 4), np.float32), self._reward.copy(), self._terminated.copy(), truncated, {}


def register_stub() -> None:
    """Register `SrlStub-v0` with gymnasium (idempotent)."""
    if STUB_ENV_ID not in gym.registry:
        gym.register(id=STUB_ENV_ID, entry_point=f"{__name__}:StubEnv", max_episode_steps=STUB_EPISODE_STEPS)
