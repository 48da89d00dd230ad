"""EnvBatch as a plain loop over single environments (gymnasium or user `Environment`)."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from srl_runtime.api.env import EnvBatch, Environment, StepBatch, space_shape
from srl_runtime.envs.episodes import EpisodeTracker


class SerialGymBatch(EnvBatch):
    """Steps single-agent gymnasium envs one after another, resetting finished ones in place.

    With `life_loss` (episodic life), losing a life is reported as `terminated` for learning while
    the game goes on; episode returns/lengths are still reported per whole game.
    """

    def __init__(self, envs: Sequence[gym.Env], seed: int, clip_rewards: bool = False, life_loss: bool = False) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.agents_per_env = 1
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self._seed: int | None = seed
        self._clip = clip_rewards
        self._life_loss = life_loss
        self._lives = np.zeros(self.num_envs, dtype=np.int64)
        self._episodes = EpisodeTracker(self.num_envs)
        self._space_shape = space_shape(self.observation_space)
        self._obs_shape = (self.num_envs, *self._space_shape)
        self._obs_dtype = self.observation_space.dtype
        space = self.action_space
        # Gaussian policies sample unbounded actions; clip to the box here (as CleanRL's ClipAction).
        self._clip_low = space.low if isinstance(space, gym.spaces.Box) else None
        self._clip_high = space.high if isinstance(space, gym.spaces.Box) else None

    def reset(self) -> np.ndarray:
        """Reset every env (seeded seed+i on the first call)."""
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        for i, env in enumerate(self.envs):
            o, info = env.reset(seed=None if self._seed is None else self._seed + i)
            obs[i] = o
            self._lives[i] = info.get("lives", 0)
        self._seed = None
        self._episodes.reset()
        return obs

    def step(self, actions: np.ndarray) -> StepBatch:
        """Step each env with its row of `actions`."""
        if self._clip_low is not None:
            acts = np.clip(actions, self._clip_low, self._clip_high)
        else:
            acts = actions.tolist()  # Python ints pass gymnasium's Discrete check on its fast path
        life_loss = self._life_loss
        lives_now = self._lives
        obs: list[np.ndarray] = []
        raw: list[float] = []
        terminated: list[bool] = []
        truncated: list[bool] = []
        game_over: list[bool] = []
        for i, env in enumerate(self.envs):
            o, r, te, tr, info = env.step(acts[i])
            over = te or tr
            if over:
                o, info = env.reset()
                if life_loss:
                    lives_now[i] = info.get("lives", 0)
            elif life_loss:
                lives = info.get("lives", 0)
                te = lives < lives_now[i]
                lives_now[i] = lives
            obs.append(o)
            raw.append(float(r))
            terminated.append(te)
            truncated.append(tr)
            game_over.append(over)
        raw_arr = np.asarray(raw, dtype=np.float64)
        self._episodes.add(raw_arr)
        rets, lens = self._episodes.finish(np.asarray(game_over, dtype=bool))
        reward = np.sign(raw_arr).astype(np.float32) if self._clip else raw_arr.astype(np.float32)
        return StepBatch(
            np.stack(obs).astype(self._obs_dtype, copy=False),
            reward,
            np.asarray(terminated, dtype=bool),
            np.asarray(truncated, dtype=bool),
            rets,
            lens,
        )

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


class AgentEnvBatch(EnvBatch):
    """Steps multi-agent user `Environment`s; rows are env-major ([env0 agent0, env0 agent1, ...]).

    An environment is reset once all its agents are terminated or truncated in one step; each
    agent's return then counts as one finished episode. `critic_obs` is each agent's row of the
    environment's `state()`, or, where it has none, the agent's own observation followed by the
    others' in agent order.
    """

    def __init__(self, envs: Sequence[Environment], seed: int) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.agents_per_env = int(self.envs[0].agent_count)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self._seed: int | None = seed
        self._episodes = EpisodeTracker(self.rows)
        self._space_shape = space_shape(self.observation_space)
        self._obs_shape = (self.num_envs, self.agents_per_env, *self._space_shape)
        self._obs_dtype = self.observation_space.dtype
        state_space = self.envs[0].state_space
        self._env_state = state_space is not None
        self._critic_shape: tuple[int, ...] = ()  # of one row's critic input, when the env gives a state
        if state_space is not None:
            self.critic_obs_space = state_space
            self._critic_shape = space_shape(state_space)
        else:
            size = self.agents_per_env * int(np.prod(self._space_shape))
            self.critic_obs_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self._obs = np.zeros((self.rows, *self._space_shape), self._obs_dtype)

    def reset(self) -> np.ndarray:
        """Reset every env (seeded seed+i on the first call)."""
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        for i, env in enumerate(self.envs):
            obs[i] = env.reset(None if self._seed is None else self._seed + i)
        self._seed = None
        self._episodes.reset()
        self._obs = obs.reshape(self.rows, *self._space_shape)
        return self._obs

    def step(self, actions: np.ndarray) -> StepBatch:
        """Step each env with its agents' rows of `actions`."""
        a = self.agents_per_env
        acts = actions.reshape(self.num_envs, a, *actions.shape[1:])
        obs = np.empty(self._obs_shape, dtype=self._obs_dtype)
        reward = np.empty((self.num_envs, a), dtype=np.float64)
        terminated = np.empty((self.num_envs, a), dtype=bool)
        truncated = np.empty((self.num_envs, a), dtype=bool)
        ended = np.zeros((self.num_envs, a), dtype=bool)
        for i, env in enumerate(self.envs):
            o, r, te, tr, _ = env.step(acts[i])
            reward[i] = r
            terminated[i] = te
            truncated[i] = tr
            if np.all(terminated[i] | truncated[i]):
                ended[i] = True
                o = env.reset(None)
            obs[i] = o
        flat_reward = reward.reshape(-1)
        self._episodes.add(flat_reward)
        rets, lens = self._episodes.finish(ended.reshape(-1))
        self._obs = obs.reshape(self.rows, *self._space_shape)
        return StepBatch(
            self._obs,
            flat_reward.astype(np.float32),
            terminated.reshape(-1),
            truncated.reshape(-1),
            rets,
            lens,
        )

    def critic_obs(self) -> np.ndarray:
        """Every row's centralised critic input for the current observations."""
        if self._env_state:
            shape = self._critic_shape
            states = [np.asarray(env.state(), np.float32).reshape(self.agents_per_env, *shape) for env in self.envs]
            return np.stack(states).reshape(self.rows, *shape)
        a = self.agents_per_env
        own = self._obs.reshape(self.num_envs, a, -1).astype(np.float32)
        # Row (env i, agent j): agent j's observation, then the other agents' of env i in order.
        order = np.array([[j, *[k for k in range(a) if k != j]] for j in range(a)])
        return own[:, order].reshape(self.rows, -1)

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()
