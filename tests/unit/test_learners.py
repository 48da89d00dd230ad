"""The learners besides plain PPO: dual clip, PPO with V-trace, IMPALA, PPG; the factory; checkpoints."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_ppo import _collect

from srl_runtime.algorithms import ImpalaLearner, PPGLearner, PPOLearner, make_learner
from srl_runtime.config.experiment import (
    AlgorithmSpec,
    ImpalaSpec,
    PolicySpec,
    PPGSpec,
    PPOSpec,
    RNNSpec,
)
from srl_runtime.policies import Policy

pytestmark = pytest.mark.unit


def _policy(spec: PolicySpec | None = None, env_id: str = "CartPole-v1") -> Policy:
    env = gym.make(env_id)
    return Policy(env.observation_space, env.action_space, spec or PolicySpec())


def test_dual_clip_bounds_the_loss_of_negative_advantages() -> None:
    policy = _policy()
    ratio = torch.tensor([0.5, 1.0, 3.0, 10.0, 10.0], requires_grad=True)
    adv = torch.tensor([-1.0, -1.0, -1.0, -1.0, 2.0])
    plain = PPOLearner(policy, PPOSpec(clip_ratio=0.2))
    dual = PPOLearner(policy, PPOSpec(clip_ratio=0.2, dual_clip=3.0))
    # Per sample (negated): plain PPO's max(-rA, -clip(r)A) grows with r for A < 0; dual clip caps it at -cA.
    per_plain = [float(plain.policy_loss(ratio[i : i + 1], adv[i : i + 1]).detach()) for i in range(5)]
    per_dual = [float(dual.policy_loss(ratio[i : i + 1], adv[i : i + 1]).detach()) for i in range(5)]
    assert per_plain == pytest.approx([0.8, 1.0, 3.0, 10.0, -2.4])
    assert per_dual == pytest.approx([0.8, 1.0, 3.0, 3.0, -2.4])
    loss = dual.policy_loss(ratio[3:4], adv[3:4])
    loss.backward()
    assert ratio.grad is not None and float(ratio.grad[3]) == 0.0  # beyond c the sample stops pushing


def _stale(batch: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """The batch as if a different (older) policy had acted: shifted behaviour log-probabilities."""
    rng = np.random.default_rng(seed)
    out = dict(batch)
    out["logp"] = (batch["logp"] + rng.normal(0.0, 0.5, batch["logp"].shape)).astype(np.float32)
    out["value"] = (batch["value"] + 3.0).astype(np.float32)  # stale values: V-trace must not use them
    return out


def test_ppo_vtrace_uses_the_current_network_not_the_actors_numbers() -> None:
    torch.manual_seed(0)
    policy = _policy()
    batch = _collect("CartPole-v1", policy, 16, 4)
    learner = PPOLearner(policy, PPOSpec(off_policy_correction="vtrace", rho_clip=1.0, c_clip=1.0))
    t = learner.tensors(batch)
    fresh = learner.targets(batch, t, 0, 1)
    stale = learner.targets(_stale(batch), t, 0, 1)
    logp_now, value_now = learner.evaluate(batch, t)
    # The value clip is around the trainer's values; the ratio stays against the acting policy ...
    np.testing.assert_allclose(stale["old_value"], value_now[:-1], atol=1e-6)
    np.testing.assert_allclose(stale["old_logp"], _stale(batch)["logp"][:-1])
    assert not np.allclose(stale["old_logp"], logp_now[:-1], atol=1e-3)
    # ... so the actors' stale values change nothing, their log-probabilities only the importance weights.
    fresh_values = learner.targets({**batch, "value": batch["value"] + 3.0}, t, 0, 1)
    np.testing.assert_allclose(fresh_values["ret"], fresh["ret"], atol=1e-6)
    assert not np.allclose(stale["adv"], fresh["adv"])
    plain = PPOLearner(policy, PPOSpec()).targets(_stale(batch), t, 0, 1)
    assert not np.allclose(plain["ret"], fresh["ret"], atol=1e-3)  # GAE follows the actors' values
    stats = learner.train_step(_stale(batch))
    assert all(np.isfinite(v) for v in stats.values())


def test_ppo_vtrace_with_a_recurrent_policy_and_burn_in() -> None:
    torch.manual_seed(0)
    policy = _policy(PolicySpec(rnn=RNNSpec(hidden_size=16)))
    batch = _stale(_collect("CartPole-v1", policy, 12, 4, burn_in=4))
    learner = PPOLearner(policy, PPOSpec(off_policy_correction="vtrace", minibatches=2, epochs=1))
    t = learner.tensors(batch)
    tg = learner.targets(batch, t, 4, 1)
    assert tg["ret"].shape == (12, 4) and tg["adv"].shape == (12, 4)
    stats = learner.train_step(batch, burn_in=4)
    assert all(np.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("recurrent", [False, True])
def test_impala_step_trains(recurrent: bool) -> None:
    torch.manual_seed(0)
    policy = _policy(PolicySpec(rnn=RNNSpec(hidden_size=16)) if recurrent else None)
    burn_in = 3 if recurrent else 0
    batch = _stale(_collect("CartPole-v1", policy, 16, 4, burn_in=burn_in))
    learner = ImpalaLearner(policy, ImpalaSpec(popart=True))
    before = {k: v.clone() for k, v in policy.get_state().items()}
    stats = learner.train_step(batch, burn_in=burn_in)
    assert {"policy_loss", "value_loss", "entropy", "mean_rho", "clipped_rho_frac", "grad_norm", "lr"} <= set(stats)
    assert all(np.isfinite(v) for v in stats.values())
    assert 0.0 < stats["clipped_rho_frac"] < 1.0
    changed = [k for k, v in policy.get_state().items() if not torch.equal(v, before[k])]
    assert "actor_head.weight" in changed and "critic_head.weight" in changed and "value_norm.mean" in changed
    assert learner.train_steps == 1 and policy.version == 0  # versions are the publisher's, not the learner's


def test_ppg_runs_an_auxiliary_phase_every_n_policy_steps() -> None:
    torch.manual_seed(0)
    policy = _policy()
    learner = make_learner(
        policy, AlgorithmSpec(ppo=PPOSpec(epochs=1, minibatches=2), ppg=PPGSpec(policy_iterations=2, aux_epochs=2, aux_minibatches=4))
    )
    assert isinstance(learner, PPGLearner)
    batches = [_collect("CartPole-v1", policy, 16, 4) for _ in range(2)]
    first = learner.train_step(batches[0])
    assert first["aux_phases"] == 0 and "clone_kl" not in first and len(learner.memory) == 1
    assert learner.extra is not None
    aux_before = learner.extra.weight.detach().clone()
    obs = torch.as_tensor(batches[1]["obs"][:-1].reshape(-1, 4))
    with torch.no_grad():
        out_before = policy.module.step(obs)[0]
    second = learner.train_step(batches[1])
    assert second["aux_phases"] == 1 and learner.memory == []
    assert np.isfinite(second["aux_value_loss"]) and 0.0 <= second["clone_kl"] < 0.1
    assert not torch.equal(learner.extra.weight, aux_before), "the auxiliary value head did not train"
    # The auxiliary head is learner state: the policy (what actors load) has no trace of it ...
    assert not any(k.startswith("extra") for k in policy.get_state())
    with torch.no_grad():
        kl = policy.module.kl(out_before, policy.module.step(obs)[0]).mean()
    assert float(kl) < 0.5  # ... and the policy phase plus cloning kept the policy close
    # ... and it survives a checkpoint.
    other = make_learner(_policy(), AlgorithmSpec(ppg=PPGSpec(policy_iterations=2)))
    other.load_state_dict(learner.state_dict())
    assert other.extra is not None and torch.equal(other.extra.weight, learner.extra.weight)


def test_ppg_gaussian_kl_is_zero_for_identical_policies_and_positive_otherwise() -> None:
    policy = _policy(env_id="Pendulum-v1")
    m = policy.module
    out = torch.randn(5, 1)
    assert torch.allclose(m.kl(out, out, m.log_std.detach()), torch.zeros(5), atol=1e-7)
    assert bool((m.kl(out, out + 0.3, m.log_std.detach() + 0.2) > 0).all())


def test_make_learner_picks_the_block() -> None:
    policy = _policy()
    assert type(make_learner(policy, AlgorithmSpec())) is PPOLearner
    assert type(make_learner(policy, AlgorithmSpec(ppg=PPGSpec()))) is PPGLearner
    assert type(make_learner(policy, AlgorithmSpec(impala=ImpalaSpec()))) is ImpalaLearner
    with pytest.raises(ValueError, match="feed-forward"):
        PPGLearner(_policy(PolicySpec(rnn=RNNSpec(hidden_size=8))), PPOSpec(), PPGSpec())
