"""Every worker on its own "host": network namespaces joined by a bridge, one `srl worker` per host.

1 trainer, 1 policy worker and 3 actors, each a separate `srl worker` process in its own netns,
find each other through Redis name records, stream over ZMQ across the bridge, share a parameter DB
directory (standing in for NFS) and keep version metadata in MongoDB (FerretDB). Redis and FerretDB
listen on the bridge's services address in the root namespace.

Also runnable as a script to measure frames/s against `srl run` of the same experiment:
    python tests/integration/test_multihost.py --measure [--seconds 30]
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netns import Host, NetLab, net_lab, netns_unavailable_reason  # noqa: E402
from run_helpers import REPO  # noqa: E402
from servers import (  # noqa: E402
    FerretDBServer,
    RedisServer,
    ferretdb_server,
    find_ferretdb,
    find_redis_server,
    missing_binary,
    redis_server,
)

pytestmark = pytest.mark.integration

# Host n of the lab runs WORKERS[n].
WORKERS: list[tuple[str, int]] = [("trainer", 0), ("policy", 0), ("actor", 0), ("actor", 1), ("actor", 2)]
RUN_TIMEOUT = 240  # seconds for a run to reach the target (wallSeconds in the experiment is below it)
WALL_CAP = 210
MID_RUN = 15  # train steps before a fault is injected (the target is reached after ~90-300)


def multihost_experiment(path: Path, database: str, **stop: Any) -> Path:
    """CartPole-v1, 3 actors x 8 envs, 1 zmq policy worker, MongoDB metadata; written to `path`."""
    doc = yaml.safe_load((REPO / "examples/cartpole.yaml").read_text())
    spec = doc["spec"]
    doc["metadata"]["name"] = "cartpole-multihost"
    spec["actors"].update({"replicas": 3, "ringSize": 1, "envsPerSlot": 8, "sampleSteps": 32})
    spec["policyWorkers"] = {"replicas": 1, "batchSize": 64, "maxWaitMs": 1.0}
    spec["trainers"].update({"replicas": 1, "batchSize": 16, "checkpointEvery": 10})
    spec["parameterDb"] = {"metadata": "mongodb", "mongodb": {"database": database}}
    spec["stop"] = {"targetMeanReturn": 475, "returnWindow": 20, "wallSeconds": WALL_CAP, **stop}
    path.write_text(yaml.safe_dump(doc))
    return path


class MultiHostRun:
    """The five `srl worker` processes of one experiment, one per lab host, with per-worker logs."""

    def __init__(
        self, workdir: Path, lab: NetLab, experiment: Path, redis_address: str, mongo_uri: str, database: str
    ) -> None:
        self.workdir = workdir
        self.database = database  # the MongoDB database of the experiment's version metadata
        self.lab = lab
        self.experiment = experiment
        self.shared_params = workdir / "shared-params"  # the "NFS" every host mounts
        self.env = {
            "SRL_NAME_RECORDS_REDIS": redis_address,
            "SRL_PARAM_DB_PATH": str(self.shared_params),
            "SRL_MONGO_URI": mongo_uri,
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
        }
        self.procs: dict[tuple[str, int], subprocess.Popen] = {}
        self.hosts: dict[tuple[str, int], Host] = dict(zip(WORKERS, lab.hosts, strict=True))
        self.started = 0.0

    def run_dir(self, role: str, index: int) -> Path:
        """Each host's local disk."""
        return self.workdir / "hosts" / f"{role}-{index}"

    def log_path(self, role: str, index: int) -> Path:
        return self.workdir / "logs" / f"{role}-{index}.log"

    def start_all(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        for role, index in WORKERS:
            self.start(role, index)

    def start(self, role: str, index: int) -> subprocess.Popen:
        """Start (or restart, appending to the same log) one worker on its own host."""
        host = self.hosts[(role, index)]
        argv = [
            sys.executable, "-m", "srl_runtime.cli", "worker", "--role", role, "--index", str(index),
            "--experiment", str(self.experiment), "--host", host.address,
        ]  # fmt: skip
        env = {**self.env, "SRL_RUN_DIR": str(self.run_dir(role, index))}
        proc = self.lab.spawn(host, argv, self.log_path(role, index), env)
        self.procs[(role, index)] = proc
        return proc

    def kill(self, role: str, index: int) -> int:
        """kill -9 one worker (by its PID); returns the PID."""
        proc = self.procs[(role, index)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return proc.pid

    def state(self) -> dict[str, Any]:
        """The experiment monitor's summary (trainer 0's run dir), {} before its first write."""
        try:
            return json.loads((self.run_dir("trainer", 0) / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """Poll the summary until predicate holds; fail with every log's tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state and predicate(state):
                return state
            dead = {k: p.returncode for k, p in self.procs.items() if p.poll() is not None}
            if dead:
                raise AssertionError(f"workers exited while waiting for {what}: {dead}\n{self.tails()}")
            time.sleep(0.5)
        raise AssertionError(f"timed out ({timeout}s) waiting for {what}; state {self.state()}\n{self.tails()}")

    def wait_all(self, timeout: float) -> dict[str, int]:
        """Wait for every worker to exit; returns exit codes by 'role/index'."""
        deadline = time.monotonic() + timeout
        codes = {}
        for (role, index), proc in self.procs.items():
            try:
                codes[f"{role}/{index}"] = proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{role}/{index} still running after {timeout}s; state {self.state()}\n{self.tails()}"
                ) from None
        return codes

    def stop_all(self) -> None:
        """Kill whatever still runs (teardown after a failure), by PID."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def tails(self, lines: int = 25) -> str:
        out = []
        for role, index in WORKERS:
            path = self.log_path(role, index)
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
            out.append(f"--- {role}/{index} ({self.hosts[(role, index)].netns}) ---\n" + "\n".join(text))
        return "\n".join(out)


# ---- fixtures


@pytest.fixture
def lab() -> Iterator[NetLab]:
    """Five hosts on a bridge; skipped (failed under CI) when namespaces cannot be made."""
    reason = netns_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"network namespaces unavailable under CI: {reason}", pytrace=False)
        pytest.skip(f"network namespaces unavailable: {reason}")
    with net_lab(len(WORKERS)) as made:
        yield made


@pytest.fixture
def lab_redis(lab: NetLab) -> Iterator[RedisServer]:
    binary = find_redis_server()
    if binary is None:
        missing_binary("redis-server")
    with redis_server(binary, host=lab.services_address) as server:
        yield server


@pytest.fixture
def lab_mongo(lab: NetLab) -> Iterator[FerretDBServer]:
    binary = find_ferretdb()
    if binary is None:
        missing_binary("ferretdb")
    with ferretdb_server(binary, host=lab.services_address) as server:
        yield server


@pytest.fixture
def run(tmp_path: Path, lab: NetLab, lab_redis: RedisServer, lab_mongo: FerretDBServer) -> Iterator[MultiHostRun]:
    database = f"srl_{tmp_path.name[-20:].replace('-', '_')}"
    experiment = multihost_experiment(tmp_path / "experiment.yaml", database)
    mh = MultiHostRun(tmp_path, lab, experiment, lab_redis.address, lab_mongo.uri, database)
    # The hosts reach the services across the bridge before anything depends on it.
    assert lab.can_connect(lab.hosts[-1], lab.services_address, lab_redis.port), "bridge is not forwarding"
    try:
        yield mh
    finally:
        mh.stop_all()


# ---- checks


def assert_finished(run: MultiHostRun) -> dict[str, Any]:
    codes = run.wait_all(RUN_TIMEOUT)
    state = run.state()
    assert all(c == 0 for c in codes.values()), f"exit codes {codes}\n{run.tails()}"
    assert state.get("stop_reason") == "target_mean_return", f"{state}\n{run.tails()}"
    assert state["mean_return"] >= 475
    print(
        f"\nmultihost: {state['wall_seconds']:.1f}s, {state['env_frames']} frames, "
        f"{state['env_frames'] / state['wall_seconds']:.0f} frames/s, {state['train_steps']} train steps, "
        f"version {state['policy_version']}, mean return {state['mean_return']:.1f}"
    )
    return state


def assert_mongo_has_versions(uri: str, database: str, at_least: int) -> None:
    import pymongo

    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[database]
        versions = list(db["versions"].find({}, {"train_step": 1}))
        assert len(versions) >= 1, f"no version metadata in {database}"
        latest = db["tags"].find_one({"_id": "latest"})
        assert latest is not None and latest["version"] >= at_least, f"tag latest: {latest}"
        assert max(v["train_step"] for v in versions) > 0
    finally:
        client.close()


# ---- tests


@pytest.mark.timeout(420)
def test_five_hosts_train_cartpole_to_target(run: MultiHostRun, lab_mongo: FerretDBServer) -> None:
    run.start_all()
    state = assert_finished(run)
    assert set(state["pids"]) == {f"{role}/{index}" for role, index in WORKERS}, state["pids"]
    # The streams crossed the bridge: servers bound and advertised their own hosts' addresses.
    for role, what in (("trainer", "sample consumer"), ("policy", "inference server")):
        log = run.log_path(role, 0).read_text()
        assert f"{what} 0 listening on tcp://{run.hosts[(role, 0)].address}:" in log, log
    assert_mongo_has_versions(lab_mongo.uri, run.database, at_least=state["train_steps"] // 2)


@pytest.mark.timeout(480)
def test_killed_actor_host_and_policy_host_are_restarted(run: MultiHostRun, lab_mongo: FerretDBServer) -> None:
    run.start_all()
    before = run.wait_for(lambda s: s["train_steps"] >= MID_RUN and "actor/1" in s["pids"], 150, f"{MID_RUN} train steps")
    # Faults early, and without waiting for each restart to finish importing torch: a lucky run
    # reaches the target ~15 s into training, and the faults must land before that.
    old_actor = run.kill("actor", 1)
    new_actor = run.start("actor", 1).pid
    at_kill = run.wait_for(lambda s: s["train_steps"] >= before["train_steps"] + 2, 120, "training to go on without actor 1")
    old_policy = run.kill("policy", 0)
    new_policy = run.start("policy", 0).pid
    run.wait_for(
        lambda s: s["pids"].get("policy/0") == new_policy and s["train_steps"] > at_kill["train_steps"] + 2,
        120, "the restarted policy worker to serve and training to go on",
    )  # fmt: skip
    state = assert_finished(run)
    # Both restarted processes joined the run (reported progress) and left it at the stop.
    assert state["pids"]["actor/1"] == new_actor != old_actor, state["pids"]
    assert state["pids"]["policy/0"] == new_policy != old_policy, state["pids"]
    assert run.log_path("policy", 0).read_text().count("exit (stop: target_mean_return)") == 1
    assert_mongo_has_versions(lab_mongo.uri, run.database, at_least=1)


@pytest.mark.timeout(480)
def test_trainer_sigterm_writes_a_checkpoint_and_its_replacement_resumes_there(run: MultiHostRun) -> None:
    """Preemption / pod deletion: SIGTERM -> a checkpoint at the current step, exit 143; the next
    trainer resumes at exactly that step (not at the last periodic checkpoint)."""
    run.start_all()
    run.wait_for(lambda s: s["train_steps"] >= MID_RUN, 150, f"{MID_RUN} train steps")
    proc = run.procs[("trainer", 0)]
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    log = run.log_path("trainer", 0).read_text()
    assert code == 128 + signal.SIGTERM, f"exit code {code}\n{log[-3000:]}"
    saved = re.findall(r"checkpoint at version (\d+) \(train step (\d+)\) on exit \(preempted: SIGTERM\)", log)
    assert len(saved) == 1, log[-3000:]
    version, step = saved[0]
    run.start("trainer", 0)
    resumed_line = f"resumed from version {version} (train step {step})"
    deadline = time.monotonic() + 120
    while resumed_line not in run.log_path("trainer", 0).read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert resumed_line in run.log_path("trainer", 0).read_text(), run.tails()
    print(f"\nSIGTERM at train step {step} (version {version}); the restarted trainer resumed there")
    assert_finished(run)


@pytest.mark.timeout(420)
def test_redis_down_for_ten_seconds_delays_but_does_not_end_the_run(run: MultiHostRun, lab_redis: RedisServer) -> None:
    run.start_all()
    before = run.wait_for(lambda s: s["train_steps"] >= MID_RUN, 150, f"{MID_RUN} train steps")
    names_before = _redis_names(lab_redis)
    lab_redis.restart(downtime=10.0)  # same port; the data (name records) is gone
    run.wait_for(lambda s: s["train_steps"] > before["train_steps"] + 2, 120, "training to go on after Redis came back")
    # Every worker re-registers what it owns: entries with a TTL by their refresh, entries without
    # one after noticing the new server (its run_id); a worker still backing off between reconnect
    # attempts does it once it is through (the client's backoff is bounded by its retry timeout).
    deadline = time.monotonic() + 60
    while (missing := names_before - _redis_names(lab_redis)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not missing, f"not re-added within 60 s of training going on: {sorted(missing)}\n{run.tails()}"
    assert_finished(run)


def _redis_names(server: RedisServer) -> set[str]:
    import redis

    client = redis.Redis(host=server.host, port=server.port, socket_timeout=2, decode_responses=True)
    try:
        return set(client.scan_iter(count=1000))
    finally:
        client.close()


# ---- measurement (script mode): frames/s across hosts vs `srl run` on one host
#
# Both runs write the monitor's state.json; the rate is taken over a window that starts WARMUP
# seconds after the first frames, so process start-up (torch imports on a loaded machine take
# tens of seconds) counts against neither side.

WARMUP = 10.0


def _steady_rate(read_state: Callable[[], dict[str, Any]], alive: Callable[[], bool], window: float) -> dict[str, float]:
    """Frames/s and train steps/s of a running experiment over `window` seconds after warm-up."""
    deadline = time.monotonic() + 300
    while not read_state().get("env_frames") and alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(WARMUP)
    a, t0 = read_state(), time.monotonic()
    time.sleep(window)
    b, t1 = read_state(), time.monotonic()
    if not alive() or not a.get("env_frames"):
        raise RuntimeError(f"run ended or never produced frames: {a} -> {b}")
    dt = t1 - t0
    return {
        "frames_per_second": (b["env_frames"] - a["env_frames"]) / dt,
        "train_steps_per_second": (b["train_steps"] - a["train_steps"]) / dt,
        "seconds": dt,
    }


def _measure(window: float) -> None:
    import tempfile

    reason = netns_unavailable_reason()
    if reason:
        sys.exit(reason)
    stop = {"targetMeanReturn": None, "wallSeconds": 3600}  # the measurement ends the run, not the spec
    results = []
    with tempfile.TemporaryDirectory(prefix="srl-mh-") as tmp:
        for n in range(2):  # alternate, so load from elsewhere hits both sides alike
            results.append(("multihost", _measure_multihost(Path(tmp) / f"multi{n}", stop, window)))
            results.append(("srl run", _measure_local(Path(tmp) / f"local{n}", stop, window)))
    for name, r in results:
        print(f"{name:>10}: {r['frames_per_second']:8.0f} frames/s  {r['train_steps_per_second']:5.2f} train steps/s  "
              f"over {r['seconds']:.0f}s", flush=True)


def _measure_multihost(workdir: Path, stop: dict[str, Any], window: float) -> dict[str, float]:
    workdir.mkdir(parents=True)
    with net_lab(len(WORKERS)) as lab, redis_server(host=lab.services_address) as r, ferretdb_server(host=lab.services_address) as m:
        experiment = multihost_experiment(workdir / "e.yaml", "srl_measure", **stop)
        mh = MultiHostRun(workdir, lab, experiment, r.address, m.uri, "srl_measure")
        try:
            mh.start_all()
            return _steady_rate(mh.state, lambda: all(p.poll() is None for p in mh.procs.values()), window)
        finally:
            mh.stop_all()


def _measure_local(workdir: Path, stop: dict[str, Any], window: float) -> dict[str, float]:
    workdir.mkdir(parents=True)
    path = multihost_experiment(workdir / "e.yaml", "unused", **stop)
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["parameterDb"] = {}  # embedded SQLite: `srl run` needs no servers
    path.write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "srl_runtime.cli", "run", str(path), "--run-dir", str(workdir / "run"), "--quiet"]
    with open(workdir / "srl.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    state_file = workdir / "run" / "state.json"

    def read() -> dict[str, Any]:
        try:
            return json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    try:
        return _steady_rate(read, lambda: proc.poll() is None, window)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the launcher and its workers
            proc.wait()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", required=True)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window per run")
    _measure(parser.parse_args().seconds)
