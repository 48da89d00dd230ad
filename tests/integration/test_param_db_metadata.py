"""Metadata stores against real backends: MongoDB wire (FerretDB) and SQLite shared by two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import FerretDBServer

from srl_runtime.config.experiment import MongoSpec, ParameterDBSpec
from srl_runtime.param_db import FilesystemParameterDB, make_parameter_db
from srl_runtime.param_db.metadata import MetadataStore
from srl_runtime.param_db.mongo_store import MongoMetadataStore
from srl_runtime.param_db.sqlite_store import SQLiteMetadataStore

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "mongo"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        s: MetadataStore = SQLiteMetadataStore(tmp_path / "meta.sqlite")
    else:
        server: FerretDBServer = request.getfixturevalue("mongo_server")
        s = MongoMetadataStore(server.uri, f"t{uuid.uuid4().hex[:8]}", "exp_")
    yield s
    s.close()


def test_metadata_contract(store: MetadataStore) -> None:
    assert store.list_versions() == [] and store.query_best() is None
    for v, ret in [(3, 20.0), (1, 10.0), (2, 30.0)]:
        store.record_version(v, train_step=v * 10, timestamp=1000.0 + v, episode_return=ret,
                             extra={"lr": 0.001, "note": f"v{v}"})  # fmt: skip
    store.record_version(4, train_step=40, timestamp=1004.0)  # no return yet
    store.record_version(1, train_step=11, timestamp=1001.5, episode_return=10.0)  # overwrite
    assert store.list_versions() == [1, 2, 3, 4]
    store.set_tag("latest", 4)
    store.set_tag("latest", 3)  # moves
    store.set_tag("ckpt", 3)
    store.add_eval_result(1, "latest", 55.0, 5)
    store.add_eval_result(3, "latest", 41.0, 5)
    store.add_eval_result(3, "latest", 42.0, 10)
    rec = store.get(3)
    print("record of version 3:", rec)
    assert rec["train_step"] == 30 and rec["episode_return"] == 20.0 and rec["extra"]["note"] == "v3"
    assert rec["tags"] == ["ckpt", "latest"]
    assert [e["mean_return"] for e in rec["evals"]] == [41.0, 42.0]
    assert store.get(1)["train_step"] == 11 and store.get(4)["tags"] == []
    assert store.query_best()["version"] == 1
    assert store.query_best(by="episode_return")["version"] == 2
    store.remove_tag("ckpt")
    store.remove_tag("nope")
    assert store.get(3)["tags"] == ["latest"]
    with pytest.raises(KeyError):
        store.get(99)
    with pytest.raises(ValueError):
        store.query_best(by="bogus")  # type: ignore[arg-type]


def test_parameter_db_with_mongo_metadata(mongo_server: FerretDBServer, tmp_path: Path) -> None:
    db_name = f"t{uuid.uuid4().hex[:8]}"
    spec = ParameterDBSpec(metadata="mongodb", mongodb=MongoSpec(uri=mongo_server.uri, database=db_name))
    db = make_parameter_db(spec, tmp_path, collection_prefix="cartpole_")
    assert isinstance(db, FilesystemParameterDB) and isinstance(db.metadata, MongoMetadataStore)
    db.push({"x": 1}, 1, metadata={"train_step": 5, "episode_return": 9.5})
    db.push({"x": 2}, 2, tags=["eval"])
    db.metadata.add_eval_result(2, "eval", 100.0, 3)
    print("mongo record:", db.metadata.get(2))
    assert db.metadata.get(1)["train_step"] == 5
    assert db.metadata.get(2)["tags"] == ["eval", "latest"]
    assert db.metadata.query_best()["version"] == 2
    db.close()


_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from srl_runtime.param_db.sqlite_store import SQLiteMetadataStore
    path, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = SQLiteMetadataStore(path)
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    time.sleep(max(0.0, start - time.time()))
    t0 = time.perf_counter()
    for i in range(n):
        v = base + i
        s.record_version(v, train_step=v, timestamp=time.time(), episode_return=float(i))
        s.add_eval_result(v, "latest", float(v), 1)
        s.set_tag(f"w{base}", v)
        s.list_versions()  # reads interleave with the other process's writes
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
    """
)


def test_sqlite_store_shared_by_two_processes(tmp_path: Path) -> None:
    path, n = tmp_path / "meta.sqlite", 150
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(base), str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        for base in (0, 1000)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = f"{time.time() + 0.1}\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(start)
        p.stdin.flush()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, f"writer exited {p.returncode}:\n{err[-3000:]}"
        outs.append(json.loads(out.strip().splitlines()[-1]))
    s = SQLiteMetadataStore(path)
    versions = s.list_versions()
    rate = [f"{4 * n / o['seconds']:.0f} ops/s" for o in outs]
    print(f"two writers, {n} versions each: {rate}; stored {len(versions)} versions")
    assert versions == list(range(n)) + list(range(1000, 1000 + n)), versions[:5]
    assert s.get(n - 1)["tags"] == ["w0"] and s.get(1000 + n - 1)["tags"] == ["w1000"]
    assert s.query_best()["version"] == 1000 + n - 1
    s.close()


_OPENER = textwrap.dedent(
    """
    import sys, time
    from srl_runtime.param_db.sqlite_store import SQLiteMetadataStore
    start, paths = float(sys.argv[1]), sys.argv[2:]
    time.sleep(max(0.0, start - time.time()))
    for p in paths:  # every process opens the same fresh files at the same moment
        SQLiteMetadataStore(p).close()
    """
)


def test_processes_opening_a_new_file_at_once_do_not_fail(tmp_path: Path) -> None:
    """Switching a fresh file to WAL from several processes at once used to fail at once with
    "database is locked" (the CI run of stop 15): opening is serialised by an flock."""
    paths = [str(tmp_path / f"meta-{i}.sqlite") for i in range(200)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = str(time.time() + 1.5)  # after every process has imported the store
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPENER, start, *paths], stderr=subprocess.PIPE,
                         text=True, env=env)  # fmt: skip
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    failed = [e for p, e in zip(procs, errors, strict=True) if p.returncode != 0]
    assert not failed, f"{len(failed)} of 8 processes failed; first:\n{failed[0][-2000:]}"
