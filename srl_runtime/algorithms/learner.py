"""What every learner shares: the optimiser and its schedule, one gradient step, value statistics,
forward passes over whole batches, checkpoints.

Batch keys (time-major, L = burn_in + T + bootstrap rows, B columns): obs [L,B,*obs], action
[L,B,*act], logp/value/reward [L,B], done/truncated [L,B] bool, policy_version [L,B], and where the
policy needs them rnn_state [L,B,H] (recurrent) and critic_obs [L,B,*state] (centralised value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from srl_runtime.algorithms.guard import guarded_step
from srl_runtime.algorithms.popart import PopArt
from srl_runtime.config.experiment import LearnerSpec
from srl_runtime.policies.policy import Policy


class Learner:
    """Base class: subclasses implement `train_step(batch, burn_in, bootstrap_steps) -> stats`.

    `trained` is what the optimiser updates: the policy's module, plus any learner-only layers
    (PPG's auxiliary value head) passed as `extra`; a trainer group broadcasts and averages it.
    """

    def __init__(
        self, policy: Policy, spec: LearnerSpec, *, total_train_steps: int | None = None, extra: nn.Module | None = None
    ) -> None:
        self.policy = policy
        self.module = policy.module
        self.spec = spec
        self.total_train_steps = total_train_steps
        self.extra = extra.to(policy.device) if extra is not None else None
        self.trained: nn.Module = self.module if self.extra is None else nn.ModuleList([self.module, self.extra])
        self.optimizer = _adam(self.trained, spec.learning_rate)
        self.train_steps = 0
        self.skipped_updates = 0  # optimiser steps skipped for a non-finite loss or gradient
        # Set by a trainer group: average gradients (before each optimiser step) and statistics across trainers.
        self.grad_sync: Callable[[nn.Module], None] | None = None
        self.stat_sync: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.popart = PopArt(self.module.value_norm, self.module.critic_head, spec.popart_beta) if spec.popart else None

    def train_step(self, batch: dict[str, np.ndarray], burn_in: int = 0, bootstrap_steps: int = 1) -> dict[str, float]:
        """One update on a batch; returns mean statistics. Increments `train_steps`.

        The policy's version is the publisher's to advance (`Policy.advance_version`), not the learner's.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ schedule and steps

    def current_lr(self) -> float:
        """Learning rate for the next train step."""
        if self.spec.lr_schedule == "linear" and self.total_train_steps:
            frac = max(0.0, 1.0 - self.train_steps / self.total_train_steps)
            return self.spec.learning_rate * frac
        return self.spec.learning_rate

    def _apply_lr(self) -> float:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _optimize(self, loss: torch.Tensor) -> float | None:
        """Backward, average across the group, clip, step; returns the gradient norm before clipping.

        None when the loss or the gradient is non-finite: the step is skipped (parameters and
        optimiser state kept) and counted in `skipped_updates` (see guard.py).
        """
        grad_norm = guarded_step(
            self.optimizer, self.trained, loss, max_grad_norm=self.spec.max_grad_norm, grad_sync=self.grad_sync
        )
        if grad_norm is None:
            self.skipped_updates += 1
        return grad_norm

    def _finish_step(self) -> None:
        self.train_steps += 1
        self.policy.refresh()

    # ------------------------------------------------------------------ value statistics

    def update_value_stats(self, targets: np.ndarray) -> None:
        """Fold unnormalised value targets into the value statistics (PopArt, or normalizeReturns)."""
        if self.popart is not None:
            self.popart.reduce = self.stat_sync
            self.popart.update(torch.from_numpy(np.ascontiguousarray(targets)))
        elif getattr(self.spec, "normalize_returns", False):
            self.module.value_norm.update(torch.from_numpy(np.ascontiguousarray(targets)))

    # ------------------------------------------------------------------ forward passes

    def tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """obs, action and (where present) critic_obs of a batch on the policy's device."""
        dev = self.policy.device
        out = {"obs": torch.as_tensor(batch["obs"], device=dev), "action": torch.as_tensor(batch["action"], device=dev)}
        if "critic_obs" in batch:
            out["critic_obs"] = torch.as_tensor(batch["critic_obs"], device=dev)
        return out

    def forward_rows(self, batch: dict[str, np.ndarray], t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Head output [L,B,A] and normalised value [L,B] of every row, under the current network."""
        m = self.module
        obs = t["obs"]
        L, B = obs.shape[:2]
        if self.policy.recurrent:
            starts = torch.zeros((L, B), dtype=torch.bool, device=obs.device)
            starts[1:] = torch.as_tensor(np.asarray(batch["done"], bool)[:-1], device=obs.device)
            h0 = torch.as_tensor(batch["rnn_state"][0], device=obs.device)
            return m.unroll(obs, h0, starts)
        critic = t.get("critic_obs")
        out, v, _ = m.step(
            obs.reshape(L * B, *obs.shape[2:]), critic_obs=None if critic is None else critic.reshape(L * B, *critic.shape[2:])
        )
        return out.reshape(L, B, -1), v.reshape(L, B)

    @torch.no_grad()
    def evaluate(self, batch: dict[str, np.ndarray], t: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """The current network's log pi(a|x) and unnormalised V(x) for every row, [L,B] float32."""
        out, v = self.forward_rows(batch, t)
        logp, _ = self.module.log_prob_entropy(out, t["action"])
        value = self.module.value_norm.denormalize(v)
        return logp.float().cpu().numpy(), value.float().cpu().numpy()

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state, step counter and learner-only layers (the normalisers live in the policy state)."""
        state: dict[str, Any] = {"optimizer": self.optimizer.state_dict(), "train_steps": self.train_steps}
        if self.extra is not None:
            state["extra"] = {k: v.detach().cpu() for k, v in self.extra.state_dict().items()}
        return state

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore what state_dict returned."""
        if self.extra is not None and "extra" in d:
            self.extra.load_state_dict(d["extra"])
        self.optimizer.load_state_dict(d["optimizer"])
        self.train_steps = int(d["train_steps"])


def _adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel when this torch/device has it (~30% faster updates for small nets)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, eps=1e-5, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(module.parameters(), lr=lr, eps=1e-5)


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the target is constant)."""
    var = float(np.var(target))
    return float("nan") if var == 0.0 else 1.0 - float(np.var(target - pred)) / var
