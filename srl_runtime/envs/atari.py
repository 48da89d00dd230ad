"""Atari (ALE) environments with the standard Nature preprocessing from AtariSpec.

Two builders give the same observations ([frame_stack, screen, screen] uint8), actions and
episode semantics:
- `make_atari_vector`: ale_py's C++ `AtariVectorEnv` (fast, the default for ALE/<Game>-v5 ids);
- `make_atari_serial`: ALE env with frameskip=1 + gymnasium's AtariPreprocessing and
  FrameStackObservation, stepped in a Python loop (any ALE id, e.g. PongNoFrameskip-v4).

Choices (documented because they differ between papers): sticky actions off
(repeat_action_probability=0, the Nature setup; override via kwargs), no FIRE on reset,
episodic life signals `terminated` on a life loss without resetting the game, rewards clipped to
their sign for learning while reported returns are raw whole-game sums.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from srl_runtime.api.env import EnvBatch, StepBatch
from srl_runtime.config.experiment import AtariSpec
from srl_runtime.envs.serial import SerialGymBatch
from srl_runtime.envs.vector import VectorEnvBatch

_V5_ID = re.compile(r"^ALE/([A-Za-z0-9]+)-v5$")


def register_ale() -> None:
    """Make ALE/* ids known to gymnasium."""
    import ale_py

    gym.register_envs(ale_py)


def rom_name(env_id: str) -> str | None:
    """snake_case ROM name of an ALE/<Game>-v5 id (MsPacman -> ms_pacman), else None."""
    m = _V5_ID.match(env_id)
    if m is None:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower()


def make_atari_vector(env_id: str, atari: AtariSpec, num_envs: int, seed: int, kwargs: dict[str, Any]) -> EnvBatch | None:
    """EnvBatch over ale_py's AtariVectorEnv, or None when the id or kwargs do not fit it."""
    try:
        from ale_py.vector_env import AtariVectorEnv
    except ImportError:
        return None
    game = rom_name(env_id)
    allowed = {"repeat_action_probability", "full_action_space", "max_num_frames_per_episode", "num_threads"}
    if game is None or not set(kwargs) <= allowed:
        return None
    kw = {"repeat_action_probability": 0.0, "num_threads": 1, **kwargs}
    venv = AtariVectorEnv(
        game,
        num_envs,
        autoreset_mode="SameStep",
        img_height=atari.screen_size,
        img_width=atari.screen_size,
        grayscale=True,
        stack_num=atari.frame_stack,
        frameskip=atari.frame_skip,
        maxpool=True,
        noop_max=atari.noop_max,
        episodic_life=False,
        life_loss_info=atari.episodic_life,
        reward_clipping=False,  # clipped by the batch so reported returns stay raw
        use_fire_reset=False,
        **kw,
    )
    return AtariVectorBatch(venv, seed, clip_rewards=atari.clip_rewards)


class AtariVectorBatch(VectorEnvBatch):
    """VectorEnvBatch that tells life losses (learning ends) from game overs (reported returns)."""

    def __init__(self, venv: Any, seed: int, clip_rewards: bool) -> None:
        super().__init__(venv, seed, clip_rewards)
        self._lives = np.zeros(self.num_envs, dtype=np.int32)

    def reset(self) -> np.ndarray:
        """Reset and remember lives."""
        obs, info = self.venv.reset(seed=self._seed)
        self._seed = None
        self._episodes.reset()
        self._lives = info["lives"].copy()
        return obs

    def step(self, actions: np.ndarray) -> StepBatch:
        """Step; a terminated row whose lives did not drop is a game over (the game was reset)."""
        obs, reward, terminated, truncated, info = self.venv.step(np.asarray(actions, dtype=np.int64))
        lives = info["lives"]
        game_over = truncated | (terminated & (lives >= self._lives))
        self._lives = lives.copy()
        self._episodes.add(reward)
        rets, lens = self._episodes.finish(game_over)
        clipped = np.sign(reward).astype(np.float32) if self._clip else reward.astype(np.float32)
        return StepBatch(obs, clipped, terminated.astype(bool), truncated.astype(bool), rets, lens)


def make_atari_env(env_id: str, atari: AtariSpec, kwargs: dict[str, Any], max_episode_steps: int | None) -> gym.Env:
    """One ALE env (frameskip=1) wrapped in AtariPreprocessing + FrameStackObservation."""
    register_ale()
    kw = {"repeat_action_probability": 0.0, **kwargs, "frameskip": 1}
    env = gym.make(env_id, max_episode_steps=max_episode_steps, disable_env_checker=True, **kw)
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=atari.noop_max,
        frame_skip=atari.frame_skip,
        screen_size=atari.screen_size,
        terminal_on_life_loss=False,  # life loss handled by SerialGymBatch without a reset
        grayscale_obs=True,
        scale_obs=False,
    )
    return gym.wrappers.FrameStackObservation(env, atari.frame_stack)


def make_atari_serial(
    env_id: str, atari: AtariSpec, num_envs: int, seed: int, kwargs: dict[str, Any], max_episode_steps: int | None
) -> EnvBatch:
    """SerialGymBatch of wrapped ALE envs."""
    envs = [make_atari_env(env_id, atari, kwargs, max_episode_steps) for _ in range(num_envs)]
    return SerialGymBatch(envs, seed, clip_rewards=atari.clip_rewards, life_loss=atari.episodic_life)


def make_atari_batch(
    env_id: str, atari: AtariSpec, num_envs: int, seed: int, kwargs: dict[str, Any], max_episode_steps: int | None
) -> EnvBatch:
    """The vector path when it fits, else the serial wrapper path."""
    vkw = dict(kwargs)
    if max_episode_steps is not None:
        vkw["max_num_frames_per_episode"] = max_episode_steps * atari.frame_skip
    batch = make_atari_vector(env_id, atari, num_envs, seed, vkw)
    if batch is not None:
        return batch
    return make_atari_serial(env_id, atari, num_envs, seed, kwargs, max_episode_steps)
