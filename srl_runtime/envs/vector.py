"""EnvBatch over a natively vectorised environment with same-step auto-reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode, VectorEnv

from srl_runtime.api.env import EnvBatch, StepBatch
from srl_runtime.envs.episodes import EpisodeTracker
from srl_runtime.envs.stub import STUB_ENV_ID, StubVectorEnv, register_stub

register_stub()  # so `gym.spec`/`gym.make` know SrlStub-v0 wherever the env builders are imported


class SameStepCartPoleVectorEnv(CartPoleVectorEnv):
    """gymnasium's CartPoleVectorEnv (same dynamics and limits) resetting finished rows in the same step.

    The parent only offers NEXT_STEP auto-reset, which spends one extra no-op step per episode and
    breaks the StepBatch contract (obs of a finished row must already be the next episode's first).
    """

    metadata = {**CartPoleVectorEnv.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every row (the parent's Euler equations, fewer temporaries); ended rows re-drawn at once."""
        if self.kinematics_integrator != "euler" or self._sutton_barto_reward:
            return self._step_via_parent(action)
        # gymnasium's __init__ sets `self.state = None` (reset fills it), so its inferred type is None.
        state = cast(npt.NDArray[np.float64], self.state)
        x, x_dot, theta, theta_dot = state
        force = np.where(action > 0, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * theta_dot * theta_dot * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta * costheta / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        state[0] = x + self.tau * x_dot
        state[1] = x_dot + self.tau * xacc
        state[2] = theta + self.tau * theta_dot
        state[3] = theta_dot + self.tau * thetaacc
        x, theta = state[0], state[2]
        terminated = (np.abs(x) > self.x_threshold) | (np.abs(theta) > self.theta_threshold_radians)
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        done = terminated | truncated
        if done.any():
            state[:, done] = self.np_random.uniform(low=self.low, high=self.high, size=(4, int(done.sum())))
            self.steps[done] = 0
        return state.T.astype(np.float32), np.ones(self.num_envs, np.float32), terminated, truncated, {}

    def _step_via_parent(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Non-default physics options: the parent's step, then the same-step reset."""
        obs, reward, terminated, truncated, info = super().step(action)
        done = terminated | truncated
        if done.any():
            n = int(done.sum())
            state = cast(npt.NDArray[np.float64], self.state)  # set by reset (declared None: see step)
            state[:, done] = self.np_random.uniform(low=self.low, high=self.high, size=(4, n))
            self.steps[done] = 0
            obs[done] = state[:, done].T
        # Already reset here: stop the parent from resetting (and zeroing) these rows next step.
        self.prev_done[:] = False
        return obs, reward, terminated, truncated, info


# Registered ids whose vector entry point only does NEXT_STEP, mapped to a same-step twin.
SAME_STEP_VECTOR_ENVS: dict[str, Callable[..., VectorEnv]] = {  # constructors taking num_envs and the env kwargs
    "CartPole-v0": SameStepCartPoleVectorEnv,
    "CartPole-v1": SameStepCartPoleVectorEnv,
    STUB_ENV_ID: StubVectorEnv,
}


def make_same_step_vector(env_id: str, num_envs: int, kwargs: dict[str, Any], max_episode_steps: int | None) -> VectorEnv | None:
    """A same-step vector env for `env_id`, or None when there is no native vectorised version."""
    cls = SAME_STEP_VECTOR_ENVS.get(env_id)
    if cls is None:
        return None
    env_spec = gym.spec(env_id)
    kw = {**env_spec.kwargs, **kwargs}
    limit = max_episode_steps or env_spec.max_episode_steps
    if limit is not None:
        kw["max_episode_steps"] = limit
    return cls(num_envs=num_envs, **kw)


class VectorEnvBatch(EnvBatch):
    """EnvBatch over a single-agent VectorEnv whose auto-reset mode is SAME_STEP."""

    def __init__(self, venv: VectorEnv, seed: int, clip_rewards: bool = False) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"VectorEnvBatch needs SAME_STEP auto-reset, got {mode}")
        self.venv = venv
        self.num_envs = venv.num_envs
        self.agents_per_env = 1
        self.observation_space = venv.single_observation_space
        self.action_space = venv.single_action_space
        self._seed: int | None = seed
        self._clip = clip_rewards
        self._episodes = EpisodeTracker(self.num_envs)

    def reset(self) -> np.ndarray:
        """Reset every environment (seeded on the first call only, so later resets differ)."""
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None
        self._episodes.reset()
        return obs

    def step(self, actions: np.ndarray) -> StepBatch:
        """Step all rows; rewards are float32, clipped to their sign if configured."""
        obs, reward, terminated, truncated, _ = self.venv.step(actions)
        self._episodes.add(reward)
        rets, lens = self._episodes.finish(terminated | truncated)
        reward = np.sign(reward, dtype=np.float32) if self._clip else reward.astype(np.float32, copy=False)
        return StepBatch(obs, reward, terminated, truncated, rets, lens)

    def close(self) -> None:
        """Close the vector env."""
        self.venv.close()
