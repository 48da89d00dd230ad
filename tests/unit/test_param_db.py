"""FilesystemParameterDB and SQLite metadata in one process: round trips, tags, blocking, gc, races."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from srl_runtime.config.experiment import ParameterDBSpec
from srl_runtime.param_db import FilesystemParameterDB, VersionNotFound, make_parameter_db
from srl_runtime.param_db.sqlite_store import SQLiteMetadataStore

pytestmark = pytest.mark.unit


@pytest.fixture
def db(tmp_path: Path) -> Iterator[FilesystemParameterDB]:
    d = FilesystemParameterDB(tmp_path / "params", keep_versions=3, fsync=False)
    yield d
    d.close()


def state(v: int) -> dict:
    return {"w": torch.full((4, 3), float(v)), "np": np.arange(v + 1), "step": v, "name": f"v{v}"}


def test_round_trip_and_tags(db: FilesystemParameterDB) -> None:
    assert db.latest_version() is None
    with pytest.raises(VersionNotFound):
        db.get()
    db.push(state(1), 1, metadata={"train_step": 10, "episode_return": 3.5, "lr": np.float32(1e-3)})
    db.push(state(2), 2, tags=["checkpoint"])
    ck = db.get()
    assert ck.version == 2 and db.latest_version() == 2
    assert torch.equal(ck.state["w"], torch.full((4, 3), 2.0))
    assert np.array_equal(ck.state["np"], np.arange(3)) and ck.state["name"] == "v2"
    old = db.get(version=1)
    assert old.metadata["episode_return"] == 3.5 and old.state["step"] == 1
    assert db.tags() == {"latest": 2, "checkpoint": 2}
    db.tag(1, "eval/best")  # tags may hold any characters
    assert db.get(tag="eval/best").version == 1
    db.untag("eval/best")
    db.untag("eval/best")  # idempotent
    with pytest.raises(VersionNotFound):
        db.get(tag="eval/best")
    with pytest.raises(VersionNotFound):
        db.tag(99, "x")
    rec = db.metadata.get(1)
    assert rec["train_step"] == 10 and rec["extra"]["lr"] == pytest.approx(1e-3), rec
    assert db.metadata.get(2)["tags"] == ["checkpoint", "latest"]
    assert db.versions() == [1, 2]


def test_get_blocks_until_pushed(db: FilesystemParameterDB) -> None:
    threading.Timer(0.2, lambda: db.push(state(7), 7)).start()
    assert db.get(block=True, timeout=5).version == 7
    with pytest.raises(VersionNotFound):
        db.get(version=8, block=True, timeout=0.2)


def test_gc_keeps_newest_and_tagged(db: FilesystemParameterDB) -> None:
    for v in range(1, 21):
        db.push(state(v), v, tags=["eval"] if v == 5 else ())
    deleted = db.gc()
    assert (deleted, db.versions()) == (16, [5, 18, 19, 20]), db.versions()
    assert db.get(tag="eval").version == 5
    db.untag("eval")
    assert db.gc() == 1 and db.versions() == [18, 19, 20]
    assert db.gc() == 0
    assert db.metadata.list_versions() == list(range(1, 21)), "metadata outlives checkpoints"


def test_reader_racing_gc_retries_on_newer_latest(tmp_path: Path) -> None:
    class StaleTagOnce(FilesystemParameterDB):
        """Reads `latest` before a concurrent push + gc moved it, as a slow reader would."""

        stale = True

        def _read_tag(self, tag: str) -> int:
            if self.stale:
                self.stale = False
                return 1
            return super()._read_tag(tag)

    writer = FilesystemParameterDB(tmp_path, keep_versions=1, fsync=False)
    for v in (1, 2):
        writer.push(state(v), v)
    assert writer.gc() == 1
    assert StaleTagOnce(tmp_path).get().version == 2
    with pytest.raises(VersionNotFound):
        StaleTagOnce(tmp_path).get(version=1)


def test_sqlite_metadata(tmp_path: Path) -> None:
    s = SQLiteMetadataStore(tmp_path / "m.sqlite")
    assert s.query_best() is None and s.list_versions() == []
    for v, ret in [(1, 10.0), (2, 30.0), (3, 20.0)]:
        s.record_version(v, train_step=v * 100, timestamp=float(v), episode_return=ret)
    s.add_eval_result(1, "latest", 50.0, 5)
    s.add_eval_result(3, "latest", 40.0, 5)
    s.set_tag("best", 1)
    assert s.query_best()["version"] == 1
    assert s.query_best(by="episode_return")["version"] == 2
    rec = s.get(1)
    assert rec["tags"] == ["best"] and rec["evals"][0]["mean_return"] == 50.0, rec
    s.remove_tag("best")
    assert s.get(1)["tags"] == []
    with pytest.raises(KeyError):
        s.get(42)
    assert s.list_versions() == [1, 2, 3]
    s.close()


def test_factory(tmp_path: Path) -> None:
    db = make_parameter_db(ParameterDBSpec(keep_versions=2), tmp_path)
    assert isinstance(db, FilesystemParameterDB) and db.path == tmp_path / "params"
    assert isinstance(db.metadata, SQLiteMetadataStore) and db.keep_versions == 2
    db.close()


class _RunsCode:
    """Unpickling this calls os.mkdir(path): what a hostile checkpoint on a shared volume would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        import os

        return (os.mkdir, (self.path,))


def test_checkpoint_that_would_run_code_is_refused_counted_and_not_run(db: FilesystemParameterDB, tmp_path: Path) -> None:
    db.push(state(1), 1)
    marker = tmp_path / "pwned"
    payload = {"version": 2, "state": {"policy": _RunsCode(str(marker))}, "metadata": {}}
    torch.save(payload, db.path / "versions" / f"{2:012d}.pt")  # written behind the DB's back
    (db.path / "tags" / "latest").write_text("2")
    errors = []
    for _ in range(3):  # followers retry: refused every time, counted once
        try:
            db.get()
        except Exception as err:  # noqa: BLE001 - checked below
            errors.append(err)
    assert not marker.exists(), "loading the checkpoint executed code"
    assert len(errors) == 3 and all(type(e).__name__ == "UnreadableCheckpoint" for e in errors), errors
    assert "not a loadable checkpoint" in str(errors[0])
    assert db.rejected_checkpoints == 1
    assert db.get(version=1).version == 1, "intact versions still load"


def test_truncated_checkpoint_is_refused_and_counted(db: FilesystemParameterDB) -> None:
    from srl_runtime.param_db import UnreadableCheckpoint

    db.push(state(3), 3)
    path = db.path / "versions" / f"{3:012d}.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UnreadableCheckpoint):
        db.get(version=3)
    assert db.rejected_checkpoints == 1


def test_follower_refuses_a_hostile_latest_and_counts_it(db: FilesystemParameterDB, tmp_path: Path) -> None:
    import gymnasium as gym

    from srl_runtime.config.experiment import PolicySpec
    from srl_runtime.policies import Policy
    from srl_runtime.workers.param_follower import ParameterFollower

    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    db.push({"policy": policy.get_state()}, 1)
    follower = ParameterFollower(db, policy, interval=0.0)
    follower.maybe_pull()
    assert follower.version == 1
    marker = tmp_path / "pwned"
    torch.save({"version": 2, "state": {"policy": _RunsCode(str(marker))}, "metadata": {}}, db.path / "versions" / f"{2:012d}.pt")
    (db.path / "tags" / "latest").write_text("2")
    follower.maybe_pull()
    follower.maybe_pull()
    assert follower.version == 1 and not marker.exists() and db.rejected_checkpoints == 1


def test_push_refuses_what_could_not_be_loaded_back(db: FilesystemParameterDB) -> None:
    with pytest.raises(TypeError, match=r"state\.obj is a .*Path"):
        db.push({"obj": Path("/")}, 1)
    assert db.versions() == []
