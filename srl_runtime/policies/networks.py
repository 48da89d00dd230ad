"""The actor-critic network: MLP or Nature-CNN encoder, optional GRU core, Categorical/Gaussian head."""

from __future__ import annotations

import math
from typing import TypeVar, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srl_runtime.config.experiment import PolicySpec
from srl_runtime.policies.normalizer import RunningMeanStd

_LOG_2PI = math.log(2.0 * math.pi)


Layer = TypeVar("Layer", nn.Linear, nn.Conv2d)


def _init(layer: Layer, std: float = math.sqrt(2.0)) -> Layer:
    """Orthogonal weights, zero bias (CleanRL's layer_init)."""
    nn.init.orthogonal_(layer.weight, std)
    assert layer.bias is not None  # every layer here is built with a bias
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """Linear+activation layers; calls F.linear directly because per-module call overhead dominates
    the tiny per-step batches actors run."""

    def __init__(self, in_size: int, sizes: list[int], activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for size in sizes:
            self.layers.append(_init(nn.Linear(in_size, size)))
            in_size = size
        self.act = torch.tanh if activation == "tanh" else torch.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.act
        for layer in self.layers:
            # nn.ModuleList is not generic in torch's stubs: its items are the nn.Linear layers built above.
            linear = cast(nn.Linear, layer)
            x = act(F.linear(x, linear.weight, linear.bias))
        return x


class NatureCNN(nn.Module):
    """The DQN Nature convolution stack; uint8 input scaled by 1/255, then an MLP of hidden_sizes."""

    def __init__(self, obs_shape: tuple[int, ...], hidden_sizes: list[int]) -> None:
        super().__init__()
        c = obs_shape[0]
        self.convs = nn.Sequential(
            _init(nn.Conv2d(c, 32, 8, stride=4)), nn.ReLU(),
            _init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            _init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *obs_shape)).shape[1]
        self.head = MLP(flat, hidden_sizes, "relu")
        self.out_size = hidden_sizes[-1]
        # NHWC lets oneDNN pick faster convolution kernels on CPU (~15% per train step measured).
        self.convs.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.convs(x))


class ActorCritic(nn.Module):
    """Actor-critic for one agent's spaces; works on flat batches [N, *obs] and sequences [L, B, *obs].

    With an RNN the encoder is always shared (one GRU state per row). The value head predicts
    normalised values when `value_norm` is in use (see `value`), everything else is plain PPO.
    With `centralizedValue` the critic's MLP reads `critic_obs` (from `critic_obs_space`, the
    environment's global state) instead of the agent's observation.
    """

    def __init__(
        self, observation_space: gym.Space, action_space: gym.Space, spec: PolicySpec, critic_obs_space: gym.Space | None = None
    ) -> None:
        super().__init__()
        if not isinstance(observation_space, gym.spaces.Box):
            raise TypeError(f"observation space must be Box, got {observation_space}")
        self.obs_shape = tuple(observation_space.shape)
        self.image = spec.encoder == "cnn"
        self.scale_uint8 = observation_space.dtype == np.uint8
        self.shared = self.image or spec.shared_encoder or spec.rnn is not None
        self.obs_norm = RunningMeanStd(self.obs_shape) if spec.normalize_observations else None
        self.value_norm = RunningMeanStd(())

        if self.image:
            self.actor_enc: nn.Module = NatureCNN(self.obs_shape, spec.hidden_sizes)
            feat = self.actor_enc.out_size
        else:
            in_size = int(np.prod(self.obs_shape))
            self.actor_enc = MLP(in_size, spec.hidden_sizes, spec.activation)
            feat = spec.hidden_sizes[-1]
        self.centralized = spec.centralized_value
        self.critic_obs_shape: tuple[int, ...] | None = None
        if self.centralized:
            if not isinstance(critic_obs_space, gym.spaces.Box):
                raise ValueError(
                    "policy.centralizedValue: the environment gives no global state (needs a multi-agent srl Environment)"
                )
            self.critic_obs_shape = tuple(critic_obs_space.shape)
        self.critic_enc: nn.Module | None = None
        if not self.shared:
            critic_in = int(np.prod(self.critic_obs_shape or self.obs_shape))
            self.critic_enc = MLP(critic_in, spec.hidden_sizes, spec.activation)
        self.feature_size = feat if spec.rnn is None else spec.rnn.hidden_size

        self.rnn: nn.GRUCell | None = None
        self.rnn_size = 0
        if spec.rnn is not None:
            self.rnn = nn.GRUCell(feat, spec.rnn.hidden_size)
            self.rnn_size = spec.rnn.hidden_size
            feat = spec.rnn.hidden_size

        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if isinstance(action_space, gym.spaces.Discrete):
            self.actor_head = _init(nn.Linear(feat, int(action_space.n)), 0.01)
            self.log_std = None
            self.act_shape: tuple[int, ...] = ()
        elif isinstance(action_space, gym.spaces.Box):
            dim = int(np.prod(action_space.shape))
            self.actor_head = _init(nn.Linear(feat, dim), 0.01)
            self.log_std = nn.Parameter(torch.zeros(dim))  # state-independent
            self.act_shape = tuple(action_space.shape)
        else:
            raise TypeError(f"action space must be Discrete or Box, got {action_space}")
        self.critic_head = _init(nn.Linear(feat, 1), 1.0)

    # ------------------------------------------------------------------ encoding

    def _prep(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        if self.scale_uint8:
            x = x * (1.0 / 255.0)
        if self.obs_norm is not None:
            x = self.obs_norm.normalize(x)
        if not self.image and x.dim() > 2:
            x = x.reshape(x.shape[0], -1)
        return x

    def _encode(self, obs: torch.Tensor, critic_obs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat [N, *obs] (and [N, *critic_obs] when centralised) -> (actor features, critic features)."""
        x = self._prep(obs)
        a = self.actor_enc(x)
        if self.critic_enc is None:
            return a, a
        if self.centralized:
            if critic_obs is None:
                raise ValueError("a centralised critic needs critic_obs")
            return a, self.critic_enc(critic_obs.float().reshape(critic_obs.shape[0], -1))
        return a, self.critic_enc(x)

    # ------------------------------------------------------------------ one step (acting)

    def step(
        self, obs: torch.Tensor, rnn_state: torch.Tensor | None = None, critic_obs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """[N, *obs] -> (actor output (logits or mean) [N, A], normalised value [N], new rnn state)."""
        a, c = self._encode(obs, critic_obs)
        h = None
        if self.rnn is not None:
            assert rnn_state is not None
            h = self.rnn(a, rnn_state)
            a = c = h
        head, critic = self.actor_head, self.critic_head
        value = F.linear(c, critic.weight, critic.bias).squeeze(-1)
        return F.linear(a, head.weight, head.bias), value, h

    # ------------------------------------------------------------------ sequences (training)

    def unroll(
        self,
        obs: torch.Tensor,
        rnn_state: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        critic_obs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[L, B, *obs] -> (actor output [L, B, A], normalised value [L, B]).

        For an RNN, `rnn_state` [B, H] is the state before row 0 and `starts` [L, B] marks rows that
        begin a new episode (state zeroed before them).
        """
        L, B = obs.shape[:2]
        flat_critic = None if critic_obs is None else critic_obs.reshape(L * B, *critic_obs.shape[2:])
        a, c = self._encode(obs.reshape(L * B, *obs.shape[2:]), flat_critic)
        if self.rnn is not None:
            assert rnn_state is not None and starts is not None
            a = a.reshape(L, B, -1)
            keep = (~starts).unsqueeze(-1).to(a.dtype)
            h = rnn_state
            outs = []
            for t in range(L):
                h = self.rnn(a[t], h * keep[t])
                outs.append(h)
            a = c = torch.stack(outs).reshape(L * B, -1)
        out = self.actor_head(a)
        value = self.critic_head(c).squeeze(-1)
        return out.reshape(L, B, -1), value.reshape(L, B)

    # ------------------------------------------------------------------ distributions

    def step_features(
        self, obs: torch.Tensor, critic_obs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feed-forward [N, *obs] -> (actor output [N, A], normalised value [N], actor features [N, F])."""
        if self.rnn is not None:
            raise ValueError("step_features is for feed-forward policies")
        a, c = self._encode(obs, critic_obs)
        return self.actor_head(a), self.critic_head(c).squeeze(-1), a

    def kl(self, out_old: torch.Tensor, out: torch.Tensor, old_log_std: torch.Tensor | None = None) -> torch.Tensor:
        """KL(pi_old || pi) per row between head outputs (any leading dims); Gaussian: pi_old's log std too."""
        if self.discrete:
            old = torch.log_softmax(out_old, -1)
            return (old.exp() * (old - torch.log_softmax(out, -1))).sum(-1)
        assert self.log_std is not None and old_log_std is not None
        ratio = (2.0 * (old_log_std - self.log_std)).exp()  # sigma_old^2 / sigma^2
        mean_term = (out_old - out).square() / (2.0 * (2.0 * self.log_std).exp())
        return (self.log_std - old_log_std + 0.5 * ratio + mean_term - 0.5).sum(-1)

    def log_prob_entropy(self, out: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of `action` and entropy under the head output `out` (any leading dims)."""
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            logp = logp_all.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        assert self.log_std is not None
        a = action.reshape(*out.shape)
        std = self.log_std.exp()
        logp = (-0.5 * ((a - out) / std).square() - self.log_std - 0.5 * _LOG_2PI).sum(-1)
        entropy = (self.log_std + 0.5 * (1.0 + _LOG_2PI)).sum().expand(logp.shape)
        return logp, entropy

    def sample(self, out: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw actions [N, *act] and their log-probabilities [N] from head output [N, A]."""
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            if deterministic:
                action = out.argmax(-1)
            else:
                # Inverse-CDF sampling: several times cheaper than torch.multinomial on small batches.
                u = torch.rand(out.shape[0], 1, device=out.device)
                cdf = logp_all.exp().cumsum(-1)
                action = (cdf < u).sum(-1).clamp_(max=out.shape[-1] - 1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        assert self.log_std is not None
        action = out if deterministic else out + torch.randn_like(out) * self.log_std.exp()
        logp, _ = self.log_prob_entropy(out, action)
        return action.reshape(out.shape[0], *self.act_shape), logp
