"""EnvBatch construction and the StepBatch contract (same-step auto-reset, raw returns)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from srl_runtime.api.env import EnvBatch, StepBatch
from srl_runtime.config.experiment import AtariSpec, EnvironmentSpec
from srl_runtime.envs import make_env_batch
from srl_runtime.envs.atari import make_atari_serial
from srl_runtime.envs.serial import AgentEnvBatch, SerialGymBatch
from srl_runtime.envs.vector import SameStepCartPoleVectorEnv, VectorEnvBatch

pytestmark = pytest.mark.unit


def _random_steps(batch: EnvBatch, n: int, rng: np.random.Generator) -> list[StepBatch]:
    out = []
    for _ in range(n):
        if isinstance(batch.action_space, gym.spaces.Discrete):
            a = rng.integers(0, batch.action_space.n, batch.rows)
        else:
            a = rng.uniform(-1, 1, (batch.rows, *batch.action_space.shape)).astype(np.float32)
        out.append(batch.step(a))
    return out


def test_cartpole_uses_native_vector_path_with_same_step_reset() -> None:
    with make_env_batch(EnvironmentSpec(id="CartPole-v1"), 16, seed=3) as batch:
        assert isinstance(batch, VectorEnvBatch)
        assert (batch.num_envs, batch.agents_per_env, batch.rows) == (16, 1, 16)
        obs = batch.reset()
        assert obs.shape == (16, 4) and obs.dtype == np.float32
        steps = _random_steps(batch, 300, np.random.default_rng(0))
    ended = 0
    for s in steps:
        assert s.reward.dtype == np.float32 and s.reward.shape == (16,)
        assert s.terminated.dtype == np.bool_ and s.truncated.dtype == np.bool_
        done = s.terminated | s.truncated
        # A finished row already shows the next episode's first observation (reset range +-0.05).
        assert np.all(np.abs(s.obs[done]) <= 0.05)
        assert np.all(s.reward == 1.0)  # never a zero-reward "reset step" (NEXT_STEP mode would give one)
        assert len(s.episode_returns) == int(done.sum()) == len(s.episode_lengths)
        ended += int(done.sum())
        for ret, length in zip(s.episode_returns, s.episode_lengths, strict=True):
            assert ret == length
    assert ended > 100  # random CartPole episodes last ~22 steps


def test_cartpole_vector_matches_single_env_dynamics() -> None:
    venv = SameStepCartPoleVectorEnv(num_envs=3)
    venv.reset(seed=0)
    singles = [gym.make("CartPole-v1").unwrapped for _ in range(3)]
    for i, env in enumerate(singles):
        env.reset(seed=i)
        env.state = venv.state[:, i].astype(np.float64).copy()
    rng = np.random.default_rng(1)
    for _ in range(8):
        a = rng.integers(0, 2, 3)
        obs, _, term, _, _ = venv.step(a)
        for i, env in enumerate(singles):
            o, _, te, _, _ = env.step(int(a[i]))
            if not te:
                np.testing.assert_allclose(obs[i], o, rtol=1e-5, atol=1e-6)
            assert bool(term[i]) == te
        if term.any():
            break


def test_max_episode_steps_override_truncates() -> None:
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        with make_env_batch(EnvironmentSpec(id=env_id, max_episode_steps=7), 2, seed=0) as batch:
            batch.reset()
            steps = _random_steps(batch, 7, np.random.default_rng(0))
        last = steps[-1]
        lengths = [n for s in steps for n in s.episode_lengths]
        assert all(n <= 7 for n in lengths)
        if env_id == "Pendulum-v1":  # never terminates: both rows truncate exactly at 7
            assert last.truncated.all() and not last.terminated.any() and lengths == [7, 7]


def test_pendulum_box_actions_serial_path() -> None:
    with make_env_batch(EnvironmentSpec(id="Pendulum-v1"), 3, seed=0) as batch:
        assert isinstance(batch, SerialGymBatch)
        assert isinstance(batch.action_space, gym.spaces.Box) and batch.action_space.shape == (1,)
        assert batch.reset().shape == (3, 3)
        # Out-of-range actions are clipped to the box, not rejected.
        s = batch.step(np.full((3, 1), 100.0, np.float32))
        assert s.obs.shape == (3, 3) and s.reward.dtype == np.float32


def test_seeding_is_reproducible() -> None:
    def first_obs(seed: int) -> np.ndarray:
        with make_env_batch(EnvironmentSpec(id="CartPole-v1"), 4, seed) as b:
            return b.reset()

    np.testing.assert_array_equal(first_obs(5), first_obs(5))
    assert not np.array_equal(first_obs(5), first_obs(6))


def test_user_multi_agent_environment_entry_point() -> None:
    spec = EnvironmentSpec(entry_point="srl_runtime.envs.examples:MatchingGame", kwargs={"length": 4})
    with make_env_batch(spec, 3, seed=0) as batch:
        assert isinstance(batch, AgentEnvBatch)
        assert (batch.agents_per_env, batch.rows) == (2, 6)
        obs = batch.reset()
        assert obs.shape == (6, 2)
        returns: list[float] = []
        for _ in range(4):
            bits = obs.argmax(1)
            s = batch.step(bits)  # the optimal policy
            obs = s.obs
            returns += s.episode_returns
        assert s.truncated.all()
        assert returns == [4.0] * 6


def test_critic_obs_defaults_to_own_then_other_agents_observations() -> None:
    spec = EnvironmentSpec(entry_point="srl_runtime.envs.examples:MatchingGame", kwargs={"agents": 3, "length": 4})
    with make_env_batch(spec, 2, seed=0) as batch:
        assert batch.critic_obs_space is not None and batch.critic_obs_space.shape == (6,)
        for step in range(2):
            obs = batch.reset() if step == 0 else batch.step(np.zeros(6, np.int64)).obs
            critic = batch.critic_obs()
            assert critic.shape == (6, 6)
            per_env = obs.reshape(2, 3, 2)
            for env in range(2):
                for agent in range(3):
                    others = [per_env[env, k] for k in range(3) if k != agent]
                    np.testing.assert_array_equal(critic[env * 3 + agent], np.concatenate([per_env[env, agent], *others]))


def test_critic_obs_is_the_environments_state_where_it_has_one() -> None:
    spec = EnvironmentSpec(entry_point="srl_runtime.envs.examples:TwoAgentSpread")
    with make_env_batch(spec, 3, seed=0) as batch:
        obs = batch.reset()
        assert obs.shape == (6, 12) and batch.critic_obs_space.shape == (17,)
        critic = batch.critic_obs()
        assert critic.shape == (6, 17)
        np.testing.assert_array_equal(critic[:, :2], obs[:, :2])  # the agent's id
        np.testing.assert_array_equal(critic[:, -5:], obs[:, -5:])  # the landmarks
        own = obs[:, 2:7].argmax(1).reshape(3, 2)
        both = critic[:, 2:12].reshape(6, 2, 5).argmax(2).reshape(3, 2, 2)
        np.testing.assert_array_equal(both[:, 0], own)  # each agent sees both positions
        np.testing.assert_array_equal(both[:, 1], own)


def test_two_agent_spread_rewards_covering_both_landmarks() -> None:
    from srl_runtime.envs.examples import TwoAgentSpread

    env = TwoAgentSpread(cells=5, length=10)
    env.reset(seed=3)
    left, right = env._landmarks
    total = 0.0
    for _ in range(10):
        a = np.sign([left, right] - env._pos) + 1  # each agent to its own landmark
        _, reward, terminated, truncated, _ = env.step(a)
        assert reward[0] == reward[1] and not terminated.any()
        total += float(reward[0])
    assert truncated.all() and total >= 6.0


def test_user_gymnasium_env_entry_point() -> None:
    spec = EnvironmentSpec(entry_point="srl_runtime.envs.examples:CountdownEnv", kwargs={"length": 3})
    with make_env_batch(spec, 2, seed=0) as batch:
        assert isinstance(batch, SerialGymBatch) and batch.rows == 2
        batch.reset()
        steps = [batch.step(np.zeros(2, np.int64)) for _ in range(3)]
    assert steps[-1].terminated.all()
    np.testing.assert_allclose(steps[-1].obs, 1.0)  # already reset
    assert steps[-1].episode_returns == [3.0, 3.0] and steps[-1].episode_lengths == [3, 3]


@pytest.mark.parametrize("path", ["vector", "serial"])
def test_atari_pong_shapes(path: str) -> None:
    pytest.importorskip("ale_py")
    spec = EnvironmentSpec(id="ALE/Pong-v5", atari=AtariSpec())
    if path == "vector":
        batch = make_env_batch(spec, 2, seed=0)
    else:
        batch = make_atari_serial("ALE/Pong-v5", AtariSpec(), 2, 0, {}, None)
    with batch:
        assert batch.observation_space.shape == (4, 84, 84)
        assert batch.action_space == gym.spaces.Discrete(6)
        obs = batch.reset()
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        s = batch.step(np.array([0, 1], np.int64))
        assert s.obs.shape == (2, 4, 84, 84) and s.obs.dtype == np.uint8
        assert s.reward.dtype == np.float32 and s.terminated.shape == (2,)


def test_atari_episodic_life_ends_learning_episode_not_the_game() -> None:
    pytest.importorskip("ale_py")
    spec = EnvironmentSpec(id="ALE/Breakout-v5", atari=AtariSpec(noop_max=0))
    rng = np.random.default_rng(0)
    with make_env_batch(spec, 1, seed=0) as batch:
        batch.reset()
        life_losses = 0
        for _ in range(3000):
            s = batch.step(rng.integers(0, 4, 1))
            if s.terminated[0] and not s.episode_returns:
                life_losses += 1
            if s.episode_returns:
                break
    assert life_losses == 4  # Breakout: 5 lives, the 5th loss is the game over that reports a return
    assert s.terminated[0] and len(s.episode_returns) == 1


def test_stub_env_has_cartpole_spaces_and_fixed_episodes() -> None:
    from srl_runtime.envs.stub import STUB_ENV_ID, StubVectorEnv

    spec = EnvironmentSpec(id=STUB_ENV_ID, max_episode_steps=3)
    with make_env_batch(spec, 5, seed=0) as batch:
        assert isinstance(batch, VectorEnvBatch) and isinstance(batch.venv, StubVectorEnv)
        assert batch.observation_space.shape == (4,) and batch.action_space == gym.spaces.Discrete(2)
        obs = batch.reset()
        assert obs.shape == (5, 4) and obs.dtype == np.float32
        steps = [batch.step(np.zeros(5, np.int64)) for _ in range(7)]
    assert [bool(s.truncated.all()) for s in steps] == [False, False, True, False, False, True, False]
    assert not any(s.terminated.any() for s in steps)
    assert steps[2].episode_returns == [3.0] * 5 and steps[2].episode_lengths == [3] * 5
    single = gym.make(STUB_ENV_ID)  # evaluation builds single envs through the registration
    single.reset(seed=0)
    ends = [single.step(0)[3] for _ in range(200)]
    assert ends.index(True) == 199
