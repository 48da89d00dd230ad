"""`Policy`: the numpy-facing wrapper actors, policy workers, trainers and evaluation share."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from srl_runtime.config.experiment import PolicySpec
from srl_runtime.policies.fast_numpy import NumpyActorCritic
from srl_runtime.policies.networks import ActorCritic


class Policy:
    """An ActorCritic plus its version; `rollout` maps numpy observations to numpy actions."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        spec: PolicySpec,
        device: str = "cpu",
        critic_obs_space: gym.Space | None = None,
    ) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.spec = spec
        self.device = torch.device(device)
        self.module = ActorCritic(observation_space, action_space, spec, critic_obs_space).to(self.device)
        self.centralized = self.module.centralized
        # The version of the parameters it holds (0: the initial ones, never published). The one owner
        # of the number: changed only by `load_state` (what was loaded) and `advance_version` (publishing).
        self.version = 0
        self.recurrent = self.module.rnn is not None
        self.rnn_state_size = self.module.rnn_size
        self._action_dtype = np.int64 if self.module.discrete else np.float32
        # Acting in numpy where possible (see fast_numpy); its RNG follows torch's seeding.
        self.numpy_acting = NumpyActorCritic.supports(self.module, self.device)
        self._rng = np.random.default_rng(int(torch.randint(2**62, ()).item()))
        self._fast: NumpyActorCritic | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-bind the numpy acting path (only needed if the module's tensors were replaced)."""
        vn = self.module.value_norm
        # On CPU these are views, so normaliser updates are seen in place; elsewhere a snapshot.
        self._value_mean = vn.mean.detach().cpu().numpy()
        self._value_var = vn.var.detach().cpu().numpy()
        self._value_eps = vn.eps
        self._fast = NumpyActorCritic(self.module, self._rng) if self.numpy_acting else None

    def _denormalize(self, value: np.ndarray) -> np.ndarray:
        """Value head output (normalised when the learner normalises returns) to return units."""
        std = np.sqrt(self._value_var + self._value_eps)
        return (value * std + self._value_mean).astype(np.float32)

    def initial_rnn_state(self, rows: int) -> np.ndarray:
        """Zero recurrent state [rows, H] ([rows, 0] without an RNN)."""
        return np.zeros((rows, self.rnn_state_size), dtype=np.float32)

    def rollout(
        self,
        obs: np.ndarray,
        rnn_state: np.ndarray | None = None,
        deterministic: bool = False,
        critic_obs: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Act on a batch: returns action [rows, *act], logp [rows], value [rows], rnn_state [rows, H].

        A centralised critic also reads `critic_obs` [rows, *state] (the env batch's `critic_obs()`).
        """
        rows = obs.shape[0]
        if self._fast is not None:
            action_np, logp_np, value_np = self._fast.act(obs, deterministic, critic_obs)
            return {
                "action": action_np,
                "logp": logp_np,
                "value": self._denormalize(value_np),
                "rnn_state": np.zeros((rows, 0), np.float32),
            }
        with torch.inference_mode():
            x = torch.as_tensor(obs, device=self.device)
            h = None
            if self.recurrent:
                if rnn_state is None:
                    rnn_state = self.initial_rnn_state(rows)
                h = torch.as_tensor(rnn_state, device=self.device)
            c = None if critic_obs is None else torch.as_tensor(critic_obs, device=self.device)
            out, value, h_new = self.module.step(x, h, c)
            action, logp = self.module.sample(out, deterministic)
            value_np = self._denormalize(value.cpu().numpy())
            return {
                "action": action.cpu().numpy().astype(self._action_dtype, copy=False),
                "logp": logp.cpu().numpy(),
                "value": value_np,
                "rnn_state": h_new.cpu().numpy() if h_new is not None else np.zeros((rows, 0), np.float32),
            }

    def get_state(self) -> dict[str, Any]:
        """A CPU copy of the module state (weights + normalisers), safe to torch.save or send."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}

    def advance_version(self) -> int:
        """A new version number for the parameters as they are now (a trainer publishing them); returns it."""
        self.version += 1
        return self.version

    def load_state(self, state: dict[str, Any], version: int) -> None:
        """Load a state from get_state and take its version number."""
        self.module.load_state_dict(state)
        self.version = int(version)
        self.refresh()
