"""PPO on time-major trajectory batches produced by actors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from srl_runtime.algorithms.gae import gae
from srl_runtime.algorithms.guard import guarded_step
from srl_runtime.config.experiment import PPOSpec
from srl_runtime.policies.policy import Policy


class PPOLearner:
    """Clipped-surrogate PPO with GAE, value clipping, entropy bonus and a linear lr schedule.

    Batch keys (time-major, L = T + K rows, B columns): obs [L,B,*obs], action [L,B,*act],
    logp/value/reward [L,B], done/truncated [L,B] bool, rnn_state [L,B,H] (recurrent only),
    policy_version [L,B]. Loss rows are [burn_in, L - bootstrap_steps); the rows after them only
    feed GAE. Feed-forward minibatches are random row samples; recurrent ones are column subsets
    so sequences stay whole. Each call increments `train_steps` and `policy.version`.
    """

    def __init__(self, policy: Policy, spec: PPOSpec, *, total_train_steps: int | None = None) -> None:
        self.policy = policy
        self.module = policy.module
        self.spec = spec
        self.total_train_steps = total_train_steps
        self.optimizer = _adam(self.module, spec.learning_rate)
        self.train_steps = 0
        self.skipped_updates = 0  # minibatch steps skipped for a non-finite loss or gradient
        # Set by a trainer group: averages gradients across trainers before each optimizer step.
        self.grad_sync: Callable[[nn.Module], None] | None = None

    # ------------------------------------------------------------------ schedule

    def current_lr(self) -> float:
        """Learning rate for the next train step."""
        if self.spec.lr_schedule == "linear" and self.total_train_steps:
            frac = max(0.0, 1.0 - self.train_steps / self.total_train_steps)
            return self.spec.learning_rate * frac
        return self.spec.learning_rate

    # ------------------------------------------------------------------ training

    def train_step(self, batch: dict[str, np.ndarray], burn_in: int = 0, bootstrap_steps: int = 1) -> dict[str, float]:
        """One PPO update (epochs x minibatches) on a batch; returns mean statistics."""
        spec, m, dev = self.spec, self.module, self.policy.device
        reward = np.asarray(batch["reward"], dtype=np.float32)
        value = np.asarray(batch["value"], dtype=np.float32)
        done = np.asarray(batch["done"], dtype=bool)
        truncated = batch.get("truncated")
        L, B = reward.shape
        end = L - bootstrap_steps
        if not 0 <= burn_in < end:
            raise ValueError(f"no loss rows: L={L}, burn_in={burn_in}, bootstrap_steps={bootstrap_steps}")

        adv, ret = gae(reward, value, done, spec.discount, spec.gae_lambda, truncated, bootstrap_steps > 0)
        adv, ret = adv[burn_in:end], ret[burn_in:end]
        old_value = value[burn_in:end]
        explained_var = _explained_variance(old_value, ret)

        if spec.normalize_returns:
            m.value_norm.update(torch.from_numpy(ret))
        obs_all = torch.as_tensor(batch["obs"], device=dev)
        if m.obs_norm is not None:
            m.obs_norm.update(obs_all[burn_in:end].reshape(-1, *m.obs_shape))

        t = {
            "adv": torch.as_tensor(adv, device=dev),
            "ret": m.value_norm.standardize(torch.as_tensor(ret, device=dev)),
            "old_value": m.value_norm.standardize(torch.as_tensor(old_value, device=dev)),
            "old_logp": torch.as_tensor(np.asarray(batch["logp"], dtype=np.float32)[burn_in:end], device=dev),
        }
        action = torch.as_tensor(batch["action"], device=dev)

        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

        sums: dict[str, float] = {}
        updates = 0
        if self.policy.recurrent:
            starts = torch.zeros((end, B), dtype=torch.bool, device=dev)
            starts[1:] = torch.as_tensor(done[: end - 1], device=dev)
            h0 = torch.as_tensor(batch["rnn_state"][0], device=dev)
            obs_seq, act_seq = obs_all[:end], action[burn_in:end]
            n_mb = min(spec.minibatches, B)
            for _ in range(spec.epochs):
                for cols in torch.randperm(B, device=dev).chunk(n_mb):
                    out, v = m.unroll(obs_seq[:, cols], h0[cols], starts[:, cols])
                    mb = {k: x[:, cols] for k, x in t.items()}
                    stats = self._update(out[burn_in:], v[burn_in:], act_seq[:, cols], mb)
                    updates += stats is not None
                    for k, x in (stats or {}).items():
                        sums[k] = sums.get(k, 0.0) + x
        else:
            n = (end - burn_in) * B
            obs_flat = obs_all[burn_in:end].reshape(n, *m.obs_shape)
            act_flat = action[burn_in:end].reshape(n, *action.shape[2:])
            flat = {k: x.reshape(n) for k, x in t.items()}
            n_mb = min(spec.minibatches, n)
            for _ in range(spec.epochs):
                for idx in torch.randperm(n, device=dev).chunk(n_mb):
                    out, v, _ = m.step(obs_flat[idx])
                    mb = {k: x[idx] for k, x in flat.items()}
                    stats = self._update(out, v, act_flat[idx], mb)
                    updates += stats is not None
                    for k, x in (stats or {}).items():
                        sums[k] = sums.get(k, 0.0) + x

        self.train_steps += 1
        self.policy.version += 1
        self.policy.refresh()
        result = {k: x / max(updates, 1) for k, x in sums.items()}
        result["lr"] = lr
        result["explained_variance"] = explained_var
        return result

    def _update(self, out: torch.Tensor, v: torch.Tensor, action: torch.Tensor, mb: dict[str, torch.Tensor]) -> dict[str, float] | None:
        """One gradient step on a minibatch (None: skipped, non-finite); tensors share leading dims."""
        spec, m = self.spec, self.module
        logp, entropy = m.log_prob_entropy(out, action)
        log_ratio = logp - mb["old_logp"]
        ratio = log_ratio.exp()
        adv = mb["adv"]
        if spec.normalize_advantages and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - spec.clip_ratio, 1.0 + spec.clip_ratio)).mean()

        ret = mb["ret"]
        if spec.value_clip is not None:
            old_v = mb["old_value"]
            v_clipped = old_v + (v - old_v).clamp(-spec.value_clip, spec.value_clip)
            value_loss = 0.5 * torch.max((v - ret).square(), (v_clipped - ret).square()).mean()
        else:
            value_loss = 0.5 * (v - ret).square().mean()
        entropy_mean = entropy.mean()
        loss = policy_loss - spec.entropy_coef * entropy_mean + spec.value_coef * value_loss

        grad_norm = guarded_step(self.optimizer, m, loss, max_grad_norm=spec.max_grad_norm, grad_sync=self.grad_sync)
        if grad_norm is None:
            self.skipped_updates += 1
            return None

        with torch.no_grad():
            approx_kl = ((ratio - 1.0) - log_ratio).mean()
            clip_frac = ((ratio - 1.0).abs() > spec.clip_ratio).float().mean()
        return {
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy_mean.detach()),
            "approx_kl": float(approx_kl),
            "clip_frac": float(clip_frac),
            "grad_norm": float(grad_norm),
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state and step counter (the normalisers live in the policy state)."""
        return {"optimizer": self.optimizer.state_dict(), "train_steps": self.train_steps}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore what state_dict returned."""
        self.optimizer.load_state_dict(d["optimizer"])
        self.train_steps = int(d["train_steps"])


def _adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel when this torch/device has it (~30% faster updates for small nets)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, eps=1e-5, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(module.parameters(), lr=lr, eps=1e-5)


def _explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the target is constant)."""
    var = float(np.var(target))
    return float("nan") if var == 0.0 else 1.0 - float(np.var(target - pred)) / var
