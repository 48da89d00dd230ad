"""Failures and recovery inside one process (issue 9, items 7, 8 and 11): restart back-off, resuming
from an intact checkpoint without reusing version numbers, evaluation obeying the stop flag, and
workers closing their parameter DB."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from srl_runtime.config.load import parse_experiment
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.workers import WorkerContext, make_worker

pytestmark = pytest.mark.unit


def _experiment(**spec: Any) -> Any:
    return parse_experiment({
        "metadata": {"name": "recovery"},
        "spec": {"environment": {"id": "CartPole-v1"}, "actors": {"envsPerSlot": 4, "sampleSteps": 8},
                 "trainers": {"batchSize": 4}, "stop": {"trainSteps": 100}, **spec},
    })  # fmt: skip


def _worker(role: str, tmp_path: Path, nr: MemoryNameRecords, **spec: Any) -> Any:
    w = make_worker(WorkerContext(_experiment(**spec), role, 0, nr, tmp_path))
    w.configure()
    return w


# --------------------------------------------------------------------------- item 7: back-off


def test_restart_backoff_doubles_up_to_the_cap_and_limits_are_per_role() -> None:
    from srl_runtime.workers import restart_limit

    exp = _experiment(failurePolicy={"backoffSeconds": 0.5, "maxBackoffSeconds": 3}, trainers={"restartLimit": 2})
    policy = exp.spec.failure_policy
    assert [policy.backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert policy.backoff(10**6) == 3.0
    assert restart_limit(exp.spec, "trainer") == 2 and restart_limit(exp.spec, "actor") == 10


# --------------------------------------------------------------------------- item 8: resume


def _versions_file(tmp_path: Path, version: int) -> Path:
    return tmp_path / "params" / "versions" / f"{version:012d}.pt"


def _first_run(tmp_path: Path) -> int:
    """A trainer that leaves checkpoints: returns the newest version it stored."""
    nr = MemoryNameRecords()
    t = _worker("trainer", tmp_path, nr)  # fresh: pushes version 1 (a checkpoint)
    t.learner.train_steps = 7
    t._push(checkpoint=True)  # 2
    t._push(checkpoint=False)  # 3
    t.learner.train_steps = 9
    t._push(checkpoint=True)  # 4
    t.exit("stop")  # the exit checkpoint: 5 (train step 9)
    nr.close()
    return 5


def test_resume_skips_an_unreadable_newest_checkpoint_and_never_reuses_versions(tmp_path: Path) -> None:
    newest = _first_run(tmp_path)
    path = _versions_file(tmp_path, newest)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # torn write, disk error...
    nr = MemoryNameRecords()
    t = _worker("trainer", tmp_path, nr)
    try:
        assert t.learner.train_steps == 9, "resumed from the older checkpoint (version 4), not from scratch"
        t._push(checkpoint=False)
        assert t.param_db.latest_version() == newest + 1, "a resumed trainer reused a version number"
        assert t.param_db.get().version == newest + 1
        assert t.param_db.rejected_checkpoints == 1
    finally:
        t.exit("stop")
        nr.close()


def test_resume_fails_loudly_when_no_checkpoint_is_readable(tmp_path: Path) -> None:
    newest = _first_run(tmp_path)
    for v in range(1, newest + 1):
        if _versions_file(tmp_path, v).exists():
            _versions_file(tmp_path, v).write_bytes(b"not a checkpoint")
    from srl_runtime.workers.trainer import ResumeError

    nr = MemoryNameRecords()
    with pytest.raises(ResumeError, match="no readable checkpoint"):
        _worker("trainer", tmp_path, nr)
    nr.close()


def test_previous_checkpoint_survives_garbage_collection(tmp_path: Path) -> None:
    nr = MemoryNameRecords()
    t = _worker("trainer", tmp_path, nr, parameterDb={"keepVersions": 1})
    t._push(checkpoint=True)  # 2
    for _ in range(5):
        t._push(checkpoint=False)
    t._push(checkpoint=True)  # 8
    tags = t.param_db.tags()
    assert tags["checkpoint"] == 8 and tags["checkpoint-previous"] == 2 and 2 in t.param_db.versions()
    t.exit("stop")
    nr.close()


# --------------------------------------------------------------------------- item 11: eval and param DB


def test_evaluation_stops_in_the_middle_of_an_evaluation(tmp_path: Path) -> None:
    nr = MemoryNameRecords()
    steps = 300_000  # one episode of the endless env; an unstoppable evaluation plays all of them
    w = _worker("eval", tmp_path, nr, environment={"entryPoint": "bad_envs:EndlessEnv", "kwargs": {"steps": steps}},
                evaluation={"enabled": True, "episodes": 1, "intervalSeconds": 1})  # fmt: skip
    w.progress_interval = 0.05
    trainer = _worker("trainer", tmp_path, nr, environment={"entryPoint": "bad_envs:EndlessEnv"})  # pushes version 1
    w.start()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(w._poll()), daemon=True)
    thread.start()
    threading.Timer(0.3, lambda: nr.add(keys.stop_flag(w.ctx.root), "wall_seconds")).start()
    thread.join(timeout=120)
    try:
        assert result, "the evaluation ignored the stop flag"
        assert result[0].sample_count < steps, "it played the whole episode"
        assert w.results == [], "an evaluation cut short must not be recorded"
    finally:
        w.exit("stop")
        trainer.exit("stop")
        nr.close()


@pytest.mark.parametrize("role", ["trainer", "policy", "actor", "eval"])
def test_workers_close_their_parameter_db(tmp_path: Path, role: str) -> None:
    nr = MemoryNameRecords()
    trainer = _worker("trainer", tmp_path, nr) if role != "trainer" else None
    extra = {"policyWorkers": {"replicas": 1}} if role == "policy" else {}
    w = _worker(role, tmp_path, nr, evaluation={"enabled": True}, **extra)
    db = w.params.param_db if role == "actor" else w.param_db
    assert db.metadata._conn is not None
    w.exit("stop")
    assert db.metadata._conn is None, f"the {role} left its parameter DB open"
    if trainer is not None:
        trainer.exit("stop")
    nr.close()
