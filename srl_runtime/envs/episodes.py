"""Running per-row episode returns and lengths, reported when episodes end."""

from __future__ import annotations

import numpy as np


class EpisodeTracker:
    """Accumulates raw rewards per row; `finish` pops the rows whose episode just ended."""

    def __init__(self, rows: int) -> None:
        self.returns = np.zeros(rows, dtype=np.float64)
        self.lengths = np.zeros(rows, dtype=np.int64)

    def reset(self) -> None:
        """Zero every row (after a full reset)."""
        self.returns[:] = 0.0
        self.lengths[:] = 0

    def add(self, raw_reward: np.ndarray) -> None:
        """Count one step for every row."""
        self.returns += raw_reward
        self.lengths += 1

    def finish(self, ended: np.ndarray) -> tuple[list[float], list[int]]:
        """Return (returns, lengths) of rows where `ended` is set and zero them."""
        if not ended.any():
            return [], []
        idx = np.flatnonzero(ended)
        rets = self.returns[idx].tolist()
        lens = self.lengths[idx].tolist()
        self.returns[idx] = 0.0
        self.lengths[idx] = 0
        return rets, lens
