"""A numpy mirror of a feed-forward MLP ActorCritic for CPU acting.

For the small batches actors send every env step, torch's per-op dispatch costs more than the maths;
the same forward pass in numpy is ~3x faster. Only acting uses it; training stays in torch.
It holds numpy *views* of the module's CPU tensors, so in-place updates (optimizer steps,
load_state_dict, normaliser updates) are seen without rebuilding.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from torch import nn

from srl_runtime.policies.networks import MLP, ActorCritic

_LOG_2PI = math.log(2.0 * math.pi)


def _view(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _layers(mlp: MLP) -> list[tuple[np.ndarray, np.ndarray]]:
    # nn.ModuleList is not generic in torch's stubs: an MLP's layers are nn.Linear.
    linears = [cast(nn.Linear, layer) for layer in mlp.layers]
    return [(_view(layer.weight).T, _view(layer.bias)) for layer in linears]


class NumpyActorCritic:
    """Forward pass + sampling of `module` in numpy (rebuild only if the module's tensors are replaced)."""

    @staticmethod
    def supports(module: ActorCritic, device: torch.device) -> bool:
        """True for CPU, feed-forward, MLP-encoded modules."""
        return device.type == "cpu" and not module.image and module.rnn is None

    def __init__(self, module: ActorCritic, rng: np.random.Generator) -> None:
        assert isinstance(module.actor_enc, MLP)
        self.rng = rng
        self.tanh = module.actor_enc.act is torch.tanh
        self.actor = _layers(module.actor_enc)
        self.critic = _layers(module.critic_enc) if isinstance(module.critic_enc, MLP) else None
        self.centralized = module.centralized
        self.actor_head = (_view(module.actor_head.weight).T, _view(module.actor_head.bias))
        self.critic_head = (_view(module.critic_head.weight)[0], _view(module.critic_head.bias))
        self.discrete = module.discrete
        self.act_shape = module.act_shape
        self.scale_uint8 = module.scale_uint8
        self.obs_norm: tuple[np.ndarray, np.ndarray, float, float] | None = None
        if module.obs_norm is not None:
            n = module.obs_norm
            self.obs_norm = (_view(n.mean), _view(n.var), n.eps, n.clip)
        self.log_std = _view(module.log_std) if module.log_std is not None else None

    def _trunk(self, x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        for w, b in layers:
            x = x @ w
            x += b
            x = np.tanh(x, out=x) if self.tanh else np.maximum(x, 0.0, out=x)
        return x

    def act(
        self, obs: np.ndarray, deterministic: bool, critic_obs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(action, logp, normalised value) for a batch of observations (and critic inputs when centralised)."""
        x = obs.reshape(obs.shape[0], -1).astype(np.float32, copy=False)
        if self.scale_uint8:
            x = x * np.float32(1.0 / 255.0)
        if self.obs_norm is not None:
            mean, var, eps, clip = self.obs_norm
            x = np.clip((x - mean) / np.sqrt(var + eps), -clip, clip).astype(np.float32)
        a = self._trunk(x, self.actor)
        if self.critic is None:
            c = a
        elif self.centralized:
            if critic_obs is None:
                raise ValueError("a centralised critic needs critic_obs")
            c = self._trunk(critic_obs.reshape(critic_obs.shape[0], -1).astype(np.float32), self.critic)
        else:
            c = self._trunk(x, self.critic)
        value = c @ self.critic_head[0] + self.critic_head[1]
        out = a @ self.actor_head[0]
        out += self.actor_head[1]
        if self.discrete:
            z = out - out.max(1, keepdims=True)
            logp_all = z - np.log(np.exp(z).sum(1, keepdims=True))
            if deterministic:
                action = out.argmax(1)
            else:
                cdf = np.exp(logp_all).cumsum(1)
                action = (cdf < self.rng.random((x.shape[0], 1), dtype=np.float32)).sum(1)
                np.minimum(action, out.shape[1] - 1, out=action)
            logp = np.take_along_axis(logp_all, action[:, None], 1)[:, 0]
            return action.astype(np.int64, copy=False), logp, value
        assert self.log_std is not None
        if deterministic:
            action = out
            logp = np.full(x.shape[0], float((-self.log_std - 0.5 * _LOG_2PI).sum()), np.float32)
        else:
            noise = self.rng.standard_normal(out.shape, dtype=np.float32)
            action = out + noise * np.exp(self.log_std)
            logp = (-0.5 * noise * noise - self.log_std - np.float32(0.5 * _LOG_2PI)).sum(1)
        return action.reshape(x.shape[0], *self.act_shape), logp.astype(np.float32, copy=False), value
