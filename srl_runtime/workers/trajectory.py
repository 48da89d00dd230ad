"""Preallocated time-major trajectory buffers for one actor ring slot.

An actor writes one row per env step into numpy buffers shaped [L, rows, ...] with
L = burn_in + sample_steps + bootstrap_steps. When full, the buffer is sent as one sample message and
its last burn_in + bootstrap_steps rows are carried to the front, so consecutive pieces overlap exactly
where the trainer needs a bootstrap value or recurrent warm-up.
"""

from __future__ import annotations

import numpy as np


class TrajectoryBuffer:
    """Fixed-length rolling buffer of named arrays: `write` fills row t, `advance` moves on, `full` says
    when to send, `roll` carries the overlap to the front."""

    def __init__(self, length: int, carry: int, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        if not 0 <= carry < length:
            raise ValueError(f"carry {carry} must be in [0, {length})")
        self.length = length
        self.carry = carry
        self.arrays = {name: np.zeros((length, *shape), dtype) for name, (shape, dtype) in specs.items()}
        self.t = 0

    def write(self, name: str, value: np.ndarray) -> None:
        """Set field `name` of the current row."""
        self.arrays[name][self.t] = value

    def advance(self) -> None:
        """Move to the next row."""
        self.t += 1

    @property
    def full(self) -> bool:
        """True when every row is written."""
        return self.t >= self.length

    def roll(self) -> None:
        """Carry the overlap rows to the front after the buffer was sent."""
        if self.carry:
            for arr in self.arrays.values():
                arr[: self.carry] = arr[self.length - self.carry :]
        self.t = self.carry

    def restart(self) -> None:
        """Start the next piece from row 0, carrying nothing (the piece was sent without overlap)."""
        self.t = 0


class EpisodeBuffer:
    """Full-trajectory mode: per row, the steps of the running episode, sent when it ends."""

    def __init__(self, max_length: int, rows: int, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.max_length = max_length
        self.arrays = {
            name: np.zeros((max_length + 1, rows, *shape[1:]), dtype) for name, (shape, dtype) in specs.items()
        }
        self.t = np.zeros(rows, dtype=np.int64)

    def write_row(self, name: str, values: np.ndarray) -> None:
        """Set field `name` at each row's current step."""
        rows = np.arange(values.shape[0])
        self.arrays[name][np.minimum(self.t, self.max_length), rows] = values

    def advance(self) -> None:
        """Every row moves one step."""
        self.t = np.minimum(self.t + 1, self.max_length)

    def take(self, row: int) -> dict[str, np.ndarray]:
        """The finished episode of `row` as [len, 1, ...] arrays; the row restarts."""
        n = int(self.t[row])
        out = {name: np.ascontiguousarray(arr[:n, row : row + 1]) for name, arr in self.arrays.items()}
        self.t[row] = 0
        return out
