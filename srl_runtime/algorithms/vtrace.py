"""V-trace (Espeholt et al. 2018, IMPALA): off-policy value targets and policy-gradient advantages.

Time-major numpy arrays [L, B], the same episode conventions as `gae`: `done[t]` ends the episode
after the action at t, so no trace flows back across it; after a terminated step the next value is
0, after a truncated one V(x_t) stands in for the lost V(x_t+1). With `bootstrap` the last row only
supplies V for the row before it (L' = L - 1); without, the value after the last row is 0.
"""

from __future__ import annotations

import numpy as np


def vtrace(
    log_rho: np.ndarray,
    reward: np.ndarray,
    value: np.ndarray,
    done: np.ndarray,
    discount: float,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
    lam: float = 1.0,
    truncated: np.ndarray | None = None,
    bootstrap: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets v_s and advantages rho_s (r_s + gamma v_s+1 - V(x_s)), both [L', B] float64.

    `log_rho` is log pi(a|x) - log mu(a|x): the target policy's log-probability minus the
    behaviour policy's that chose the action. The targets follow the paper's backward recursion
    v_s - V(x_s) = delta_s + gamma c_s (v_s+1 - V(x_s+1)), with delta_s = rho_s (r_s + gamma
    V(x_s+1) - V(x_s)), rho_s = min(rho_clip, pi/mu) and c_s = lam * min(c_clip, pi/mu).
    """
    n = reward.shape[0] - 1 if bootstrap else reward.shape[0]
    ratio = np.exp(np.asarray(log_rho, np.float64)[:n])
    rho = np.minimum(rho_clip, ratio)
    c = lam * np.minimum(c_clip, ratio)
    r = np.asarray(reward, np.float64)[:n]
    v = np.asarray(value, np.float64)
    ended = np.asarray(done, bool)[:n]
    trunc = (np.asarray(truncated, bool)[:n] & ended) if truncated is not None else np.zeros_like(ended)
    # V(x_t+1) as the episode sees it: 0 after termination, V(x_t) after truncation.
    v_after_end = np.where(trunc, v[:n], 0.0)
    v_next_row = v[1 : n + 1] if bootstrap else np.concatenate([v[1:n], np.zeros_like(v[:1])])
    v_next = np.where(ended, v_after_end, v_next_row)
    delta = rho * (r + discount * v_next - v[:n])

    vs_minus_v = np.zeros_like(delta)
    carry = np.zeros_like(delta[0])  # v_s+1 - V(x_s+1); 0 past the last row (and across episode ends)
    for t in range(n - 1, -1, -1):
        carry = delta[t] + discount * c[t] * np.where(ended[t], 0.0, carry)
        vs_minus_v[t] = carry
    vs = vs_minus_v + v[:n]
    # v_s+1 for the advantage: the next target inside an episode, the end value across its end.
    vs_next_row = np.concatenate([vs[1:], v[n : n + 1] if bootstrap else np.zeros_like(vs[:1])])
    vs_next = np.where(ended, v_after_end, vs_next_row)
    advantage = rho * (r + discount * vs_next - v[:n])
    return vs, advantage
