"""V-trace against the paper's definition, written independently here: the n-step sum of Espeholt et
al. (2018), eq. (1), evaluated forward for every start s, where the implementation runs the backward
recursion. Random trajectories with terminations, truncations, both clips active, lambda < 1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from srl_runtime.algorithms import gae, vtrace

pytestmark = pytest.mark.unit


def reference(log_rho, reward, value, done, truncated, gamma, rho_bar, c_bar, lam, bootstrap):  # noqa: ANN001, ANN201
    """v_s = V(x_s) + sum_{t=s}^{e} gamma^(t-s) (prod_{i=s}^{t-1} c_i) delta_t, e = the episode's or the data's end."""
    L, B = reward.shape
    n = L - 1 if bootstrap else L
    vs = np.zeros((n, B))
    adv = np.zeros((n, B))
    for b in range(B):

        def v_next(t: int, b: int = b) -> float:
            """V(x_t+1) as the episode sees it, in column b."""
            if done[t, b]:
                return float(value[t, b]) if truncated[t, b] else 0.0
            if t + 1 < n or bootstrap:
                return float(value[t + 1, b])
            return 0.0

        rho = [min(rho_bar, math.exp(log_rho[t, b])) for t in range(n)]
        c = [lam * min(c_bar, math.exp(log_rho[t, b])) for t in range(n)]
        delta = [rho[t] * (reward[t, b] + gamma * v_next(t) - value[t, b]) for t in range(n)]
        for s in range(n):
            total, weight = 0.0, 1.0
            for t in range(s, n):
                total += gamma ** (t - s) * weight * delta[t]
                if done[t, b]:
                    break
                weight *= c[t]
            vs[s, b] = value[s, b] + total
        for s in range(n):
            if done[s, b]:
                nxt = v_next(s)
            elif s + 1 < n:
                nxt = vs[s + 1, b]
            else:
                nxt = v_next(s)  # the bootstrap value (or 0 without a bootstrap row)
            adv[s, b] = rho[s] * (reward[s, b] + gamma * nxt - value[s, b])
    return vs, adv


def _trajectory(seed: int, L: int = 24, B: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    done = rng.random((L, B)) < 0.15
    return {
        "log_rho": rng.normal(0.0, 0.8, (L, B)),
        "reward": rng.normal(0.5, 1.0, (L, B)),
        "value": rng.normal(2.0, 1.5, (L, B)),
        "done": done,
        "truncated": done & (rng.random((L, B)) < 0.5),
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("rho_bar", "c_bar", "lam", "bootstrap"),
    [(1.0, 1.0, 1.0, True), (2.0, 0.6, 1.0, True), (1.5, 1.0, 0.9, False), (0.8, 1.2, 0.95, True)],
)
def test_vtrace_matches_the_papers_definition(seed: int, rho_bar: float, c_bar: float, lam: float, bootstrap: bool) -> None:
    tr = _trajectory(seed)
    assert tr["done"].any() and tr["truncated"].any() and (tr["done"] & ~tr["truncated"]).any()
    gamma = 0.97
    want_vs, want_adv = reference(
        tr["log_rho"], tr["reward"], tr["value"], tr["done"], tr["truncated"], gamma, rho_bar, c_bar, lam, bootstrap
    )
    vs, adv = vtrace(
        tr["log_rho"], tr["reward"], tr["value"], tr["done"], gamma, rho_bar, c_bar, lam, tr["truncated"], bootstrap
    )
    np.testing.assert_allclose(vs, want_vs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(adv, want_adv, rtol=0, atol=1e-6)


def test_on_policy_vtrace_targets_are_lambda_returns() -> None:
    """With pi == mu and unit clips V-trace's targets are the lambda-returns GAE computes."""
    tr = _trajectory(11)
    zero = np.zeros_like(tr["log_rho"])
    vs, _ = vtrace(zero, tr["reward"], tr["value"], tr["done"], 0.99, 1.0, 1.0, 0.95, tr["truncated"])
    _, ret = gae(
        tr["reward"].astype(np.float32), tr["value"].astype(np.float32), tr["done"], 0.99, 0.95, tr["truncated"]
    )
    np.testing.assert_allclose(vs, ret, rtol=0, atol=1e-4)  # gae works in float32


def test_clipping_bounds_the_weights() -> None:
    """A huge ratio is cut to rho_bar in the advantage; a tiny one cuts the trace."""
    reward = np.array([[1.0], [1.0], [0.0]])
    value = np.array([[0.0], [0.0], [0.0]])
    done = np.zeros((3, 1), bool)
    big = np.full((3, 1), 5.0)  # ratio e^5
    _, adv = vtrace(big, reward, value, done, 1.0, rho_clip=1.0, c_clip=1.0)
    assert adv[1, 0] == pytest.approx(1.0)  # rho clipped to 1: r + V(next) - V = 1
    tiny = np.full((3, 1), -50.0)
    vs, _ = vtrace(tiny, reward, value, done, 1.0)
    np.testing.assert_allclose(vs[:, 0], [0.0, 0.0], atol=1e-12)  # rho ~ 0: no correction at all
