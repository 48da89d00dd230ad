"""IMPALA's learner (Espeholt et al. 2018): one V-trace actor-critic gradient step per batch."""

from __future__ import annotations

import numpy as np
import torch

from srl_runtime.algorithms.learner import Learner, explained_variance
from srl_runtime.algorithms.vtrace import vtrace
from srl_runtime.config.experiment import ImpalaSpec


class ImpalaLearner(Learner):
    """Policy gradient with V-trace advantages, value regression on V-trace targets, entropy bonus.

    The current network re-evaluates the whole batch (the actors' policy is only the behaviour
    policy mu in the importance weights); the value statistics (PopArt) move before the gradient
    pass, so the loss is taken in the new normalisation. Loss rows: [burn_in, L - bootstrap_steps).
    """

    spec: ImpalaSpec

    def train_step(self, batch: dict[str, np.ndarray], burn_in: int = 0, bootstrap_steps: int = 1) -> dict[str, float]:
        """One gradient step on a batch; returns its statistics."""
        spec, m, dev = self.spec, self.module, self.policy.device
        reward = np.asarray(batch["reward"], dtype=np.float32)
        L = reward.shape[0]
        end = L - bootstrap_steps
        if not 0 <= burn_in < end:
            raise ValueError(f"no loss rows: L={L}, burn_in={burn_in}, bootstrap_steps={bootstrap_steps}")
        t = self.tensors(batch)
        logp_now, value_now = self.evaluate(batch, t)
        vs, adv = vtrace(
            logp_now - np.asarray(batch["logp"], dtype=np.float32), reward, value_now,
            np.asarray(batch["done"], dtype=bool), spec.discount, spec.rho_clip, spec.c_clip, spec.trace_lambda,
            batch.get("truncated"), bootstrap_steps > 0,
        )  # fmt: skip
        vs, adv = vs[burn_in:end].astype(np.float32), adv[burn_in:end].astype(np.float32)
        explained_var = explained_variance(value_now[burn_in:end], vs)
        self.update_value_stats(vs)
        if m.obs_norm is not None:
            m.obs_norm.update(t["obs"][burn_in:end].reshape(-1, *m.obs_shape))
        lr = self._apply_lr()

        out, v = self.forward_rows(batch, t)
        logp, entropy = m.log_prob_entropy(out[burn_in:end], t["action"][burn_in:end])
        policy_loss = -(torch.as_tensor(adv, device=dev) * logp).mean()
        target = m.value_norm.standardize(torch.as_tensor(vs, device=dev))
        value_loss = 0.5 * (v[burn_in:end] - target).square().mean()
        entropy_mean = entropy.mean()
        loss = policy_loss + spec.value_coef * value_loss - spec.entropy_coef * entropy_mean
        grad_norm = self._optimize(loss)
        self._finish_step()
        with torch.no_grad():
            log_rho = torch.as_tensor(logp_now[burn_in:end] - np.asarray(batch["logp"], np.float32)[burn_in:end])
        return {
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy_mean.detach()),
            "mean_rho": float(log_rho.exp().mean()),
            "clipped_rho_frac": float((log_rho.exp() > spec.rho_clip).float().mean()),
            **({"grad_norm": grad_norm} if grad_norm is not None else {}),  # None: skipped, non-finite
            "lr": lr,
            "explained_variance": explained_var,
        }
