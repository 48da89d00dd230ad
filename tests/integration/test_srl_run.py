"""`srl run` end to end with real worker processes: the examples, supervision, bad input."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from run_helpers import REPO, SrlRun, experiment_file

pytestmark = pytest.mark.integration

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_with_a_tiny_budget(tmp_path: Path, example: Path) -> None:
    path = experiment_file(tmp_path, example, stop={"trainSteps": 2, "wallSeconds": 240, "targetMeanReturn": None, "envFrames": None})
    run = SrlRun(tmp_path, path)
    summary = run.wait(timeout=300)
    assert summary["stop_reason"] == "train_steps", f"{summary}\n{run.log()}"
    assert summary["env_frames"] > 0 and summary["policy_version"] >= 2, summary
    assert (run.run_dir / "metrics.csv").read_text().count("\n") >= 2
    assert any((run.run_dir / "tensorboard").iterdir()), "no TensorBoard event file"


def test_killed_actor_and_trainer_are_restarted_and_the_run_finishes(tmp_path: Path) -> None:
    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        actors={"replicas": 2, "envsPerSlot": 8},
        trainers={"checkpointEvery": 5},
        stop={"trainSteps": 60, "wallSeconds": 400, "targetMeanReturn": None},
    )
    run = SrlRun(tmp_path, path)
    try:
        state = run.wait_for(lambda s: s["train_steps"] >= 10 and "actor/0" in s["pids"], 240, "10 train steps")
        os.kill(state["pids"]["actor/0"], signal.SIGKILL)
        state = run.wait_for(lambda s: s["train_steps"] >= 15 and "trainer/0" in s["pids"], 240, "15 train steps")
        killed_at = state["train_steps"]
        os.kill(state["pids"]["trainer/0"], signal.SIGKILL)
        summary = run.wait(timeout=400)
    finally:
        run.stop()
    log = run.log(tail=None)
    assert summary["stop_reason"] == "train_steps", f"{summary}\n{log}"
    assert "actor[0] exited with code -9; restarting" in log, log
    assert "trainer[0] exited with code -9; restarting" in log, log
    # The trainer resumed from its checkpoint (every 5 steps), not from scratch.
    assert summary["train_steps"] >= 60 and summary["policy_version"] > killed_at, summary


def test_malformed_frames_to_policy_worker_and_trainer_are_dropped_and_counted(tmp_path: Path) -> None:
    import json

    import zmq

    from srl_runtime.name_records import keys
    from srl_runtime.name_records.directory import DirectoryNameRecords

    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        policyWorkers={"replicas": 1, "batchSize": 64},
        streams={"inference": "zmq", "sample": "zmq"},
        stop={"trainSteps": 100000, "wallSeconds": 400, "targetMeanReturn": None},
    )
    run = SrlRun(tmp_path, path)
    count = 10_000
    try:
        state = run.wait_for(lambda s: s["train_steps"] >= 3, 240, "3 train steps")
        nr = DirectoryNameRecords(run.run_dir / "name_records")
        root = keys.experiment_root("cartpole")
        inference = nr.get(keys.inference_stream(root, 0))
        sample = nr.get(keys.sample_stream(root, 0))
        ctx = zmq.Context()
        dealer, push = ctx.socket(zmq.DEALER), ctx.socket(zmq.PUSH)
        dealer.connect(inference)
        push.connect(sample)
        garbage = [
            [b"\x00" * 7],
            [b"SRLW\x01{not json"],
            [b"SRLW\x01" + json.dumps({"k": "x", "m": {}, "a": [{"n": "obs", "d": "<f4", "s": [10**9]}]}).encode(), b"123"],
            [os.urandom(64), os.urandom(3)],
        ]
        for i in range(count):
            dealer.send_multipart(garbage[i % len(garbage)])
            push.send_multipart(garbage[(i + 1) % len(garbage)])

        def counted(s: dict) -> bool:
            progress = [json.loads(v) for v in nr.get_subtree(keys.progress_root(root))]
            dropped = {p["role"]: p.get("dropped", 0) for p in progress}
            return dropped.get("policy", 0) >= count and dropped.get("trainer", 0) >= count

        after = run.wait_for(counted, 240, f"{count} dropped messages on the policy worker and the trainer")
        later = run.wait_for(lambda s: s["train_steps"] > after["train_steps"] + 3, 240, "training to go on")
        assert later["pids"].get("policy/0") == state["pids"].get("policy/0"), "the policy worker was restarted"
        assert later["pids"].get("trainer/0") == state["pids"].get("trainer/0"), "the trainer was restarted"
        dealer.close(0)
        push.close(0)
        ctx.term()
    finally:
        run.stop()


def test_ctrl_c_leaves_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        trainers={"checkpointEvery": 1000},  # only the exit checkpoint can make resume work
        stop={"trainSteps": 40, "wallSeconds": 300, "targetMeanReturn": None},
    )
    first = SrlRun(tmp_path, path)
    try:
        first.wait_for(lambda s: s["train_steps"] >= 10, 240, "10 train steps")
        os.killpg(first.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        summary = first.wait(timeout=120)
    finally:
        first.stop()
    assert summary["stop_reason"] == "interrupted" and first.proc.returncode == 130, f"{summary}\n{first.log()}"
    interrupted_at = summary["train_steps"]
    tags = (first.run_dir / "params" / "tags")
    assert (tags / "checkpoint").exists(), f"no checkpoint tag after Ctrl-C: {sorted(p.name for p in tags.iterdir())}"

    rows_before = (first.run_dir / "metrics.csv").read_text().count("\n")
    (tmp_path / "second").mkdir()
    second = SrlRun(tmp_path / "second", path, "--resume", "--run-dir", str(first.run_dir))
    try:
        resumed = second.wait(timeout=300)
    finally:
        second.stop()
    assert resumed["stop_reason"] == "train_steps", f"{resumed}\n{second.log()}"
    # Train steps continue from the checkpoint; frames and wall time add to the first run's.
    import csv

    rows = list(csv.DictReader((first.run_dir / "metrics.csv").open()))[rows_before - 1 :]
    steps_seen = [int(r["train_steps"]) for r in rows if int(r["train_steps"]) > 0]
    assert steps_seen and min(steps_seen) >= interrupted_at, f"resumed run restarted training: {steps_seen[:5]}"
    assert resumed["env_frames"] > summary["env_frames"], (summary, resumed)
    assert resumed["train_steps"] >= 40 and resumed["wall_seconds"] > summary["wall_seconds"], (summary, resumed)
