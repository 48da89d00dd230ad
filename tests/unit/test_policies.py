"""ActorCritic/Policy: shapes, dtypes, heads, recurrent state and state round trips."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from srl_runtime.config.experiment import PolicySpec, RNNSpec
from srl_runtime.policies import Policy

pytestmark = pytest.mark.unit

VEC = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
IMG = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)


def test_discrete_mlp_rollout() -> None:
    p = Policy(VEC, gym.spaces.Discrete(3), PolicySpec())
    assert not p.recurrent and p.rnn_state_size == 0
    assert p.initial_rnn_state(5).shape == (5, 0)
    out = p.rollout(np.random.randn(5, 4).astype(np.float32))
    assert out["action"].shape == (5,) and out["action"].dtype == np.int64
    assert set(np.unique(out["action"])) <= {0, 1, 2}
    for k in ("logp", "value"):
        assert out[k].shape == (5,) and out[k].dtype == np.float32
    assert out["rnn_state"].shape == (5, 0)
    # Head init std 0.01: the initial policy is near uniform.
    np.testing.assert_allclose(out["logp"], np.log(1 / 3), atol=0.05)


def test_box_gaussian_rollout_and_deterministic() -> None:
    p = Policy(VEC, gym.spaces.Box(-2.0, 2.0, (2,), dtype=np.float32), PolicySpec(activation="relu"))
    obs = np.random.randn(7, 4).astype(np.float32)
    out = p.rollout(obs)
    assert out["action"].shape == (7, 2) and out["action"].dtype == np.float32
    det1 = p.rollout(obs, deterministic=True)["action"]
    det2 = p.rollout(obs, deterministic=True)["action"]
    np.testing.assert_array_equal(det1, det2)
    # log-std starts at 0: logp of a sample is that of a unit Gaussian around the mean.
    expected = (-0.5 * (out["action"] - det1) ** 2 - 0.5 * np.log(2 * np.pi)).sum(1)
    np.testing.assert_allclose(out["logp"], expected, rtol=1e-4, atol=1e-4)


def test_shared_and_separate_encoders() -> None:
    sep = Policy(VEC, gym.spaces.Discrete(2), PolicySpec()).module
    shared = Policy(VEC, gym.spaces.Discrete(2), PolicySpec(shared_encoder=True)).module
    assert sep.critic_enc is not None and shared.critic_enc is None


def test_gru_policy_state_flows() -> None:
    p = Policy(VEC, gym.spaces.Discrete(2), PolicySpec(rnn=RNNSpec(hidden_size=16)))
    assert p.recurrent and p.rnn_state_size == 16
    h = p.initial_rnn_state(3)
    assert h.shape == (3, 16) and h.dtype == np.float32 and not h.any()
    obs = np.random.randn(3, 4).astype(np.float32)
    out = p.rollout(obs, h)
    assert out["rnn_state"].shape == (3, 16) and out["rnn_state"].any()
    # The sequence unroll reproduces step-by-step acting, including a reset via `starts`.
    seq = torch.as_tensor(np.random.randn(5, 3, 4).astype(np.float32))
    starts = torch.zeros(5, 3, dtype=torch.bool)
    starts[2, 1] = True
    with torch.no_grad():
        _, v_seq = p.module.unroll(seq, torch.zeros(3, 16), starts)
        hh = torch.zeros(3, 16)
        for t in range(5):
            hh = hh * (~starts[t]).unsqueeze(-1)
            _, v, hh = p.module.step(seq[t], hh)
            torch.testing.assert_close(v, v_seq[t])


def test_cnn_on_atari_shaped_obs() -> None:
    p = Policy(IMG, gym.spaces.Discrete(6), PolicySpec(encoder="cnn", hidden_sizes=[512]))
    assert p.module.shared
    out = p.rollout(np.random.randint(0, 256, (2, 4, 84, 84), dtype=np.uint8))
    assert out["action"].shape == (2,) and out["action"].dtype == np.int64
    assert out["value"].shape == (2,) and out["value"].dtype == np.float32


def test_state_round_trip_with_normalizer() -> None:
    spec = PolicySpec(normalize_observations=True)
    a = Policy(VEC, gym.spaces.Discrete(2), spec)
    a.module.obs_norm.update(torch.randn(100, 4) * 3 + 1)
    state = a.get_state()
    assert "obs_norm.mean" in state and all(t.device.type == "cpu" for t in state.values())
    b = Policy(VEC, gym.spaces.Discrete(2), spec)
    b.load_state(state, version=7)
    assert b.version == 7
    obs = np.random.randn(4, 4).astype(np.float32)
    np.testing.assert_allclose(a.rollout(obs)["value"], b.rollout(obs)["value"], rtol=1e-6)
    # get_state is a copy: later training does not change a saved state.
    with torch.no_grad():
        for param in a.module.parameters():
            param.add_(1.0)
    first = next(k for k in state if k.endswith("weight"))
    assert not torch.equal(a.get_state()[first], state[first])


@pytest.mark.parametrize(
    ("action_space", "spec"),
    [
        (gym.spaces.Discrete(3), PolicySpec()),
        (gym.spaces.Discrete(3), PolicySpec(shared_encoder=True, activation="relu", normalize_observations=True)),
        (gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32), PolicySpec(normalize_observations=True)),
    ],
)
def test_numpy_acting_matches_torch(action_space: gym.Space, spec: PolicySpec) -> None:
    p = Policy(VEC, action_space, spec)
    assert p.numpy_acting
    m = p.module
    with torch.no_grad():  # move weights and normalisers off their init values, in place
        for param in m.parameters():
            param.add_(torch.randn_like(param) * 0.3)
        if m.obs_norm is not None:
            m.obs_norm.update(torch.randn(50, 4) * 2 + 1)
        m.value_norm.update(torch.randn(50) * 5 + 3)
    obs = np.random.randn(6, 4).astype(np.float32)
    out = p.rollout(obs)
    det = p.rollout(obs, deterministic=True)
    with torch.no_grad():
        head, value, _ = m.step(torch.from_numpy(obs))
        logp, _ = m.log_prob_entropy(head, torch.as_tensor(out["action"]))
        expected_value = m.value_norm.denormalize(value)
    np.testing.assert_allclose(out["value"], expected_value.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["logp"], logp.numpy(), rtol=1e-4, atol=1e-4)
    expected_det = head.argmax(-1).numpy() if m.discrete else head.numpy()
    np.testing.assert_allclose(det["action"], expected_det, rtol=1e-5, atol=1e-5)
    assert out["action"].dtype == (np.int64 if m.discrete else np.float32)
