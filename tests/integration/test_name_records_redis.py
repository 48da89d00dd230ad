"""RedisNameRecords against a real redis-server, including a restart of the server mid-use."""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from servers import RedisServer

from srl_runtime.config.experiment import NameRecordsSpec
from srl_runtime.name_records.base import NameEntryExists, NameEntryNotFound
from srl_runtime.name_records.factory import make_name_records
from srl_runtime.name_records.redis_backend import RedisNameRecords

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def records(redis_server: RedisServer) -> Iterator[RedisNameRecords]:
    r = RedisNameRecords(redis_server.address, retry_timeout=10)
    yield r
    r.close()


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)


def test_contract(records: RedisNameRecords) -> None:
    records.add("exp/a", "1")
    with pytest.raises(NameEntryExists):
        records.add("exp/a", "2")
    records.add("exp/a", "2", replace=True)
    assert records.get("exp/a") == "2"
    for n in ["exp/a/x", "exp/a/y/z", "exp/ab", "exp/a*[1]?/q"]:
        records.add(n, n)
    assert records.find_subtree("exp/a") == ["exp/a", "exp/a/x", "exp/a/y/z"]
    assert records.get_subtree("exp/a*[1]?") == ["exp/a*[1]?/q"]  # glob characters are literal
    records.delete("exp/a")
    with pytest.raises(NameEntryNotFound):
        records.get("exp/a")
    threading.Timer(0.2, lambda: records.add("exp/late", "here")).start()
    assert records.wait("exp/late", timeout=5, poll_interval=0.02) == "here"


def test_add_and_get_and_subtree_rereads(records: RedisNameRecords, redis_server: RedisServer) -> None:
    """add_and_get keeps add's contract (memory and directory backends: tests/unit); a re-read of a
    subtree follows names that come, go and expire, although it reuses the last read's names."""
    assert records.add_and_get("exp/p/0", "a", read="exp/stop", keepalive_ttl=5.0, replace=True) is None
    raw(redis_server).set("exp/stop", "done")
    assert records.add_and_get("/exp/p/0/", "b", read="/exp/stop", keepalive_ttl=5.0, replace=True) == "done"
    with pytest.raises(NameEntryExists):
        records.add_and_get("exp/p/0", "c", read="exp/stop")
    assert records.get("exp/p/0") == "b"
    assert records.get_subtree("exp/p") == ["b"]
    assert records.get_subtree("exp/p") == ["b"]  # the same names: one round trip
    records.add("exp/p/1", "one")
    assert records.get_subtree("exp/p") == ["b", "one"]
    records.add("exp/p/0", "b2", replace=True)
    assert records.get_subtree("exp/p") == ["b2", "one"]  # values are re-read, not cached
    records.delete("exp/p/1")
    assert records.get_subtree("exp/p") == ["b2"]
    raw(redis_server).set("exp/p/2", "expiring", px=50)
    records._client.zadd(records._index, {"exp/p/2": 0})
    assert records.get_subtree("exp/p") == ["b2", "expiring"]
    time.sleep(0.1)
    assert records.get_subtree("exp/p") == ["b2"]
    assert records.get_subtree("exp/p") == ["b2"]
    assert records.find_subtree("exp/p") == ["exp/p/0"]


def test_ttl_is_a_redis_expiry_and_keepalive_refreshes(
    records: RedisNameRecords, redis_server: RedisServer
) -> None:
    records.add("exp/w/0", "addr", keepalive_ttl=0.4)
    pttl = raw(redis_server).pttl("exp/w/0")
    assert 0 < pttl <= 400, pttl
    time.sleep(1.2)  # three TTLs: alive only through the keep-alive
    assert records.get("exp/w/0") == "addr"
    # The owner dies without cleanup: the key expires on its own.
    records._closing.set()
    assert records._keepalive_thread is not None
    records._keepalive_thread.join(5)
    time.sleep(0.6)
    other = RedisNameRecords(redis_server.address)
    with pytest.raises(NameEntryNotFound):
        other.get("exp/w/0")
    other.close()


def test_restart_mid_use(records: RedisNameRecords, redis_server: RedisServer) -> None:
    records.add("exp/w/0", "ttl-entry", keepalive_ttl=1.0)
    records.add("exp/static", "no-ttl-entry")
    reader = RedisNameRecords(redis_server.address, retry_timeout=10)
    seen: list[object] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(tuple(reader.get_subtree("exp")))
            except BaseException as e:  # noqa: BLE001 - recorded and asserted on below
                errors.append(e)
            stop.wait(0.05)

    t = threading.Thread(target=poll)
    t.start()
    try:
        time.sleep(0.2)
        redis_server.restart(downtime=0.7)  # the new server starts empty (no persistence)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if set(reader.get_subtree("exp")) == {"ttl-entry", "no-ttl-entry"}:
                break
            time.sleep(0.05)
        came_back = time.monotonic() - (deadline - 5)
    finally:
        stop.set()
        t.join(15)
    transitions = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    print(f"reader saw {len(seen)} polls, distinct states in order: {transitions}; errors: {errors!r}")
    assert not errors, errors
    assert set(reader.get_subtree("exp")) == {"ttl-entry", "no-ttl-entry"}, transitions
    assert came_back < 5, came_back
    # Calls made while the server is away wait for it instead of failing.
    threading.Timer(0.5, redis_server.start).start()
    redis_server.stop()
    records.add("exp/during-outage", "ok")
    assert reader.get("exp/during-outage") == "ok"
    reader.close()


def test_bounded_retry_when_server_stays_down(redis_server: RedisServer) -> None:
    r = RedisNameRecords(redis_server.address, retry_timeout=0.5)
    redis_server.stop()
    t0 = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        r.get("x")
    elapsed = time.monotonic() - t0
    assert 0.2 < elapsed < 3, elapsed
    r.close()


def test_factory_redis(redis_server: RedisServer) -> None:
    r = make_name_records(NameRecordsSpec(backend="redis", redis_address=redis_server.address), None)
    assert isinstance(r, RedisNameRecords)
    r.add("k", "v")
    assert r.get("k") == "v"
    r.close()


# --------------------------------------------------------------------------- the stop flag is durable (issue 9, item 9)


def _monitor(records: RedisNameRecords) -> tuple[object, str]:
    import json

    from srl_runtime.config.experiment import StopSpec
    from srl_runtime.launcher.monitor import ExperimentMonitor
    from srl_runtime.name_records import keys

    root = keys.experiment_root("durable")
    body = {"role": "actor", "index": 0, "pid": 1, "running": True, "env_frames": 500, "recent_returns": []}
    records.add(keys.worker_progress(root, "actor", 0), json.dumps(body), replace=True)
    return ExperimentMonitor(records, root, StopSpec(envFrames=100)), keys.stop_flag(root)


def test_stop_decided_while_redis_is_down_is_written_when_it_is_back(redis_server: RedisServer) -> None:
    records = RedisNameRecords(redis_server.address, retry_timeout=0.5)
    monitor, flag = _monitor(records)
    try:
        redis_server.stop()
        monitor.request_stop("env_frames")  # must not raise: retried later
        assert not monitor.stop_written
        redis_server.start()
        monitor.tick()
        assert monitor.stop_written and records.get(flag) == "env_frames"
    finally:
        records.close()


def test_monitor_loop_keeps_retrying_until_the_flag_is_written(redis_server: RedisServer, tmp_path: Path) -> None:
    """Reads work, writes fail (Redis out of memory): the stop is decided but the flag cannot be set.
    The monitor must neither give up nor return before the flag is there; once writes work it is."""
    from srl_runtime.launcher.single_worker import _monitor_loop

    records = RedisNameRecords(redis_server.address, retry_timeout=0.5)
    monitor, flag = _monitor(records)
    admin = raw(redis_server)
    stop = threading.Event()
    thread = threading.Thread(target=_monitor_loop, args=(monitor, stop, tmp_path), daemon=True)
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write is refused from now on
        thread.start()
        deadline = time.monotonic() + 20
        while monitor.summary.stop_reason is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.summary.stop_reason == "env_frames"
        thread.join(timeout=3.5)  # three more ticks
        assert thread.is_alive(), "the monitor returned although the stop flag was never written"
        with pytest.raises(NameEntryNotFound):
            records.get(flag)
        admin.config_set("maxmemory", "0")
        thread.join(timeout=20)
        assert not thread.is_alive() and records.get(flag) == "env_frames"
    finally:
        stop.set()
        admin.config_set("maxmemory", "0")
        thread.join(timeout=5)
        records.close()


def test_password_from_the_environment(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Redis with requirepass (as the operator runs it): the factory passes $SRL_NAME_RECORDS_REDIS_PASSWORD;
    without it, or with a wrong one, calls fail at once instead of retrying a permanent error."""
    from srl_runtime.config.worker_env import NAME_RECORDS_REDIS_PASSWORD

    admin = raw(redis_server)
    admin.config_set("requirepass", "pw-4f9a")
    admin.close()
    spec = NameRecordsSpec(backend="redis", redis_address=redis_server.address)

    monkeypatch.setenv(NAME_RECORDS_REDIS_PASSWORD, "pw-4f9a")
    r = make_name_records(spec, None)
    r.add("k", "v")
    assert r.get("k") == "v"
    r.close()

    monkeypatch.setenv(NAME_RECORDS_REDIS_PASSWORD, "wrong")
    r = make_name_records(spec, None)
    with pytest.raises(redis.AuthenticationError):
        r.get("k")
    r.close()
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port, password="pw-4f9a")
    assert admin.info("errorstats")["errorstat_WRONGPASS"]["count"] == 1  # tried once, not retried
    admin.close()

    monkeypatch.delenv(NAME_RECORDS_REDIS_PASSWORD)
    r = make_name_records(spec, None)
    with pytest.raises(redis.AuthenticationError):  # NOAUTH
        r.get("k")
    r.close()


def test_operator_reads_the_summary_with_the_password(redis_server: RedisServer) -> None:
    """The operator's status read: the right password reads the summary; none or a wrong one is a
    reason in the status (never an exception, never the password)."""
    import json

    from srl_operator.name_records import read_summary
    from srl_runtime.name_records import keys

    admin = raw(redis_server)
    admin.set(keys.experiment_state(keys.experiment_root("cp", "ml")), json.dumps({"policy_version": 3}))
    admin.config_set("requirepass", "pw-77c1")
    admin.close()
    summary, err = read_summary(redis_server.address, "cp", "ml", 2.0, password="pw-77c1")
    assert (summary, err) == ({"policy_version": 3}, None)
    for password in (None, "wrong-one"):
        summary, err = read_summary(redis_server.address, "cp", "ml", 2.0, password=password)
        assert summary is None and err is not None and redis_server.address in err
        assert "pw-77c1" not in err and (password is None or password not in err)


# --------------------------------------------------------------------------- a worker at rest (issue 10, item 4)


class CountingProxy:
    """A loopback TCP proxy in front of Redis that counts, per client connection, the round trips
    (each burst the client writes before it waits for replies) and the commands (RESP arrays)."""

    def __init__(self, server: RedisServer) -> None:
        self.upstream = ("127.0.0.1", server.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.counting = False
        self.trips = 0
        self.commands: collections.Counter[str] = collections.Counter()
        threading.Thread(target=self._accept, daemon=True).start()

    def start_counting(self) -> None:
        with self.lock:
            self.counting, self.trips = True, 0
            self.commands.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._client_to_server, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _client_to_server(self, client: socket.socket, upstream: socket.socket) -> None:
        buf = b""
        while data := _recv(client):
            upstream.sendall(data)
            buf += data
            names = []
            while (parsed := _parse_command(buf)) is not None:
                name, buf = parsed
                names.append(name)
            with self.lock:
                if self.counting and names:
                    self.trips += 1  # a client waits for its replies after each burst
                    self.commands.update(names)
        upstream.close()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        while data := _recv(src):
            dst.sendall(data)
        dst.close()

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except OSError:
        return b""


def _parse_command(buf: bytes) -> tuple[str, bytes] | None:
    """The name of the first complete RESP command in buf (lower case) and the rest, or None."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    n, pos, args = int(buf[1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(buf[pos + 1 : end])
        if len(buf) < end + 2 + size + 2:
            return None
        args.append(buf[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2
    return args[0].decode().lower(), buf[pos:]


def per_role_rates(role: str) -> tuple[float, dict[str, float]]:
    """Round trips and commands per second one worker of `role` sends at rest, by
    bench/nrload/worker_commands.json (what the Go load generator replays)."""
    spec = json.loads((REPO / "bench" / "nrload" / "worker_commands.json").read_text())
    trips, commands = 0.0, collections.Counter[str]()
    for item in spec["roles"][role]["every"]:
        trips += 1 / item["period_s"]
        for command in item["trip"]:
            commands[command[0].lower()] += 1 / item["period_s"]
    return trips, dict(commands)


def test_a_worker_at_rest_sends_what_the_load_generator_replays(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """An idle actor (progress loop plus its two stream peer directories, as its stream clients
    read them on every poll) sends, per second, exactly the round trips and commands that
    bench/nrload/worker_commands.json says: one pipeline of SET progress + ZADD + GET stop flag
    (no per-worker command key, no INFO, no keep-alive re-write of its fresh progress), and each
    directory re-read every 5 s +-20% as one pipeline of ZRANGEBYLEX + MGET. And it still sees
    the stop flag within its progress interval."""
    from srl_runtime.config.load import parse_experiment
    from srl_runtime.name_records import keys
    from srl_runtime.streams.discovery import PeerDirectory
    from srl_runtime.workers.base import PollResult, Worker, WorkerContext

    class IdleActor(Worker):
        role = "actor"

        def _configure(self) -> None:
            nr, root = self.ctx.name_records, self.ctx.root
            self.peers = [
                PeerDirectory(nr, keys.inference_streams(root), what="inference servers"),
                PeerDirectory(nr, keys.sample_streams(root), what="sample consumers"),
            ]

        def _poll(self) -> PollResult:
            for peers in self.peers:  # what ZmqInferenceClient/ZmqSampleProducer._sync do
                assert peers.addresses()
            time.sleep(0.01)  # an actor waiting on its inference server
            return PollResult()

    exp = parse_experiment(
        {"metadata": {"name": "rest"}, "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"envFrames": 10}}}
    )
    admin = raw(redis_server)
    proxy = CountingProxy(redis_server)
    nr = RedisNameRecords(proxy.address, retry_timeout=5)
    worker = IdleActor(WorkerContext(exp, "actor", 0, nr, tmp_path))
    root = worker.ctx.root
    peers = RedisNameRecords(redis_server.address)  # a policy worker and a trainer, not counted
    peers.add(keys.inference_stream(root, 0), "tcp://10.0.0.1:4100", keepalive_ttl=10.0)
    peers.add(keys.sample_stream(root, 0), "tcp://10.0.0.2:4200", keepalive_ttl=10.0)
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        thread.start()
        time.sleep(1.5)  # start-up reads done; keep-alive ticks every ttl/3 = 3.3 s from here on
        proxy.start_counting()
        window = 12.0  # 12 progress round trips, 2-3 reads of each directory
        time.sleep(window)
        with proxy.lock:
            trips, calls = proxy.trips, dict(proxy.commands)
        print(f"one idle actor in {window} s: {trips} round trips, commands {calls}")
        want_trips, want = per_role_rates("actor")
        assert set(calls) == set(want), (calls, want)  # no other command at all
        progress = {"set", "zadd", "get"}
        for name in progress:  # once a second, +-1 for the window's edges
            assert abs(calls[name] - want[name] * window) <= 1, (name, calls, want)
        for name in set(want) - progress:  # each directory every 4-6 s
            lo, hi = 2 * int(window / 6), 2 * (int(window / 4) + 1)
            assert lo <= calls[name] <= hi and abs(calls[name] / window - want[name]) <= 0.2, (name, calls, want)
        directory_trips = calls["zrangebylex"]  # one per directory read: MGET rides along
        assert calls["mget"] == directory_trips, calls
        assert trips == calls["get"] + directory_trips, (trips, calls)  # all pipelined as listed
        assert abs(trips / window - want_trips) <= 0.25, (trips, want_trips)
        flagged = time.monotonic()
        admin.set(keys.stop_flag(root), "wall_seconds")
        thread.join(timeout=5)
        latency = time.monotonic() - flagged
        assert not thread.is_alive() and worker.exit_reason == "stop: wall_seconds"
        assert latency <= worker.progress_interval + 0.3, latency
    finally:
        worker.request_exit("test over")
        thread.join(timeout=5)
        nr.close()
        peers.close()
        proxy.close()
        admin.close()
