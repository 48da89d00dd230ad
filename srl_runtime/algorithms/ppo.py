"""PPO on time-major trajectory batches produced by actors (batch layout: `algorithms.learner`)."""

from __future__ import annotations

import numpy as np
import torch

from srl_runtime.algorithms.gae import gae
from srl_runtime.algorithms.learner import Learner, explained_variance
from srl_runtime.algorithms.vtrace import vtrace
from srl_runtime.config.experiment import PPOSpec
from srl_runtime.policies.policy import Policy


class PPOLearner(Learner):
    """Clipped-surrogate PPO with GAE or V-trace, value clipping, dual clip, entropy bonus, linear lr.

    Loss rows are [burn_in, L - bootstrap_steps); the rows after them only feed GAE/V-trace.
    Feed-forward minibatches are random row samples; recurrent ones are column subsets so sequences
    stay whole. With `offPolicyCorrection: vtrace` (Sample Factory's APPO) the trainer's current
    network re-evaluates the batch first: V-trace turns its values and the importance weights
    pi/mu into value targets and rho-weighted advantages; the ratio stays the one against the
    actors' policy mu, so PPO's clip still bounds how far stale samples can pull.
    """

    spec: PPOSpec

    def __init__(self, policy: Policy, spec: PPOSpec, *, total_train_steps: int | None = None, **kw: object) -> None:
        super().__init__(policy, spec, total_train_steps=total_train_steps, **kw)  # type: ignore[arg-type]

    def targets(
        self, batch: dict[str, np.ndarray], t: dict[str, torch.Tensor], burn_in: int, bootstrap_steps: int
    ) -> dict[str, np.ndarray]:
        """Advantages, value targets, old values and old log-probabilities of the loss rows."""
        spec = self.spec
        reward = np.asarray(batch["reward"], dtype=np.float32)
        done = np.asarray(batch["done"], dtype=bool)
        truncated = batch.get("truncated")
        end = reward.shape[0] - bootstrap_steps
        behaviour_logp = np.asarray(batch["logp"], dtype=np.float32)
        if spec.off_policy_correction == "vtrace":
            logp, value = self.evaluate(batch, t)
            ret, adv = vtrace(
                logp - behaviour_logp, reward, value, done, spec.discount, spec.rho_clip, spec.c_clip,
                spec.gae_lambda, truncated, bootstrap_steps > 0,
            )  # fmt: skip
        else:
            value = np.asarray(batch["value"], dtype=np.float32)
            adv, ret = gae(reward, value, done, spec.discount, spec.gae_lambda, truncated, bootstrap_steps > 0)
        return {
            "adv": adv[burn_in:end].astype(np.float32),
            "ret": ret[burn_in:end].astype(np.float32),
            "old_value": value[burn_in:end],
            "old_logp": behaviour_logp[burn_in:end],
        }

    def train_step(self, batch: dict[str, np.ndarray], burn_in: int = 0, bootstrap_steps: int = 1) -> dict[str, float]:
        """One PPO update (epochs x minibatches) on a batch; returns mean statistics."""
        spec, m, dev = self.spec, self.module, self.policy.device
        L, B = np.asarray(batch["reward"]).shape
        end = L - bootstrap_steps
        if not 0 <= burn_in < end:
            raise ValueError(f"no loss rows: L={L}, burn_in={burn_in}, bootstrap_steps={bootstrap_steps}")
        t_all = self.tensors(batch)
        tg = self.targets(batch, t_all, burn_in, bootstrap_steps)
        self.remember(t_all, tg, burn_in, end)
        explained_var = explained_variance(tg["old_value"], tg["ret"])
        self.update_value_stats(tg["ret"])
        obs_all = t_all["obs"]
        if m.obs_norm is not None:
            m.obs_norm.update(obs_all[burn_in:end].reshape(-1, *m.obs_shape))

        t = {
            "adv": torch.as_tensor(tg["adv"], device=dev),
            "ret": m.value_norm.standardize(torch.as_tensor(tg["ret"], device=dev)),
            "old_value": m.value_norm.standardize(torch.as_tensor(tg["old_value"], device=dev)),
            "old_logp": torch.as_tensor(tg["old_logp"], device=dev),
        }
        action = t_all["action"]
        lr = self._apply_lr()

        sums: dict[str, float] = {}
        updates = 0
        if self.policy.recurrent:
            starts = torch.zeros((end, B), dtype=torch.bool, device=dev)
            starts[1:] = torch.as_tensor(np.asarray(batch["done"], bool)[: end - 1], device=dev)
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
            critic = t_all.get("critic_obs")
            critic_flat = None if critic is None else critic[burn_in:end].reshape(n, *critic.shape[2:])
            flat = {k: x.reshape(n) for k, x in t.items()}
            n_mb = min(spec.minibatches, n)
            for _ in range(spec.epochs):
                for idx in torch.randperm(n, device=dev).chunk(n_mb):
                    out, v, _ = m.step(obs_flat[idx], critic_obs=None if critic_flat is None else critic_flat[idx])
                    mb = {k: x[idx] for k, x in flat.items()}
                    stats = self._update(out, v, act_flat[idx], mb)
                    updates += stats is not None
                    for k, x in (stats or {}).items():
                        sums[k] = sums.get(k, 0.0) + x

        self._finish_step()
        result = {k: x / max(updates, 1) for k, x in sums.items()}
        result["lr"] = lr
        result["explained_variance"] = explained_var
        return result

    def remember(self, t_all: dict[str, torch.Tensor], targets: dict[str, np.ndarray], burn_in: int, end: int) -> None:
        """Hook for learners that keep what a batch taught (PPG's auxiliary memory); PPO keeps nothing."""

    def normalized_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        """Per-minibatch (A - mean) / std, if configured."""
        if not self.spec.normalize_advantages or adv.numel() < 2:
            return adv
        return (adv - adv.mean()) / (adv.std() + 1e-8)

    def policy_loss(self, ratio: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """The clipped surrogate (with dual clip: at most -c*A for negative advantages), to minimise."""
        spec = self.spec
        surrogate = torch.min(adv * ratio, adv * ratio.clamp(1.0 - spec.clip_ratio, 1.0 + spec.clip_ratio))
        if spec.dual_clip is not None:
            surrogate = torch.where(adv < 0, torch.max(surrogate, spec.dual_clip * adv), surrogate)
        return -surrogate.mean()

    def _update(self, out: torch.Tensor, v: torch.Tensor, action: torch.Tensor, mb: dict[str, torch.Tensor]) -> dict[str, float] | None:
        """One gradient step on a minibatch (None: skipped, non-finite); tensors share leading dims."""
        spec, m = self.spec, self.module
        logp, entropy = m.log_prob_entropy(out, action)
        log_ratio = logp - mb["old_logp"]
        ratio = log_ratio.exp()
        adv = self.normalized_advantages(mb["adv"])
        policy_loss = self.policy_loss(ratio, adv)

        ret = mb["ret"]
        if spec.value_clip is not None:
            old_v = mb["old_value"]
            v_clipped = old_v + (v - old_v).clamp(-spec.value_clip, spec.value_clip)
            value_loss = 0.5 * torch.max((v - ret).square(), (v_clipped - ret).square()).mean()
        else:
            value_loss = 0.5 * (v - ret).square().mean()
        entropy_mean = entropy.mean()
        loss = policy_loss - spec.entropy_coef * entropy_mean + spec.value_coef * value_loss
        grad_norm = self._optimize(loss)
        if grad_norm is None:  # non-finite loss or gradient: skipped, parameters kept
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
            "grad_norm": grad_norm,
        }
