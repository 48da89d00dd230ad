"""PopArt: the statistics follow the targets and the value head's unnormalised outputs do not move."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from srl_runtime.algorithms import PPOLearner
from srl_runtime.algorithms.popart import PopArt
from srl_runtime.config.experiment import PolicySpec, PPOSpec
from srl_runtime.policies import Policy

pytestmark = pytest.mark.unit


def _values(policy: Policy, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised values two ways: the actors' numpy path and the torch module + denormalisation."""
    fast = policy.rollout(obs)["value"].astype(np.float64)
    with torch.no_grad():
        _, v, _ = policy.module.step(torch.as_tensor(obs))
        slow = policy.module.value_norm.denormalize(v.double()).numpy()
    return fast, slow


@pytest.mark.parametrize("shared", [False, True])
def test_popart_preserves_unnormalised_outputs_across_updates(shared: bool) -> None:
    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec(shared_encoder=shared))
    assert policy.numpy_acting  # the path actors take
    m = policy.module
    popart = PopArt(m.value_norm, m.critic_head, beta=0.3)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(256, 4)).astype(np.float32)
    head_before = m.critic_head.weight.detach().clone()
    # Targets whose scale moves a lot (returns growing while the agent learns, then a shift down).
    for k, (mean, std) in enumerate([(10.0, 3.0), (40.0, 15.0), (80.0, 30.0), (5.0, 50.0), (-20.0, 2.0)]):
        fast_before, slow_before = _values(policy, obs)
        targets = rng.normal(mean, std, 2048)
        popart.update(torch.as_tensor(targets))
        fast_after, slow_after = _values(policy, obs)
        np.testing.assert_allclose(fast_after, fast_before, rtol=0, atol=1e-5, err_msg=f"update {k} (numpy path)")
        np.testing.assert_allclose(slow_after, slow_before, rtol=0, atol=1e-5, err_msg=f"update {k} (torch path)")
        if k == 0:  # the first update takes the batch's moments exactly
            assert float(m.value_norm.mean) == pytest.approx(targets.mean(), rel=1e-9)
            assert float(m.value_norm.var) == pytest.approx(targets.var(), rel=1e-9)
    assert not torch.allclose(m.critic_head.weight, head_before), "the head was never rescaled"
    assert float(m.value_norm.count) == 5.0


def test_popart_steps_are_an_average_then_exponential() -> None:
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    m = policy.module
    popart = PopArt(m.value_norm, m.critic_head, beta=0.25)
    for x in (1.0, 3.0, 5.0, 7.0):  # steps 1, 1/2, 1/3, then beta = 1/4
        popart.update(torch.full((8,), x, dtype=torch.float64))
    assert float(m.value_norm.mean) == pytest.approx(4.0)  # the plain average of 1, 3, 5, 7
    popart.update(torch.full((8,), 12.0, dtype=torch.float64))
    assert float(m.value_norm.mean) == pytest.approx(4.0 + 0.25 * 8.0)


def test_popart_reduce_hook_sees_the_moments() -> None:
    """What a trainer group averages: [mean, mean of squares] of the local targets."""
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    seen: list[torch.Tensor] = []

    def reduce(moments: torch.Tensor) -> torch.Tensor:
        seen.append(moments.clone())
        return torch.tensor([100.0, 100.0**2 + 4.0], dtype=torch.float64)  # what the peers agreed on

    popart = PopArt(policy.module.value_norm, policy.module.critic_head, beta=1e-3, reduce=reduce)
    popart.update(torch.tensor([1.0, 3.0], dtype=torch.float64))
    np.testing.assert_allclose(seen[0].numpy(), [2.0, 5.0])
    assert float(policy.module.value_norm.mean) == pytest.approx(100.0)
    assert float(policy.module.value_norm.var) == pytest.approx(4.0)


def test_ppo_with_popart_learns_in_normalised_units() -> None:
    from test_ppo import _collect

    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    learner = PPOLearner(policy, PPOSpec(popart=True, epochs=1, minibatches=2))
    assert learner.popart is not None
    batch = _collect("CartPole-v1", policy, 32, 4)
    stats = learner.train_step(batch)
    assert np.isfinite(stats["value_loss"])
    assert float(policy.module.value_norm.count) == 1.0 and float(policy.module.value_norm.mean) > 1.0
