"""A small multi-agent environment for tests: two agents, each balancing its own cart-pole; the
episode ends when both poles have fallen (or at 200 steps)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from srl_runtime.api.env import Environment


class TwoCartPoles(Environment):
    """Two CartPole-v1 copies acting as the two agents of one environment."""

    def __init__(self, max_steps: int = 200) -> None:
        self._envs = [gym.make("CartPole-v1").unwrapped for _ in range(2)]
        self._alive = np.ones(2, bool)
        self._obs = np.zeros((2, 4), np.float32)
        self._t = 0
        self.max_steps = max_steps

    @property
    def agent_count(self) -> int:
        return 2

    @property
    def observation_space(self) -> gym.Space:
        return self._envs[0].observation_space

    @property
    def action_space(self) -> gym.Space:
        return self._envs[0].action_space

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, env in enumerate(self._envs):
            self._obs[i] = env.reset(seed=None if seed is None else seed + i)[0]
        self._alive[:] = True
        self._t = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray):  # noqa: ANN201 - the Environment contract's tuple
        reward = np.zeros(2, np.float32)
        for i, env in enumerate(self._envs):
            if self._alive[i]:
                obs, r, term, _, _ = env.step(int(actions[i]))
                self._obs[i], reward[i] = obs, r
                self._alive[i] = not term
        self._t += 1
        terminated = ~self._alive
        truncated = np.full(2, self._t >= self.max_steps) & self._alive
        return self._obs.copy(), reward, terminated, truncated, {}
