"""Environment construction: `make_env_batch` turns an EnvironmentSpec into an EnvBatch."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from srl_runtime.api.env import EnvBatch, Environment, StepBatch
from srl_runtime.config.experiment import EnvironmentSpec
from srl_runtime.envs.atari import make_atari_batch, register_ale
from srl_runtime.envs.serial import AgentEnvBatch, SerialGymBatch
from srl_runtime.envs.vector import VectorEnvBatch, make_same_step_vector

__all__ = ["EnvBatch", "Environment", "StepBatch", "load_entry_point", "make_env_batch", "make_gym_env"]


def load_entry_point(entry_point: str) -> Any:
    """Import 'module:Attr' (Attr may be dotted)."""
    module_name, _, attr = entry_point.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def make_gym_env(spec: EnvironmentSpec) -> gym.Env | Environment:
    """One environment from the spec, no batching (also for evaluation)."""
    if spec.entry_point is not None:
        cls = load_entry_point(spec.entry_point)
        env = cls(**spec.kwargs)
        if isinstance(env, gym.Env) and spec.max_episode_steps is not None:
            env = gym.wrappers.TimeLimit(env, spec.max_episode_steps)
        return env
    assert spec.id is not None
    if spec.id.startswith("ALE/") or spec.atari is not None:
        register_ale()
    if spec.atari is not None:
        from srl_runtime.envs.atari import make_atari_env

        return make_atari_env(spec.id, spec.atari, spec.kwargs, spec.max_episode_steps)
    # The passive env checker only validates the first step; skipping it keeps one wrapper off the hot path.
    return gym.make(spec.id, max_episode_steps=spec.max_episode_steps, disable_env_checker=True, **spec.kwargs)


def make_env_batch(spec: EnvironmentSpec, num_envs: int, seed: int) -> EnvBatch:
    """Build `num_envs` environments stepped together; seeds are seed, seed+1, ... per env."""
    if num_envs < 1:
        raise ValueError("num_envs must be >= 1")
    if spec.entry_point is None and spec.id is not None:
        if spec.atari is not None:
            register_ale()
            return make_atari_batch(spec.id, spec.atari, num_envs, seed, spec.kwargs, spec.max_episode_steps)
        venv = make_same_step_vector(spec.id, num_envs, spec.kwargs, spec.max_episode_steps)
        if venv is not None:
            return VectorEnvBatch(venv, seed)
    envs = [make_gym_env(spec) for _ in range(num_envs)]
    if isinstance(envs[0], Environment):
        return AgentEnvBatch(envs, seed)  # type: ignore[arg-type]
    if not isinstance(envs[0], gym.Env):
        raise TypeError(f"{spec.entry_point} is neither a gymnasium.Env nor an srl Environment")
    return SerialGymBatch(envs, seed)  # type: ignore[arg-type]
