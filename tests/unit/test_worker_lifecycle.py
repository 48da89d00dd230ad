"""The worker lifecycle obeys the name records: the experiment's stop flag ends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srl_runtime.config.load import parse_experiment
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.workers.base import PollResult, Worker, WorkerContext

pytestmark = pytest.mark.unit


class CountingWorker(Worker):
    """Counts polls; one sample each."""

    role = "actor"
    progress_interval = 0.0  # check control on every poll

    def _configure(self) -> None:
        self.configured = True

    def _poll(self) -> PollResult:
        return PollResult(sample_count=1)


def _worker(tmp_path: Path) -> tuple[CountingWorker, MemoryNameRecords, str]:
    exp = parse_experiment(
        {"metadata": {"name": "life"}, "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"envFrames": 10}}}
    )
    nr = MemoryNameRecords()
    w = CountingWorker(WorkerContext(exp, "actor", 0, nr, tmp_path))
    return w, nr, w.ctx.root


def test_stop_through_name_records(tmp_path: Path) -> None:
    w, nr, root = _worker(tmp_path)
    w.start()
    for _ in range(4):
        w.poll_once()
    assert w.stats.samples == 4
    nr.add(keys.stop_flag(root), "env_frames")
    w.poll_once()
    assert w.exiting and w.exit_reason == "stop: env_frames"
    progress = json.loads(nr.get(keys.worker_progress(root, "actor", 0)))
    assert progress["samples"] == 4 and progress["running"] is False, progress


def test_run_returns_when_the_stop_flag_appears(tmp_path: Path) -> None:
    w, nr, root = _worker(tmp_path)
    nr.add(keys.stop_flag(root), "wall_seconds")
    w.run()  # returns instead of polling forever
    assert w.exit_reason == "stop: wall_seconds"
