"""Phasic Policy Gradient (Cobbe et al. 2020): PPO policy phases, then an auxiliary phase.

The policy phase is `PPOLearner` on `algorithm.ppo`; each of its batches leaves its observations and
value targets in memory. After `policyIterations` such train steps the auxiliary phase makes
`auxEpochs` passes over that memory, training (1) an auxiliary value head on the policy network's
features towards the stored targets while a behaviour-cloning KL(pi_old || pi) keeps the policy where
it was at the phase's start, and (2) the value network on the same targets; then memory is cleared.
The auxiliary head is learner-only (actors never run it): it lives in the learner state, not the policy.
Feed-forward policies only (the memory is flat rows).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srl_runtime.algorithms.ppo import PPOLearner
from srl_runtime.config.experiment import PPGSpec, PPOSpec
from srl_runtime.policies.policy import Policy


class PPGLearner(PPOLearner):
    """PPO whose every `policy_iterations`-th train step ends with an auxiliary phase."""

    def __init__(self, policy: Policy, ppo: PPOSpec, ppg: PPGSpec, *, total_train_steps: int | None = None) -> None:
        if policy.recurrent:
            raise ValueError("algorithm.ppg: needs a feed-forward policy (policy.rnn unset)")
        aux_head = nn.Linear(policy.module.feature_size, 1)
        nn.init.orthogonal_(aux_head.weight, 1.0)
        nn.init.zeros_(aux_head.bias)
        super().__init__(policy, ppo, total_train_steps=total_train_steps, extra=aux_head)
        self.ppg = ppg
        self.memory: list[dict[str, torch.Tensor]] = []
        self.aux_phases = 0

    def remember(self, t_all: dict[str, torch.Tensor], targets: dict[str, np.ndarray], burn_in: int, end: int) -> None:
        """Keep the loss rows' observations (and critic inputs) with their unnormalised value targets."""
        ret = torch.as_tensor(targets["ret"], device=self.policy.device).reshape(-1)
        entry = {"obs": t_all["obs"][burn_in:end].reshape(ret.shape[0], *self.module.obs_shape).clone(), "ret": ret}
        if "critic_obs" in t_all:
            c = t_all["critic_obs"][burn_in:end]
            entry["critic_obs"] = c.reshape(ret.shape[0], *c.shape[2:]).clone()
        self.memory.append(entry)

    def train_step(self, batch: dict[str, np.ndarray], burn_in: int = 0, bootstrap_steps: int = 1) -> dict[str, float]:
        """A policy-phase PPO step; every `policyIterations` steps followed by the auxiliary phase."""
        stats = super().train_step(batch, burn_in, bootstrap_steps)
        if len(self.memory) >= self.ppg.policy_iterations:
            stats.update(self.auxiliary_phase())
        stats["aux_phases"] = float(self.aux_phases)
        return stats

    def auxiliary_phase(self) -> dict[str, float]:
        """Distil the value into the policy network under a cloning constraint; train the value network."""
        m, ppg = self.module, self.ppg
        obs = torch.cat([e["obs"] for e in self.memory])
        ret = torch.cat([e["ret"] for e in self.memory])
        critic = torch.cat([e["critic_obs"] for e in self.memory]) if "critic_obs" in self.memory[0] else None
        self.memory = []
        n = obs.shape[0]
        with torch.no_grad():
            chunk = 8192
            out_old = torch.cat([m.step(obs[i : i + chunk])[0] if critic is None
                                 else m.step(obs[i : i + chunk], critic_obs=critic[i : i + chunk])[0]
                                 for i in range(0, n, chunk)])  # fmt: skip
            old_log_std = m.log_std.detach().clone() if m.log_std is not None else None
        target = m.value_norm.standardize(ret)
        sums = {"aux_value_loss": 0.0, "clone_kl": 0.0, "aux_phase_value_loss": 0.0}
        steps = 0
        for _ in range(ppg.aux_epochs):
            for idx in torch.randperm(n, device=obs.device).chunk(min(ppg.aux_minibatches, n)):
                out, v, features = m.step_features(obs[idx], None if critic is None else critic[idx])
                aux_v = self.extra(features).squeeze(-1)  # type: ignore[misc]
                aux_loss = 0.5 * (aux_v - target[idx]).square().mean()
                kl = m.kl(out_old[idx], out, old_log_std).mean()
                value_loss = 0.5 * (v - target[idx]).square().mean()
                loss = ppg.aux_value_coef * aux_loss + ppg.clone_coef * kl + self.spec.value_coef * value_loss
                self._optimize(loss)
                steps += 1
                sums["aux_value_loss"] += float(aux_loss.detach())
                sums["clone_kl"] += float(kl.detach())
                sums["aux_phase_value_loss"] += float(value_loss.detach())
        self.aux_phases += 1
        self.policy.refresh()
        return {k: x / max(1, steps) for k, x in sums.items()}
