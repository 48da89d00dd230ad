"""RedisNameRecords against a real redis-server, including a restart of the server mid-use."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from servers import RedisServer

from srl_runtime.config.experiment import NameRecordsSpec
from srl_runtime.name_records.base import NameEntryExists, NameEntryNotFound
from srl_runtime.name_records.factory import make_name_records
from srl_runtime.name_records.redis_backend import RedisNameRecords

pytestmark = pytest.mark.integration


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


def test_monitor_loop_keeps_retrying_until_the_flag_is_written(redis_server: RedisServer) -> None:
    """Reads work, writes fail (Redis out of memory): the stop is decided but the flag cannot be set.
    The monitor must neither give up nor return before the flag is there; once writes work it is."""
    from srl_runtime.launcher.single_worker import _monitor_loop

    records = RedisNameRecords(redis_server.address, retry_timeout=0.5)
    monitor, flag = _monitor(records)
    admin = raw(redis_server)
    stop = threading.Event()
    thread = threading.Thread(target=_monitor_loop, args=(monitor, stop), daemon=True)
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
