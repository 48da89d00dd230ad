"""Generalised advantage estimation over time-major numpy arrays."""

from __future__ import annotations

import numpy as np


def gae(
    reward: np.ndarray,
    value: np.ndarray,
    done: np.ndarray,
    discount: float,
    lam: float,
    truncated: np.ndarray | None = None,
    bootstrap: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns [L', B] from reward/value/done [L, B].

    `done[t]` means the episode ended after the action at t, so no trace flows back across it.
    The value after a terminated step is 0. After a truncated step the true next observation is
    gone (the env already reset), so V(s_t) stands in for V(s_t+1): a time limit is not a failure.
    With `bootstrap` the last row only supplies V for the row before it (L' = L - 1); without,
    every row is used and the value after the last row is taken as 0 (L' = L).
    """
    n = reward.shape[0] - 1 if bootstrap else reward.shape[0]
    adv = np.zeros((n, *reward.shape[1:]), dtype=np.float32)
    done_f = done.astype(np.float32)
    not_done = 1.0 - done_f
    trunc_f = (truncated & done).astype(np.float32) if truncated is not None else np.zeros_like(done_f)
    next_value = value[n] if bootstrap else np.zeros_like(value[0])
    last = np.zeros_like(adv[0])
    for t in range(n - 1, -1, -1):
        nd = not_done[t]
        v_next = next_value * nd + value[t] * trunc_f[t]
        delta = reward[t] + discount * v_next - value[t]
        last = delta + discount * lam * nd * last
        adv[t] = last
        next_value = value[t]
    return adv, adv + value[:n]
