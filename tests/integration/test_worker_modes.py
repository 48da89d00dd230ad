"""Every worker mode, in serial mode (all workers in this process, same code and streams):
recurrent policy with burn-in behind a policy worker, evaluation, full-trajectory samples,
a user's multi-agent environment, a continuous-action environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from srl_runtime.config.load import parse_experiment
from srl_runtime.launcher.serial import run_serial

pytestmark = pytest.mark.integration


def _experiment(name: str, **spec: Any) -> Any:
    doc = {
        "apiVersion": "srl.dev/v1alpha1",
        "kind": "RLExperiment",
        "metadata": {"name": name},
        "spec": {
            "environment": {"id": "CartPole-v1"},
            "actors": {"replicas": 1, "ringSize": 2, "envsPerSlot": 4, "sampleSteps": 16},
            "trainers": {"batchSize": 8},
            "stop": {"trainSteps": 4, "wallSeconds": 120},
            **spec,
        },
    }
    return parse_experiment(doc)


def _assert_trained(summary: Any) -> None:
    assert summary.stop_reason == "train_steps", summary
    assert summary.train_steps >= 4 and summary.env_frames > 0 and summary.policy_version >= 4, summary


def test_recurrent_policy_with_burn_in_behind_a_policy_worker_and_evaluation(tmp_path: Path) -> None:
    exp = _experiment(
        "gru",
        policy={"rnn": {"hiddenSize": 32}},
        actors={"replicas": 2, "ringSize": 2, "envsPerSlot": 4, "sampleSteps": 16, "burnIn": 4, "inferenceSplits": 2},
        policyWorkers={"replicas": 1, "batchSize": 32},
        evaluation={"enabled": True, "intervalSeconds": 0.5, "episodes": 2},
    )
    summary = run_serial(exp, tmp_path)
    _assert_trained(summary)
    assert summary.episodes > 0, summary


def test_full_trajectory_mode(tmp_path: Path) -> None:
    exp = _experiment("episodes", actors={"envsPerSlot": 8, "sampleSteps": 16, "fullTrajectory": True})
    _assert_trained(run_serial(exp, tmp_path))


def test_user_multi_agent_environment(tmp_path: Path) -> None:
    exp = _experiment("twocarts", environment={"entryPoint": "two_agent_env:TwoCartPoles", "kwargs": {"max_steps": 50}})
    summary = run_serial(exp, tmp_path)
    _assert_trained(summary)
    assert summary.episodes > 0, summary


def test_continuous_actions(tmp_path: Path) -> None:
    exp = _experiment("pendulum", environment={"id": "Pendulum-v1"})
    _assert_trained(run_serial(exp, tmp_path))


def test_serial_actor_skips_slots_whose_answers_have_not_come(tmp_path: Path) -> None:
    """Serial mode: an actor whose requests the policy worker (polled by the same thread) has not
    answered yet returns from its poll instead of waiting for an answer only that thread can give."""
    import threading

    from srl_runtime.name_records.memory import MemoryNameRecords
    from srl_runtime.workers import WorkerContext, make_worker

    exp = _experiment("serialring", policyWorkers={"replicas": 1, "batchSize": 32})
    nr = MemoryNameRecords()
    workers = {
        role: make_worker(WorkerContext(exp, role, 0, nr, tmp_path, blocking_waits=False)) for role in ("policy", "actor")
    }
    for w in workers.values():
        w.start()
    actor, policy = workers["actor"], workers["policy"]
    try:
        polled = threading.Thread(target=actor.poll_once, daemon=True)
        polled.start()
        polled.join(timeout=30)
        assert not polled.is_alive(), "the actor's poll waited for answers no one else could give"
        assert actor.stats.samples == 0, actor.stats
        for _ in range(200):  # the policy worker answers; then the actor steps
            policy.poll_once()
            actor.poll_once()
            if actor.stats.samples:
                break
        assert actor.stats.samples > 0, (actor.stats, policy.stats)
    finally:
        for w in workers.values():
            w.exit("stop")
        nr.close()
