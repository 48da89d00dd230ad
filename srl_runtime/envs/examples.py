"""Tiny example environments, for documentation and tests of the entry_point path."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from srl_runtime.api.env import Environment


class MatchingGame(Environment):
    """Two agents see a random bit each step and are rewarded for choosing it; 10-step episodes."""

    def __init__(self, agents: int = 2, length: int = 10) -> None:
        self._agents = agents
        self._length = length
        self._rng = np.random.default_rng()
        self._bits = np.zeros(agents, dtype=np.int64)
        self._t = 0

    @property
    def agent_count(self) -> int:
        return self._agents

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (2,), dtype=np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        self._bits = self._rng.integers(0, 2, self._agents)
        return np.eye(2, dtype=np.float32)[self._bits]

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        return self._obs()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        reward = (np.asarray(actions).reshape(-1) == self._bits).astype(np.float32)
        self._t += 1
        truncated = np.full(self._agents, self._t >= self._length)
        return self._obs(), reward, np.zeros(self._agents, bool), truncated, {}


class CountdownEnv(gym.Env):
    """A single-agent gymnasium.Env: reward 1 per step, terminates after `length` steps."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 5) -> None:
        self.length = length
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return np.ones(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        obs = np.array([1.0 - self._t / self.length], np.float32)
        return obs, 1.0, self._t >= self.length, False, {}


class TwoAgentSpread(Environment):
    """A cooperative two-agent task: cover both landmarks on a line, one agent on each.

    `cells` cells, two landmarks on distinct random cells, two agents on random cells; each agent
    moves left, stays or moves right. Both agents get the team reward: 1 for every step on which
    the agents stand on the two landmarks. An agent observes its id, its own cell and the landmarks,
    not the other agent, so they must settle who takes which landmark; `state()` (what a
    centralised critic reads) adds both agents' cells. Episodes end after `length` steps
    (truncated). Playing well (each agent to its own landmark) returns ~8.7 with the defaults;
    random play ~0.8.
    """

    def __init__(self, cells: int = 5, length: int = 10) -> None:
        self._cells = cells
        self._length = length
        self._rng = np.random.default_rng()
        self._pos = np.zeros(2, np.int64)
        self._landmarks = np.zeros(2, np.int64)
        self._t = 0

    @property
    def agent_count(self) -> int:
        return 2

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (2 + 2 * self._cells,), dtype=np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Discrete(3)

    @property
    def state_space(self) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (2 + 3 * self._cells,), dtype=np.float32)

    def _onehot(self, cell: int) -> np.ndarray:
        return np.eye(self._cells, dtype=np.float32)[cell]

    def _obs(self) -> np.ndarray:
        marks = self._onehot(self._landmarks[0]) + self._onehot(self._landmarks[1])
        ids = np.eye(2, dtype=np.float32)
        return np.stack([np.concatenate([ids[i], self._onehot(self._pos[i]), marks]) for i in range(2)])

    def state(self) -> np.ndarray:
        marks = self._onehot(self._landmarks[0]) + self._onehot(self._landmarks[1])
        ids = np.eye(2, dtype=np.float32)
        both = np.concatenate([self._onehot(self._pos[0]), self._onehot(self._pos[1])])
        return np.stack([np.concatenate([ids[i], both, marks]) for i in range(2)])

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._landmarks = np.sort(self._rng.choice(self._cells, 2, replace=False))
        self._pos = self._rng.integers(0, self._cells, 2)
        self._t = 0
        return self._obs()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        moves = np.asarray(actions, np.int64).reshape(2) - 1
        self._pos = np.clip(self._pos + moves, 0, self._cells - 1)
        covered = set(self._pos.tolist()) == set(self._landmarks.tolist())
        self._t += 1
        reward = np.full(2, float(covered), np.float32)
        truncated = np.full(2, self._t >= self._length)
        return self._obs(), reward, np.zeros(2, bool), truncated, {}
