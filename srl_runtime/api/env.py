"""Environment interfaces: the multi-agent `Environment` users implement, and `EnvBatch` actors step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


def space_shape(space: gym.Space) -> tuple[int, ...]:
    """The fixed shape of a space's values; TypeError for spaces without one (gymnasium gives None)."""
    if space.shape is None:
        raise TypeError(f"space {space} has no fixed shape; observations must be arrays of one shape")
    return space.shape


class Environment(ABC):
    """A user environment with a fixed number of agents; spaces are per agent.

    The episode of an `Environment` ends (and `EnvBatch` resets it) once every agent is
    terminated or truncated in the same step.
    """

    @property
    @abstractmethod
    def agent_count(self) -> int:
        """Number of agents acting in every step."""

    @property
    @abstractmethod
    def observation_space(self) -> gym.Space:
        """Observation space of one agent."""

    @property
    @abstractmethod
    def action_space(self) -> gym.Space:
        """Action space of one agent."""

    @abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; returns observations [agents, *obs]."""

    @abstractmethod
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply actions [agents, *act]; returns (obs, reward, terminated, truncated, info), all per agent."""

    @property
    def state_space(self) -> gym.Space | None:
        """Space of one agent's global state for a centralised critic (None: all agents' observations)."""
        return None

    def state(self) -> np.ndarray | None:
        """Global state [agents, *state] after the latest reset or step (None: all agents' observations)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources."""


@dataclass
class StepBatch:
    """The result of stepping every row of an `EnvBatch` once.

    `obs` of a row whose episode ended in this step is already the first observation of the next
    episode (same-step auto-reset); the final observation is not kept.
    """

    obs: np.ndarray  # [rows, *obs_shape]
    reward: np.ndarray  # [rows] float32, the learning reward (clipped for Atari if configured)
    terminated: np.ndarray  # [rows] bool
    truncated: np.ndarray  # [rows] bool
    episode_returns: list[float] = field(default_factory=list)  # raw returns of episodes completed now
    episode_lengths: list[int] = field(default_factory=list)  # their lengths in steps


class EnvBatch(ABC):
    """One actor ring slot: `num_envs` environments (each `agents_per_env` rows) stepped together."""

    num_envs: int
    agents_per_env: int
    observation_space: gym.Space  # per agent
    action_space: gym.Space  # per agent
    critic_obs_space: gym.Space | None = None  # per row: a centralised critic's input (multi-agent only)

    @property
    def rows(self) -> int:
        """Rows of every observation/action array: num_envs * agents_per_env."""
        return self.num_envs * self.agents_per_env

    @abstractmethod
    def reset(self) -> np.ndarray:
        """Reset every environment; returns observations [rows, *obs]."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> StepBatch:
        """Step every row with actions [rows, *act]; finished episodes auto-reset in the same step."""

    def critic_obs(self) -> np.ndarray | None:
        """A centralised critic's input [rows, *critic_obs] for the current observations (None: unsupported)."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the environments."""

    def __enter__(self) -> EnvBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
