"""Name-record contract for the in-process backends (memory, directory), plus directory specifics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from srl_runtime.config.experiment import NameRecordsSpec
from srl_runtime.name_records.base import NameEntryExists, NameEntryNotFound, NameRecords
from srl_runtime.name_records.directory import DirectoryNameRecords
from srl_runtime.name_records.factory import make_name_records
from srl_runtime.name_records.memory import MemoryNameRecords

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "directory"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NameRecords]:
    r = MemoryNameRecords() if request.param == "memory" else DirectoryNameRecords(tmp_path / "nr")
    yield r
    r.close()


def crash(r: NameRecords) -> None:
    """Stop the keep-alive without deleting entries: what a killed worker leaves behind."""
    r._closing.set()
    if r._keepalive_thread is not None:
        r._keepalive_thread.join(5)


def test_add_get_replace_delete(records: NameRecords) -> None:
    records.add("exp/a", "1")
    assert records.get("exp/a") == "1"
    with pytest.raises(NameEntryExists):
        records.add("exp/a", "2")
    records.add("/exp/a/", "2", replace=True)  # leading/trailing slashes are normalised
    assert records.get("exp/a") == "2"
    records.delete("exp/a")
    with pytest.raises(NameEntryNotFound):
        records.get("exp/a")
    with pytest.raises(NameEntryNotFound):
        records.delete("exp/a")


def test_add_and_get_writes_one_entry_and_reads_another(records: NameRecords) -> None:
    assert records.add_and_get("exp/progress/0", "p1", read="exp/state/stop", keepalive_ttl=5.0, replace=True) is None
    records.add("/exp/state/stop/", "wall_seconds")
    assert records.add_and_get("exp/progress/0", "p2", read="/exp/state/stop", keepalive_ttl=5.0, replace=True) == (
        "wall_seconds"
    )
    assert records.get("exp/progress/0") == "p2"
    assert records.find_subtree("exp") == ["exp/progress/0", "exp/state/stop"]
    with pytest.raises(NameEntryExists):  # replace=False keeps add's contract
        records.add_and_get("exp/progress/0", "p3", read="exp/state/stop")
    assert records.get("exp/progress/0") == "p2"
    records.add_and_get("exp/progress/1", "q", read="exp/state/stop", delete_on_exit=False)
    records.add_and_get("exp/progress/2", "r", read="exp/state/stop")
    records.reset()  # delete_on_exit is honoured as by add; keep-alive bookkeeping too
    assert records.find_subtree("exp/progress") == ["exp/progress/1"]


def test_subtree_is_sorted_and_respects_prefix_boundaries(records: NameRecords) -> None:
    records.add("exp/s", "root")
    records.add("exp/s/2", "two")
    records.add("exp/s/1", "one")
    records.add("exp/s/1/deep", "deep")
    records.add("exp/sx", "not below exp/s")
    assert records.find_subtree("exp/s") == ["exp/s", "exp/s/1", "exp/s/1/deep", "exp/s/2"]
    assert records.get_subtree("exp/s") == ["root", "one", "deep", "two"]
    sub = records.add_subentry("exp/peers", "tcp://x:1")
    assert sub.startswith("exp/peers/") and records.get_subtree("exp/peers") == ["tcp://x:1"]
    records.clear_subtree("exp/s")
    assert records.find_subtree("exp/s") == [] and records.get("exp/sx") == "not below exp/s"


def test_ttl_expires_when_owner_dies(records: NameRecords) -> None:
    records.add("exp/w/0", "addr", keepalive_ttl=0.3)
    assert records.get("exp/w/0") == "addr"
    crash(records)
    time.sleep(0.5)
    with pytest.raises(NameEntryNotFound):
        records.get("exp/w/0")
    assert records.get_subtree("exp/w") == []
    # An expired entry does not block a new add.
    records._put("exp/w/0", "new", None, replace=False)
    assert records.get("exp/w/0") == "new"


def test_keepalive_keeps_entry(records: NameRecords) -> None:
    records.add("exp/w/1", "addr", keepalive_ttl=0.3)
    time.sleep(1.0)  # > 3 TTLs: only the keep-alive can have kept it
    assert records.get("exp/w/1") == "addr"
    records.close()
    with pytest.raises(NameEntryNotFound):
        records.get("exp/w/1")


def test_wait(records: NameRecords) -> None:
    threading.Timer(0.2, lambda: records.add("exp/late", "here")).start()
    assert records.wait("exp/late", timeout=5, poll_interval=0.02) == "here"
    with pytest.raises(TimeoutError):
        records.wait("exp/never", timeout=0.1, poll_interval=0.02)


def test_directory_odd_names_and_layout(tmp_path: Path) -> None:
    r = DirectoryNameRecords(tmp_path)
    names = ["a/.entry/x", "a/..x", "a/sp ace/%41", "a/.tmp-1", "a/ünï"]
    for i, n in enumerate(names):
        r.add(n, str(i))
    assert r.find_subtree("a") == sorted(names), list(tmp_path.rglob("*"))
    assert [r.get(n) for n in names] == [str(i) for i in range(len(names))]
    for bad in ["a/../b", "a//b", "."]:
        with pytest.raises(ValueError):
            r.add(bad, "x")
        with pytest.raises(NameEntryNotFound):
            r.get(bad)
    for n in names:
        r.delete(n)
    assert list(tmp_path.iterdir()) == [], "empty directories should be pruned"


def test_directory_expiry_is_stored_in_the_file(tmp_path: Path) -> None:
    a, b = DirectoryNameRecords(tmp_path), DirectoryNameRecords(tmp_path)
    a.add("x", "v", keepalive_ttl=0.3)
    assert b.get("x") == "v"  # another instance (or host) sees it and its expiry
    crash(a)
    time.sleep(0.5)
    with pytest.raises(NameEntryNotFound):
        b.get("x")


_CHILD = textwrap.dedent(
    """
    import sys, time
    from srl_runtime.name_records.directory import DirectoryNameRecords
    from srl_runtime.name_records.base import NameEntryExists
    path, role = sys.argv[1], sys.argv[2]
    r = DirectoryNameRecords(path)
    if role == "owner":
        r.add("exp/w/child", "alive", keepalive_ttl=0.3)
        print("ready", flush=True)
        time.sleep(60)
    else:  # race to create one name; print whether we won
        time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # a late interpreter (busy box) races late
        try:
            r.add("exp/leader", role, delete_on_exit=False)
            print("won", flush=True)
        except NameEntryExists:
            print("lost", flush=True)
    """
)


def _child(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args], stdout=subprocess.PIPE, text=True, env=env
    )


def test_directory_two_processes_keepalive_and_death(tmp_path: Path) -> None:
    owner = _child(str(tmp_path), "owner")
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        r = DirectoryNameRecords(tmp_path)
        time.sleep(1.0)  # the child's keep-alive must carry it past several TTLs
        assert r.get_subtree("exp/w") == ["alive"]
    finally:
        owner.kill()  # SIGKILL: no cleanup, only the TTL can remove the entry
        owner.wait()
    time.sleep(0.5)
    assert r.get_subtree("exp/w") == [], list(tmp_path.rglob("*"))


def test_directory_create_race_has_one_winner(tmp_path: Path) -> None:
    start = str(time.time() + 1.5)  # after the interpreters are up
    procs = [_child(str(tmp_path), f"p{i}", start) for i in range(4)]
    outs = [p.communicate(timeout=30)[0].strip() for p in procs]
    assert sorted(outs) == ["lost", "lost", "lost", "won"], outs
    winner = f"p{outs.index('won')}"
    assert DirectoryNameRecords(tmp_path).get("exp/leader") == winner


def test_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SRL_NAME_RECORDS_REDIS", raising=False)
    r = make_name_records(NameRecordsSpec(), tmp_path)
    assert isinstance(r, DirectoryNameRecords) and r.path == tmp_path / "name_records"
    assert isinstance(make_name_records(NameRecordsSpec(backend="memory"), None), MemoryNameRecords)
    with pytest.raises(ValueError, match="redisAddress"):
        make_name_records(NameRecordsSpec(backend="redis"), tmp_path)
    with pytest.raises(ValueError, match="nameRecords.path"):
        make_name_records(NameRecordsSpec(backend="directory"), None)
