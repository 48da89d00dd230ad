"""Environments that misbehave on purpose, for tests (importable as `bad_envs:<Class>`; tests/ is on
sys.path in every tier, and subprocess tests put it on PYTHONPATH)."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np


class EndlessEnv(gym.Env):
    """CartPole-shaped spaces; an episode only ends (truncated) after `steps` steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, steps: int = 10**9) -> None:
        self.steps = steps
        self.t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(4, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.zeros(4, np.float32), 1.0, False, self.t >= self.steps, {}


class NaNRewardCartPole(gym.Wrapper):
    """CartPole-v1 that returns one NaN reward in the whole run: the first instance to reach step
    `at_step` claims `marker` (O_EXCL, so across processes and restarts only one ever does)."""

    def __init__(self, marker: str, at_step: int = 2000, what: str = "reward") -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.marker, self.at_step, self.what, self.t = marker, at_step, what, 0

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.at_step:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return obs, reward, terminated, truncated, info
            if self.what == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.inf)
        return obs, reward, terminated, truncated, info


class CrashingEnv(gym.Env):
    """Imports fine, so `srl validate` passes; blows up when a worker resets it."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        raise RuntimeError("CrashingEnv exploded on reset (on purpose)")

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        raise RuntimeError("unreachable")
