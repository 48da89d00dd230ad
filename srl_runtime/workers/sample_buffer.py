"""The trainer's buffer: trajectories in, training batches [T, B, ...] out.

Batches are built along the batch axis from pieces of equal length. Pieces are reused up to
`sample_reuse` times and dropped when their policy version falls more than `max_staleness` behind.
Whole episodes (full-trajectory mode) are laid end to end and re-cut into pieces of the same
length with the same overlap an actor would send, so one learner serves both modes.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass
class Piece:
    """One trajectory piece [L, columns, ...] with how often it was trained on."""

    arrays: Arrays
    version: int
    uses: int = 0

    @property
    def columns(self) -> int:
        return int(self.arrays["reward"].shape[1])


class SampleBuffer:
    """FIFO of pieces with reuse and staleness bounds."""

    def __init__(self, batch_columns: int, capacity: int, sample_reuse: int, max_staleness: int) -> None:
        self.batch_columns = batch_columns
        self.capacity = capacity
        self.sample_reuse = sample_reuse
        self.max_staleness = max_staleness
        self.pieces: collections.deque[Piece] = collections.deque()
        self.dropped_stale = 0
        self.dropped_stale_columns = 0  # trajectory columns in those pieces
        self.dropped_overflow = 0
        self.dropped_shape = 0
        self._length: int | None = None

    def add(self, arrays: Arrays) -> None:
        """Take ownership of a piece (copied: stream buffers may be reused by the sender)."""
        length = int(arrays["reward"].shape[0])
        if self._length is None:
            self._length = length
        elif length != self._length:
            self.dropped_shape += 1
            return
        version = int(arrays["policy_version"].min())
        self.pieces.append(Piece({k: np.array(v, copy=True) for k, v in arrays.items()}, version))
        while self.columns > self.capacity and len(self.pieces) > 1:
            self.pieces.popleft()
            self.dropped_overflow += 1

    def drop_stale(self, current_version: int) -> None:
        """Forget pieces more than max_staleness versions behind."""
        keep = collections.deque(p for p in self.pieces if current_version - p.version <= self.max_staleness)
        self.dropped_stale += len(self.pieces) - len(keep)
        self.dropped_stale_columns += sum(p.columns for p in self.pieces) - sum(p.columns for p in keep)
        self.pieces = keep

    @property
    def columns(self) -> int:
        """Columns available for the next batch."""
        return sum(p.columns for p in self.pieces)

    def ready(self) -> bool:
        """True when a full batch can be built."""
        return self.columns >= self.batch_columns

    def take_batch(self) -> Arrays:
        """Concatenate the oldest pieces along the batch axis; count their use."""
        chosen: list[Piece] = []
        cols = 0
        for piece in self.pieces:
            chosen.append(piece)
            cols += piece.columns
            if cols >= self.batch_columns:
                break
        batch = {k: np.concatenate([p.arrays[k] for p in chosen], axis=1) for k in chosen[0].arrays}
        for piece in chosen:
            piece.uses += 1
        self.pieces = collections.deque(p for p in self.pieces if p.uses < self.sample_reuse)
        if self.sample_reuse > 1:
            # Rotate reused pieces to the back so fresh data is trained on first.
            used = [p for p in self.pieces if p.uses > 0]
            fresh = [p for p in self.pieces if p.uses == 0]
            self.pieces = collections.deque(fresh + used)
        return batch


class EpisodeChunker:
    """Re-cuts whole episodes [len, 1, ...] into pieces [length, 1, ...] overlapping by `carry` rows."""

    def __init__(self, length: int, carry: int) -> None:
        self.length = length
        self.carry = carry
        self._pending: list[Arrays] = []
        self._rows = 0

    def add(self, episode: Arrays) -> list[Arrays]:
        """Append an episode; returns the pieces that became complete."""
        self._pending.append(episode)
        self._rows += int(episode["reward"].shape[0])
        out: list[Arrays] = []
        if self._rows < self.length:
            return out
        joined = {k: np.concatenate([e[k] for e in self._pending], axis=0) for k in self._pending[0]}
        start = 0
        total = self._rows
        while total - start >= self.length:
            out.append({k: v[start : start + self.length] for k, v in joined.items()})
            start += self.length - self.carry
        rest = {k: v[start:] for k, v in joined.items()}
        self._pending = [rest]
        self._rows = total - start
        return out
