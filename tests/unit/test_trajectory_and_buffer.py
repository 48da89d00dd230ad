"""Actor trajectory pieces overlap where the trainer needs them; the trainer buffer batches, reuses,
drops stale pieces and re-cuts whole episodes."""

from __future__ import annotations

import numpy as np
import pytest

from srl_runtime.workers.sample_buffer import EpisodeChunker, SampleBuffer
from srl_runtime.workers.trajectory import TrajectoryBuffer

pytestmark = pytest.mark.unit


def _piece(length: int, cols: int, version: int, start: int = 0) -> dict[str, np.ndarray]:
    t = np.arange(start, start + length, dtype=np.float32)[:, None].repeat(cols, 1)
    return {"reward": t, "policy_version": np.full((length, cols), version, np.int64)}


def test_trajectory_buffer_carries_overlap_rows() -> None:
    buf = TrajectoryBuffer(length=5, carry=2, specs={"x": ((3,), np.dtype(np.int64))})
    sent = []
    for step in range(11):
        buf.write("x", np.full(3, step))
        buf.advance()
        if buf.full:
            sent.append(buf.arrays["x"][:, 0].tolist())
            buf.roll()
    # Each piece starts with the previous piece's last two rows (bootstrap/burn-in overlap).
    assert sent == [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7], [6, 7, 8, 9, 10]], sent


def test_buffer_batches_along_batch_axis_and_counts_reuse() -> None:
    buf = SampleBuffer(batch_columns=4, capacity=100, sample_reuse=2, max_staleness=10)
    buf.add(_piece(3, 2, version=1))
    assert not buf.ready()
    buf.add(_piece(3, 2, version=1))
    batch = buf.take_batch()
    assert batch["reward"].shape == (3, 4)
    assert buf.ready(), "pieces used once must stay for their second use"
    buf.take_batch()
    assert buf.columns == 0, f"pieces used sample_reuse times must leave, {buf.columns} columns left"


def test_buffer_drops_stale_and_mismatched_pieces() -> None:
    buf = SampleBuffer(batch_columns=2, capacity=100, sample_reuse=1, max_staleness=2)
    buf.add(_piece(3, 1, version=1))
    buf.add(_piece(3, 1, version=5))
    buf.add(_piece(4, 1, version=5))  # wrong length: dropped, counted
    buf.drop_stale(current_version=5)
    assert (buf.dropped_stale, buf.dropped_shape, buf.columns) == (1, 1, 1)
    buf.add(_piece(3, 2, version=6))
    buf.drop_stale(current_version=9)
    assert (buf.dropped_stale, buf.dropped_stale_columns, buf.columns) == (3, 4, 0), "pieces and their columns"


def test_buffer_copies_what_it_keeps() -> None:
    buf = SampleBuffer(batch_columns=1, capacity=10, sample_reuse=1, max_staleness=10)
    piece = _piece(2, 1, version=0)
    buf.add(piece)
    piece["reward"][:] = -1  # the sender reuses its buffer
    assert buf.take_batch()["reward"].min() >= 0


def test_episode_chunker_recuts_with_overlap() -> None:
    chunker = EpisodeChunker(length=4, carry=1)
    out = chunker.add(_piece(3, 1, 0, start=0)) + chunker.add(_piece(5, 1, 0, start=3))
    rows = [p["reward"][:, 0].tolist() for p in out]
    assert rows == [[0, 1, 2, 3], [3, 4, 5, 6]], rows
