"""The algorithm set from `srl run`, real worker processes: PPG and dual-clip PPO solve CartPole, the
MAPPO example learns its cooperative task, V-trace and IMPALA train through the same document.

Budgets are stop conditions in the document (wall seconds as a safety net); the assertions are
about learning (the return reached), not about time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from run_helpers import REPO, SrlRun, experiment_file

pytestmark = pytest.mark.integration

CARTPOLE = REPO / "examples/cartpole.yaml"
SPREAD = REPO / "examples/two-agent-spread.yaml"


def _cartpole_ppo(**changes: object) -> dict:
    ppo = yaml.safe_load(CARTPOLE.read_text())["spec"]["algorithm"]["ppo"]
    return {**ppo, **changes}


def _solves(tmp_path: Path, algorithm: dict, target: float = 475.0) -> dict:
    path = experiment_file(tmp_path, CARTPOLE, algorithm=algorithm, stop={"targetMeanReturn": target, "wallSeconds": 900})
    run = SrlRun(tmp_path, path)
    summary = run.wait(timeout=1000)
    assert summary["stop_reason"] == "target_mean_return", f"{summary}\n{run.log()}"
    assert summary["mean_return"] >= target, summary
    return summary


def test_ppg_solves_cartpole(tmp_path: Path) -> None:
    summary = _solves(tmp_path, {"ppo": _cartpole_ppo(), "ppg": {"policyIterations": 8, "auxEpochs": 2, "auxMinibatches": 8}})
    print("PPG solved CartPole:", summary)


def test_dual_clip_ppo_solves_cartpole(tmp_path: Path) -> None:
    summary = _solves(tmp_path, {"ppo": _cartpole_ppo(dualClip=3.0)})
    print("dual-clip PPO solved CartPole:", summary)


def test_mappo_example_learns_its_cooperative_task(tmp_path: Path) -> None:
    doc = yaml.safe_load(SPREAD.read_text())["spec"]
    target = doc["stop"]["targetMeanReturn"]
    assert doc["policy"]["centralizedValue"] is True and target >= 7.0  # random play returns ~0.8
    path = experiment_file(tmp_path, SPREAD, stop={**doc["stop"], "wallSeconds": 900})
    run = SrlRun(tmp_path, path)
    summary = run.wait(timeout=1000)
    assert summary["stop_reason"] == "target_mean_return", f"{summary}\n{run.log()}"
    assert summary["mean_return"] >= target, summary


@pytest.mark.parametrize("streams", ["shm", "zmq"])
def test_centralised_critic_input_crosses_policy_workers(tmp_path: Path, streams: str) -> None:
    """critic_obs travels in inference requests and samples like obs does; evaluation plays with it."""
    path = experiment_file(
        tmp_path, SPREAD,
        policyWorkers={"replicas": 1, "batchSize": 64},
        streams={"inference": streams, "sample": streams},
        evaluation={"enabled": True, "intervalSeconds": 1.0, "episodes": 2},
        stop={"trainSteps": 4, "wallSeconds": 300},
    )  # fmt: skip
    run = SrlRun(tmp_path, path)
    summary = run.wait(timeout=360)
    assert summary["stop_reason"] == "train_steps", f"{summary}\n{run.log()}"
    assert summary["policy_version"] >= 4, summary


@pytest.mark.parametrize(
    ("algorithm", "trainers", "stat"),
    [
        ({"impala": {}}, 1, "mean_rho"),
        ({"ppo": _cartpole_ppo(offPolicyCorrection="vtrace", popart=True)}, 1, "approx_kl"),
        ({"ppo": _cartpole_ppo(), "ppg": {"policyIterations": 2, "auxEpochs": 1}}, 1, "aux_phases"),
        # Two trainers: PopArt statistics and PPG's auxiliary head go through the group too.
        ({"ppo": _cartpole_ppo(popart=True), "ppg": {"policyIterations": 2, "auxEpochs": 1}}, 2, "aux_phases"),
    ],
    ids=["impala", "ppo-vtrace-popart", "ppg", "two-trainers-ppg-popart"],
)
def test_learner_trains_from_srl_run(tmp_path: Path, algorithm: dict, trainers: int, stat: str) -> None:
    path = experiment_file(
        tmp_path, CARTPOLE, algorithm=algorithm, trainers={"replicas": trainers},
        actors={"replicas": trainers}, stop={"trainSteps": 100_000, "wallSeconds": 400, "targetMeanReturn": None},
    )  # fmt: skip
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    run = SrlRun(tmp_path, path)
    try:
        # The trainer's progress record carries the statistics of its last step (read while it is alive).
        state = run.wait_for(
            lambda s: s["train_steps"] >= 6 and stat in _trainer_stats(run.run_dir, name), 360, f"6 train steps reporting {stat}"
        )
        stats = _trainer_stats(run.run_dir, name)
    finally:
        run.stop()
    assert state["train_steps"] >= 6
    assert math.isfinite(stats[stat]) and math.isfinite(stats["policy_loss"]), stats
    assert stats.get("aux_phases", 1.0) >= 1.0, stats


def _trainer_stats(run_dir: Path, name: str) -> dict[str, float]:
    """The statistics of trainer 0's last step, from its progress record ({} before there is one)."""
    from srl_runtime.name_records import keys
    from srl_runtime.name_records.directory import DirectoryNameRecords

    nr = DirectoryNameRecords(run_dir / "name_records")
    try:
        progress = [json.loads(v) for v in nr.get_subtree(keys.progress_root(keys.experiment_root(name)))]
    except Exception:  # noqa: BLE001 - the directory appears with the first worker
        return {}
    finally:
        nr.close()
    trainers = [p for p in progress if p.get("role") == "trainer" and p.get("index", 0) == 0]
    return trainers[0].get("stats", {}) if trainers else {}
