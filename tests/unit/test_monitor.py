"""The monitor aggregates progress, survives worker restarts and decides the stop."""

from __future__ import annotations

import json

import pytest

from srl_runtime.config.experiment import StopSpec
from srl_runtime.launcher.monitor import ExperimentMonitor
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords

pytestmark = pytest.mark.unit
ROOT = keys.experiment_root("m")


def _actor(nr: MemoryNameRecords, index: int, pid: int, frames: int, returns: list[tuple[int, float, float]]) -> None:
    """Publish an actor's progress; returns are (episode number, end time, return) as the actor sends them."""
    body = {"role": "actor", "index": index, "pid": pid, "env_frames": frames, "running": True, "recent_returns": returns}
    nr.add(keys.worker_progress(ROOT, "actor", index), json.dumps(body), replace=True)


def test_restarted_actor_does_not_rewind_frames() -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(envFrames=10**9))
    _actor(nr, 0, 11, 1000, [])
    mon.tick()
    _actor(nr, 0, 11, 1500, [])
    mon.tick()
    _actor(nr, 0, 12, 200, [])  # restarted (a new process): its counter starts again
    mon.tick()
    _actor(nr, 0, 12, 100, [])  # an older value read late: ignored
    mon.tick()
    assert mon.summary.env_frames == 1700, mon.summary


def test_target_return_needs_a_full_window_and_stops() -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(targetMeanReturn=100, returnWindow=3))
    _actor(nr, 0, 1, 10, [(0, 1.0, 500.0), (1, 2.0, 500.0)])
    assert mon.tick().stop_reason is None, "two episodes are not a window of three"
    _actor(nr, 1, 2, 10, [(0, 3.0, 50.0), (1, 4.0, 120.0)])
    s = mon.tick()
    # The newest three across actors: 500 (t=2), 50 (t=3), 120 (t=4) -> 223.3
    assert s.stop_reason == "target_mean_return", s
    assert s.mean_return == pytest.approx((500 + 50 + 120) / 3)
    assert nr.get(keys.stop_flag(ROOT)) == "target_mean_return"


def test_episodes_ending_in_the_same_step_of_one_actor_all_count() -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(targetMeanReturn=100, returnWindow=4))
    # Four envs of actor 0 finish in the same step (same end time): four episodes, not one.
    _actor(nr, 0, 1, 10, [(0, 5.0, 10.0), (1, 5.0, 500.0), (2, 5.0, 20.0), (3, 5.0, 30.0)])
    s = mon.tick()
    assert s.mean_return == pytest.approx((10 + 500 + 20 + 30) / 4), s
    assert s.stop_reason == "target_mean_return", "a full window of four episodes with mean 140 >= 100"


def test_stop_flag_set_by_a_worker_ends_the_run_with_its_reason() -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(envFrames=10**9))
    nr.add(keys.stop_flag(ROOT), "failed: non-finite reward from env 3 of actor 0")
    assert mon.tick().stop_reason == "failed: non-finite reward from env 3 of actor 0"


def test_counters_are_summed_over_workers_and_restarts() -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(envFrames=10**9))

    def trainer(pid: int, dropped: int, non_finite: int, skipped: int) -> None:
        body = {"role": "trainer", "index": 0, "pid": pid, "running": True, "dropped": dropped,
                "drop_reasons": {"shape": dropped - non_finite, "non_finite": non_finite},
                "non_finite_samples": non_finite, "skipped_updates": skipped}  # fmt: skip
        nr.add(keys.worker_progress(ROOT, "trainer", 0), json.dumps(body), replace=True)

    trainer(7, 10, 2, 1)
    mon.tick()
    trainer(8, 3, 1, 0)  # restarted: counts from zero again
    s = mon.tick()
    assert (s.dropped_messages, s.non_finite_samples, s.skipped_updates) == (13, 3, 1), s
    assert s.drop_reasons == {"non_finite": 3, "shape": 10}
    public = s.public()
    assert public["non_finite_samples"] == 3 and public["dropped_messages"] == 13 and public["restarts"] == 0
