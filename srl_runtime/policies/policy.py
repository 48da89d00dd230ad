"""`Policy`: the numpy-facing wrapper actors, policy workers, trainers and evaluation share."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from srl_runtime.config.experiment import PolicySpec
from srl_runtime.policies.networks import ActorCritic


class Policy:
    """An ActorCritic plus its version; `rollout` maps numpy observations to numpy actions."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, spec: PolicySpec, device: str = "cpu") -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.spec = spec
        self.device = torch.device(device)
        self.module = ActorCritic(observation_space, action_space, spec).to(self.device)
        self.version = 0
        self.recurrent = self.module.rnn is not None
        self.rnn_state_size = self.module.rnn_size
        self._action_dtype = np.int64 if self.module.discrete else np.float32
        self.refresh()

    def refresh(self) -> None:
        """Re-read the value de-normalisation after the module's buffers changed (learner, load)."""
        vn = self.module.value_norm
        self._value_mean = float(vn.mean)
        self._value_std = float((vn.var + vn.eps).sqrt())
        self._value_identity = abs(self._value_mean) < 1e-12 and abs(self._value_std - 1.0) < 1e-6

    def initial_rnn_state(self, rows: int) -> np.ndarray:
        """Zero recurrent state [rows, H] ([rows, 0] without an RNN)."""
        return np.zeros((rows, self.rnn_state_size), dtype=np.float32)

    def rollout(
        self, obs: np.ndarray, rnn_state: np.ndarray | None = None, deterministic: bool = False
    ) -> dict[str, np.ndarray]:
        """Act on a batch: returns action [rows, *act], logp [rows], value [rows], rnn_state [rows, H]."""
        rows = obs.shape[0]
        with torch.inference_mode():
            x = torch.as_tensor(obs, device=self.device)
            h = None
            if self.recurrent:
                if rnn_state is None:
                    rnn_state = self.initial_rnn_state(rows)
                h = torch.as_tensor(rnn_state, device=self.device)
            out, value, h_new = self.module.step(x, h)
            action, logp = self.module.sample(out, deterministic)
            value_np = value.cpu().numpy()
            if not self._value_identity:
                value_np = value_np * self._value_std + self._value_mean
            return {
                "action": action.cpu().numpy().astype(self._action_dtype, copy=False),
                "logp": logp.cpu().numpy(),
                "value": value_np,
                "rnn_state": h_new.cpu().numpy() if h_new is not None else np.zeros((rows, 0), np.float32),
            }

    def get_state(self) -> dict[str, Any]:
        """A CPU copy of the module state (weights + normalisers), safe to torch.save or send."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}

    def load_state(self, state: dict[str, Any], version: int) -> None:
        """Load a state from get_state and take its version number."""
        self.module.load_state_dict(state)
        self.version = int(version)
        self.refresh()
