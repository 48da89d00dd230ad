"""`srl run` end to end with real worker processes: the examples, supervision, bad input."""

from __future__ import annotations

import os
import signal
import time
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


# --------------------------------------------------------------------------- bad messages (issue 9, item 1)

WRONG_PER_RECEIVER = int(os.environ.get("SRL_TEST_WRONG_MESSAGES", 20_000))  # the acceptance number


def _wire_garbage() -> list[list[bytes]]:
    """Messages that break the wire format itself (the receivers' first line of defence)."""
    import json

    from srl_runtime.streams import wire

    specs = json.dumps([{"n": "obs", "d": "<f4", "s": [10**9]}]).encode()  # specs of the wrong shape
    return [
        [b"\x00" * 7],
        [wire.PREFIX + b"{not json"],
        [wire.PREFIX + wire.SPECS_LEN.pack(len(specs)) + specs + b'{"k": "x", "m": {}}', b"123"],
        [os.urandom(64), os.urandom(3)],
    ]


def _wrong(kind: str, cases: list, index: int, rid: int | None = None) -> list:
    """The index-th wrong message for a receiver (request id `rid`, default index): content errors and
    NaN/inf (most), wire garbage (some)."""
    from srl_runtime.streams import wire

    garbage = _wire_garbage()
    i = index % (len(cases) + len(garbage))
    rid = index if rid is None else rid
    if i < len(cases):
        return wire.encode(kind, {"id": rid} if kind.startswith("infer") else {"actor": 0}, cases[i][1])
    return garbage[i - len(cases)]


class _ReplyInjector:
    """A man in the middle registered as policy worker 99: it forwards the actor's requests to policy
    worker 0 and, before relaying each answer, sends the actor wrong replies carrying that request's
    id (so each is checked against a pending request), until `total` were sent."""

    def __init__(self, ctx, nr, root: str, target: str, total: int) -> None:  # noqa: ANN001
        import threading

        import zmq

        from srl_runtime.name_records import keys

        self.front = ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.front.setsockopt(zmq.SNDHWM, 0)
        port = self.front.bind_to_random_port("tcp://127.0.0.1")
        self.back = ctx.socket(zmq.DEALER)
        self.back.connect(target)
        self.total, self.sent, self._clients = total, 0, {}
        self.error: BaseException | None = None  # what stopped the loop, if anything did
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        nr.add(keys.inference_stream(root, 99), f"tcp://127.0.0.1:{port}", keepalive_ttl=5.0)

    def _loop(self) -> None:
        try:
            self._relay()
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err

    def _send(self, frames: list) -> None:
        import time

        import zmq

        for _ in range(1000):  # the actor's queue may be full for a moment: wait, never drop silently
            try:
                self.front.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                time.sleep(0.01)
        raise TimeoutError("the actor stopped reading replies")

    def _relay(self) -> None:
        import bad_messages
        import zmq

        from srl_runtime.streams import wire

        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        while not self._stop.is_set():
            events = dict(poller.poll(100))
            if self.front in events:
                ident, *msg = self.front.recv_multipart()
                _, meta, arrays = wire.decode(msg)
                cases = bad_messages.bad_replies(len(arrays["obs"]))
                for _ in range(min(10, self.total - self.sent)):
                    self._send([ident, *_wrong("infer_rep", cases, self.sent, meta["id"])])
                    self.sent += 1
                self._clients[meta["id"]] = ident
                self.back.send_multipart(msg)
            if self.back in events:
                frames = self.back.recv_multipart()
                _, meta, _ = wire.decode(frames)
                ident = self._clients.pop(meta["id"], None)
                if ident is not None:
                    self._send([ident, *frames])

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.front.close(0)
        self.back.close(0)


def test_twenty_thousand_wrong_messages_per_receiver_and_cartpole_is_still_solved(tmp_path: Path) -> None:
    """Policy worker (requests), trainer (samples) and actor (replies) each get 20,000 well-formed-but-
    wrong messages (every content error, NaN/inf payloads, some wire garbage): no worker restarts,
    every message is counted, and the run still reaches a mean return of 475."""
    import json

    import bad_messages
    import zmq

    from srl_runtime.name_records import keys
    from srl_runtime.name_records.directory import DirectoryNameRecords

    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        policyWorkers={"replicas": 1, "batchSize": 64},
        streams={"inference": "zmq", "sample": "zmq"},
        # No target stop: the run must not end before every message arrived; 475 is checked on the way.
        stop={"trainSteps": 100_000, "wallSeconds": 900, "targetMeanReturn": None},
    )
    run = SrlRun(tmp_path, path)
    ctx = zmq.Context()
    injector = None
    sockets = []
    try:
        state = run.wait_for(lambda s: s["train_steps"] >= 3, 240, "3 train steps")
        nr = DirectoryNameRecords(run.run_dir / "name_records")
        root = keys.experiment_root("cartpole")
        injector = _ReplyInjector(ctx, nr, root, nr.get(keys.inference_stream(root, 0)), WRONG_PER_RECEIVER)
        dealer, push = ctx.socket(zmq.DEALER), ctx.socket(zmq.PUSH)
        sockets = [dealer, push]
        for sock in sockets:
            sock.setsockopt(zmq.SNDTIMEO, 60_000)
        dealer.connect(nr.get(keys.inference_stream(root, 0)))
        push.connect(nr.get(keys.sample_stream(root, 0)))
        requests = bad_messages.bad_requests(16)
        samples = bad_messages.bad_samples(65, 16)  # sampleSteps 64 + bootstrapSteps 1, envsPerSlot 16
        for i in range(WRONG_PER_RECEIVER):
            dealer.send_multipart(_wrong("infer_req", requests, i), copy=False)
            push.send_multipart(_wrong("sample", samples, i), copy=False)

        def dropped() -> dict[str, int]:
            progress = [json.loads(v) for v in nr.get_subtree(keys.progress_root(root))]
            return {p["role"]: p.get("dropped", 0) for p in progress}

        def counted(_: dict) -> bool:
            return injector.sent == WRONG_PER_RECEIVER and all(
                dropped().get(role, 0) >= WRONG_PER_RECEIVER for role in ("policy", "trainer", "actor")
            )

        try:
            run.wait_for(counted, 600, f"{WRONG_PER_RECEIVER} dropped messages on the policy worker, trainer and actor")
        except AssertionError as err:
            raise AssertionError(f"dropped {dropped()}, injected {injector.sent} ({injector.error!r})\n{err}") from None
        assert dropped() == {"policy": WRONG_PER_RECEIVER, "trainer": WRONG_PER_RECEIVER, "actor": WRONG_PER_RECEIVER}
        final = run.wait_for(lambda s: (s["mean_return"] or 0) >= 475, 600, "a mean return of 475")
        os.killpg(run.proc.pid, signal.SIGINT)  # a clean stop, as Ctrl-C
        summary = run.wait(timeout=120)
    finally:
        if injector is not None:
            injector.close()
        for sock in sockets:
            sock.close(0)
        ctx.term()
        run.stop()
    log = run.log(tail=None)
    assert summary["stop_reason"] == "interrupted" and summary["mean_return"] >= 475, f"{summary}\n{run.log()}"
    assert summary["restarts"] == 0 and "restarting" not in log, log
    for role in ("policy/0", "trainer/0", "actor/0"):
        assert final["pids"][role] == state["pids"][role], f"{role} was restarted"
    assert summary["dropped_messages"] == 3 * WRONG_PER_RECEIVER, summary
    reasons = summary["drop_reasons"]
    assert {"wire", "names", "shape", "dtype", "rows", "range", "non_finite"} <= set(reasons), reasons
    assert summary["non_finite_samples"] > 0 and summary["skipped_updates"] == 0, summary


# --------------------------------------------------------------------------- non-finite env data (issue 9, item 2)


def test_one_nan_reward_still_solves_cartpole_and_is_counted(tmp_path: Path) -> None:
    import csv

    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        environment={"id": None, "entryPoint": "bad_envs:NaNRewardCartPole",
                     "kwargs": {"marker": str(tmp_path / "nan-claimed"), "at_step": 300}},
        stop={"targetMeanReturn": 475, "wallSeconds": 900},
    )
    run = SrlRun(tmp_path, path, test_envs=True)
    try:
        summary = run.wait(timeout=960)
    finally:
        run.stop()
    assert (tmp_path / "nan-claimed").exists(), "the environment never returned its NaN"
    assert summary["stop_reason"] == "target_mean_return" and summary["mean_return"] >= 475, f"{summary}\n{run.log()}"
    assert summary["non_finite_env_values"] == 1, summary
    assert 1 <= summary["non_finite_samples"] <= 2 and summary["skipped_updates"] == 0, summary
    rows = list(csv.DictReader((run.run_dir / "metrics.csv").open()))
    assert rows[-1]["non_finite_env_values"] == "1" and int(rows[-1]["non_finite_samples"]) >= 1, rows[-1]
    assert "non-finite reward from env" in run.log(tail=None), "the actor did not say which field and env"


# --------------------------------------------------------------------------- crash loops (issue 9, item 7)


def test_crash_looping_worker_fails_the_run_with_its_last_log_lines(tmp_path: Path) -> None:
    import json

    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        environment={"id": None, "entryPoint": "bad_envs:CrashingEnv"},
        actors={"restartLimit": 2},
        failurePolicy={"backoffSeconds": 0.2, "maxBackoffSeconds": 1.0},
        stop={"trainSteps": 50, "wallSeconds": 600, "targetMeanReturn": None},
    )
    run = SrlRun(tmp_path, path, test_envs=True)
    try:
        summary = run.wait(timeout=600)
    finally:
        run.stop()
    log = run.log(tail=None)
    assert run.proc.returncode == 1, log
    assert summary["stop_reason"] == "failed: actor[0] exited with code 1 after 2 restarts (restartLimit 2)", summary
    assert log.count("worker actor[0] exited with code 1; restarting in") == 2, log
    assert any("CrashingEnv exploded on reset" in line for line in summary["failure"]["log_tail"]), summary
    assert "CrashingEnv exploded on reset" in log.split("last log lines of actor/0")[-1], log
    assert json.loads(json.dumps(summary))["restarts"] == 2


def test_ctrl_c_leaves_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    # The first run stops only by Ctrl-C (however fast it trains); the resumed one by train steps.
    path = experiment_file(
        tmp_path, REPO / "examples/cartpole.yaml",
        trainers={"checkpointEvery": 1000},  # only the exit checkpoint can make resume work
        stop={"trainSteps": 10**9, "wallSeconds": 300, "targetMeanReturn": None},
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
    goal = interrupted_at + 20
    path = experiment_file(
        tmp_path / "second", REPO / "examples/cartpole.yaml",
        trainers={"checkpointEvery": 1000}, stop={"trainSteps": goal, "wallSeconds": 300, "targetMeanReturn": None},
    )
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
    assert resumed["train_steps"] >= goal and resumed["wall_seconds"] > summary["wall_seconds"], (summary, resumed)


@pytest.mark.parametrize(("sig", "reason", "code"), [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143)])
def test_sigint_and_sigterm_stop_a_run_cleanly_even_if_sigint_was_ignored_at_start(
    tmp_path: Path, sig: signal.Signals, reason: str, code: int
) -> None:
    # `cmd &` in a script starts cmd with SIGINT ignored; the launcher's own handlers still stop it.
    # Ctrl-C reaches the terminal's whole process group; SIGTERM (kill, timeout, docker stop) the launcher.
    path = experiment_file(tmp_path, REPO / "examples/cartpole.yaml", stop={"trainSteps": 10**9, "wallSeconds": 300, "targetMeanReturn": None})
    run = SrlRun(tmp_path, path, sigint_ignored=True)
    try:
        run.wait_for(lambda s: s["train_steps"] >= 2, 240, "2 train steps")
        if sig == signal.SIGINT:
            os.killpg(run.proc.pid, sig)
        else:
            run.proc.send_signal(sig)
        summary = run.wait(timeout=120)
    finally:
        run.stop()
    assert summary["stop_reason"] == reason and run.proc.returncode == code, f"{summary}\n{run.log()}"
    assert (run.run_dir / "params" / "tags" / "checkpoint").exists(), run.log()


def _process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def test_workers_exit_when_the_launcher_is_killed(tmp_path: Path) -> None:
    # SIGKILL (or the OOM killer) gives the launcher no chance to stop its workers; they are the fork
    # server's children, so each watches the launcher itself and exits once it is gone.
    path = experiment_file(tmp_path, REPO / "examples/cartpole.yaml", stop={"trainSteps": 10**9, "wallSeconds": 300, "targetMeanReturn": None})
    run = SrlRun(tmp_path, path)
    pgid = run.proc.pid  # started in a session of its own: the whole run is this process group
    try:
        run.wait_for(lambda s: s["train_steps"] >= 2, 240, "2 train steps")
        assert len(_process_group(pgid)) >= 3, _process_group(pgid)  # launcher, fork server, workers
        run.proc.kill()
        run.proc.wait()
        deadline = time.monotonic() + 90
        while (left := _process_group(pgid)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, f"still running 90 s after the launcher was killed: {left}\n{run.log()}"
    finally:
        if _process_group(pgid):
            os.killpg(pgid, signal.SIGKILL)
