"""PPOLearner: GAE maths, batch layouts (Box, GRU with burn-in), schedule and checkpoints."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from srl_runtime.algorithms import PPOLearner, gae
from srl_runtime.config.experiment import EnvironmentSpec, PolicySpec, PPOSpec, RNNSpec
from srl_runtime.envs import make_env_batch
from srl_runtime.policies import Policy

pytestmark = pytest.mark.unit

STATS = {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm", "lr", "explained_variance"}


def test_gae_by_hand() -> None:
    r = np.array([[1.0], [2.0], [3.0], [0.0]], np.float32)
    v = np.array([[0.5], [0.5], [0.5], [10.0]], np.float32)
    d = np.array([[False], [True], [False], [False]])
    g, lam = 0.9, 0.5
    adv, ret = gae(r, v, d, g, lam)
    d2 = 3 + g * 10 - 0.5
    d1 = 2 - 0.5  # terminal: no bootstrap
    d0 = 1 + g * 0.5 - 0.5
    np.testing.assert_allclose(adv[:, 0], [d0 + g * lam * d1, d1, d2], rtol=1e-6)
    np.testing.assert_allclose(ret, adv + v[:3], rtol=1e-6)
    # Truncated: V(s_t) stands in for the lost next observation.
    adv_t, _ = gae(r, v, d, g, lam, truncated=d)
    assert math.isclose(adv_t[1, 0], 2 + g * 0.5 - 0.5, rel_tol=1e-6)
    # No bootstrap row: every row is used, value after the end is 0.
    adv_n, _ = gae(r, v, d, g, lam, bootstrap=False)
    assert adv_n.shape == (4, 1) and math.isclose(adv_n[3, 0], -10.0)


def _collect(env_id: str, policy: Policy, rows_t: int, envs: int, burn_in: int = 0) -> dict[str, np.ndarray]:
    """A [burn_in + T + 1, B] batch in the actor layout."""
    batch_env = make_env_batch(EnvironmentSpec(id=env_id), envs, seed=0)
    obs = batch_env.reset()
    h = policy.initial_rnn_state(envs)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "action", "logp", "value", "reward", "done", "truncated", "rnn_state")}
    for _ in range(burn_in + rows_t + 1):
        out = policy.rollout(obs, h)
        s = batch_env.step(out["action"])
        for k, x in (("obs", obs), ("action", out["action"]), ("logp", out["logp"]), ("value", out["value"]), ("rnn_state", h)):
            cols[k].append(x)
        cols["reward"].append(s.reward)
        cols["done"].append(s.terminated | s.truncated)
        cols["truncated"].append(s.truncated)
        h = np.where((s.terminated | s.truncated)[:, None], 0.0, out["rnn_state"]).astype(np.float32)
        obs = s.obs
    batch_env.close()
    batch = {k: np.stack(v) for k, v in cols.items()}
    batch["policy_version"] = np.zeros(batch["reward"].shape, np.int64)
    if not policy.recurrent:
        del batch["rnn_state"]
    return batch


def test_box_actions_train() -> None:
    env = gym.make("Pendulum-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec(normalize_observations=True))
    learner = PPOLearner(policy, PPOSpec(normalize_returns=True, minibatches=2, epochs=2))
    batch = _collect("Pendulum-v1", policy, 16, 4)
    assert batch["action"].shape == (17, 4, 1)
    before = {k: v.clone() for k, v in policy.get_state().items()}
    for _ in range(3):
        stats = learner.train_step(batch)
    assert set(stats) == STATS and all(np.isfinite(v) for v in stats.values())
    after = policy.get_state()
    assert not torch.equal(before["log_std"], after["log_std"])
    assert after["value_norm.count"] > before["value_norm.count"]
    assert learner.train_steps == 3 and policy.version == 0  # versions are the publisher's, not the learner's


def test_gru_trains_with_burn_in() -> None:
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec(rnn=RNNSpec(hidden_size=32)))
    learner = PPOLearner(policy, PPOSpec(minibatches=2, epochs=1))
    batch = _collect("CartPole-v1", policy, 16, 4, burn_in=4)
    assert batch["rnn_state"].shape == (21, 4, 32)
    stats = learner.train_step(batch, burn_in=4)
    assert set(stats) == STATS and all(np.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError):
        learner.train_step(batch, burn_in=20)


def test_linear_lr_and_state_dict_round_trip() -> None:
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    spec = PPOSpec(lr_schedule="linear", learning_rate=1e-3, value_clip=None, max_grad_norm=None)
    learner = PPOLearner(policy, spec, total_train_steps=4)
    batch = _collect("CartPole-v1", policy, 8, 4)
    lrs = [learner.train_step(batch)["lr"] for _ in range(2)]
    np.testing.assert_allclose(lrs, [1e-3, 7.5e-4])
    saved = learner.state_dict()
    other = PPOLearner(Policy(env.observation_space, env.action_space, PolicySpec()), spec, total_train_steps=4)
    other.load_state_dict(saved)
    assert other.train_steps == 2 and math.isclose(other.current_lr(), 5e-4)
    assert other.optimizer.state_dict()["state"].keys() == saved["optimizer"]["state"].keys()


@pytest.mark.parametrize("max_grad_norm", [0.5, None])
def test_update_with_non_finite_loss_is_skipped_and_parameters_are_kept(max_grad_norm: float | None) -> None:
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    learner = PPOLearner(policy, PPOSpec(minibatches=2, epochs=2, max_grad_norm=max_grad_norm))
    batch = _collect("CartPole-v1", policy, 8, 4)
    # Finite inputs whose ratio overflows: exp(logp - (-1e30)) = inf, so every loss is non-finite.
    batch["logp"] = np.full_like(batch["logp"], -1e30)
    before = {k: v.clone() for k, v in policy.get_state().items()}
    opt_before = learner.optimizer.state_dict()["state"]
    learner.train_step(batch)
    after = policy.get_state()
    assert all(torch.equal(before[k], after[k]) for k in before), "a non-finite update changed the parameters"
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert learner.skipped_updates == 4 and learner.optimizer.state_dict()["state"] == opt_before
    # A sane batch afterwards trains normally.
    stats = learner.train_step(_collect("CartPole-v1", policy, 8, 4))
    assert learner.skipped_updates == 4 and all(np.isfinite(v) for k, v in stats.items() if k != "explained_variance")
    assert not all(torch.equal(after[k], policy.get_state()[k]) for k in after)
