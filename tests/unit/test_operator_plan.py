"""Pod plans and status: pure functions of the spec and what was observed."""

from __future__ import annotations

from typing import Any

import pytest

from srl_operator.builders.pods import worker_pod
from srl_operator.config import OperatorConfig
from srl_operator.observed import ObservedPod, observe_pod
from srl_operator.plan import plan_pods
from srl_operator.status import Observation, experiment_status, invalid_spec_status
from srl_runtime.config.load import parse_experiment

pytestmark = pytest.mark.unit

CFG = OperatorConfig()
NOW = "2025-01-01T00:00:00Z"


def experiment(**spec: Any) -> Any:
    base: dict[str, Any] = {"environment": {"id": "CartPole-v1"}, "stop": {"trainSteps": 100}}
    base.update(spec)
    return parse_experiment(
        {"apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "cp", "namespace": "ml"}, "spec": base}
    )


def running(exp: Any, role: str, index: int, phase: str = "Running", ready: bool = True, **meta: Any) -> ObservedPod:
    """An observed pod as the API server would return it for the current template."""
    pod = worker_pod(exp, role, index, CFG)  # type: ignore[arg-type]
    pod["metadata"].update(meta)
    pod["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return observe_pod(pod)


def test_fresh_experiment_creates_every_worker() -> None:
    exp = experiment(actors={"replicas": 3}, policyWorkers={"replicas": 1}, evaluation={"enabled": True})
    plan = plan_pods(exp, [], CFG)
    assert [p["metadata"]["name"] for p in plan.create] == [
        "cp-actor-0", "cp-actor-1", "cp-actor-2", "cp-policy-0", "cp-trainer-0", "cp-eval-0",
    ]  # fmt: skip
    assert not (plan.delete_extra or plan.delete_failed or plan.delete_stale)


def test_converged_experiment_has_an_empty_plan() -> None:
    exp = experiment(actors={"replicas": 2})
    pods = [running(exp, "actor", 0), running(exp, "actor", 1), running(exp, "trainer", 0)]
    assert plan_pods(exp, pods, CFG).empty


def test_scale_down_deletes_highest_indices_first() -> None:
    exp8 = experiment(actors={"replicas": 8})
    pods = [running(exp8, "actor", i) for i in range(8)] + [running(exp8, "trainer", 0)]
    plan = plan_pods(experiment(actors={"replicas": 2}), pods, CFG)
    assert plan.delete_extra == [f"cp-actor-{i}" for i in range(7, 1, -1)]
    assert not plan.create


def test_scale_up_creates_only_the_missing_indices() -> None:
    exp = experiment(actors={"replicas": 4})
    pods = [running(exp, "actor", i) for i in range(4)] + [running(exp, "trainer", 0)]
    plan = plan_pods(experiment(actors={"replicas": 8}), pods, CFG)
    assert [p["metadata"]["name"] for p in plan.create] == [f"cp-actor-{i}" for i in range(4, 8)]


def test_failed_pod_is_replaced_and_terminating_pod_awaited() -> None:
    exp = experiment(actors={"replicas": 3})
    pods = [
        running(exp, "actor", 0, phase="Failed", ready=False),
        running(exp, "actor", 1, deletionTimestamp="2025-01-01T00:00:00Z"),
        running(exp, "actor", 2, phase="Succeeded", ready=False),
        running(exp, "trainer", 0),
    ]
    plan = plan_pods(exp, pods, CFG)
    assert plan.delete_failed == ["cp-actor-0"]
    assert not plan.create  # actor-1 is still terminating; actor-2 finished on its own
    assert not plan.delete_extra


def test_stale_template_is_replaced() -> None:
    old = experiment(cluster={"image": "old:1"})
    new = experiment(cluster={"image": "new:2"})
    plan = plan_pods(new, [running(old, "actor", 0), running(new, "trainer", 0)], CFG)
    assert plan.delete_stale == ["cp-actor-0"]


def test_suspend_deletes_all_workers() -> None:
    exp = experiment(actors={"replicas": 2})
    pods = [running(exp, "actor", 0), running(exp, "actor", 1), running(exp, "trainer", 0)]
    plan = plan_pods(experiment(actors={"replicas": 2}, suspend=True), pods, CFG)
    assert sorted(plan.delete_extra) == ["cp-actor-0", "cp-actor-1", "cp-trainer-0"]
    assert not plan.create


def test_finished_experiment_creates_nothing() -> None:
    exp = experiment(actors={"replicas": 2})
    plan = plan_pods(exp, [running(exp, "trainer", 0, phase="Succeeded", ready=False)], CFG, finished=True)
    assert plan.empty


def test_unknown_pods_of_the_experiment_are_removed() -> None:
    exp = experiment()
    stray = ObservedPod("cp-actor-x", "actor", None, "Running", True, False, None)
    plan = plan_pods(exp, [running(exp, "actor", 0), running(exp, "trainer", 0), stray], CFG)
    assert plan.delete_extra == ["cp-actor-x"]


def test_pods_without_a_role_are_never_deleted() -> None:
    """The Redis Deployment's pod carries the experiment label but no role: not a worker, not ours."""
    exp = experiment()
    redis_pod = ObservedPod("cp-redis-7d9f-abcde", None, None, "Running", True, False, None)
    plan = plan_pods(exp, [running(exp, "actor", 0), running(exp, "trainer", 0), redis_pod], CFG)
    assert plan.empty, plan


# --------------------------------------------------------------------------- status


def test_pending_until_trainers_and_an_actor_are_ready() -> None:
    exp = experiment(actors={"replicas": 2})
    pods = [running(exp, "actor", 0, phase="Pending", ready=False), running(exp, "trainer", 0)]
    status = experiment_status(exp, Observation(pods=pods), {}, NOW, 1)
    assert status["phase"] == "Pending"
    assert status["actors"] == {
        "desired": 2, "replicas": 1, "ready": 0, "restarts": 0, "selector": "srl.dev/experiment=cp,srl.dev/role=actor",
    }  # fmt: skip
    assert status["actorsReady"] == "0/2"
    pods[0] = running(exp, "actor", 0)
    status = experiment_status(exp, Observation(pods=pods), status, NOW, 1)
    assert status["phase"] == "Running"
    ready = next(c for c in status["conditions"] if c["type"] == "WorkersReady")
    assert ready["status"] == "False" and "actors 1/2" in ready["message"]


def test_succeeded_when_trainers_exit_zero_and_it_sticks() -> None:
    exp = experiment()
    pods = [running(exp, "trainer", 0, phase="Succeeded", ready=False)]
    status = experiment_status(exp, Observation(pods=pods), {"phase": "Running"}, NOW, 1)
    assert status["phase"] == "Succeeded"
    assert next(c for c in status["conditions"] if c["type"] == "Complete")["status"] == "True"
    assert experiment_status(exp, Observation(pods=[]), status, NOW, 1)["phase"] == "Succeeded"


def test_a_trainer_pod_being_deleted_is_not_a_finished_trainer() -> None:
    """A graceful delete (SIGTERM) must never read as the trainer finishing the experiment."""
    exp = experiment()
    leaving = running(exp, "trainer", 0, phase="Succeeded", ready=False, deletionTimestamp="2025-01-01T00:00:00Z")
    st = experiment_status(exp, Observation(pods=[running(exp, "actor", 0), leaving]), {}, NOW, 1)
    assert st["phase"] != "Succeeded", st


def test_stop_reason_in_status_and_complete_condition() -> None:
    exp = experiment()
    pods = [running(exp, "actor", 0), running(exp, "trainer", 0, phase="Succeeded", ready=False)]
    st = experiment_status(exp, Observation(pods=pods, summary={"stop_reason": "target_mean_return"}), {}, NOW, 1)
    assert st["phase"] == "Succeeded" and st["stopReason"] == "target_mean_return"
    complete = next(c for c in st["conditions"] if c["type"] == "Complete")
    assert complete["status"] == "True" and "target_mean_return" in complete["message"], complete


def test_suspended_phase() -> None:
    exp = experiment(suspend=True)
    status = experiment_status(exp, Observation(pods=[]), {"phase": "Running"}, NOW, 2)
    assert status["phase"] == "Suspended"
    assert status["actors"]["desired"] == 0


def test_summary_from_name_records_and_kept_when_unreachable() -> None:
    exp = experiment()
    pods = [running(exp, "actor", 0), running(exp, "trainer", 0)]
    summary = {"policy_version": 12, "frames_per_second": 3400.5, "env_frames": 10_000, "train_steps": 40, "mean_return": 99.5}
    status = experiment_status(exp, Observation(pods=pods, summary=summary), {}, NOW, 1)
    assert (status["policyVersion"], status["framesPerSecond"], status["envFrames"]) == (12, 3400.5, 10_000)
    nr = next(c for c in status["conditions"] if c["type"] == "NameRecordsReachable")
    assert nr["status"] == "True" and nr["reason"] == "Reachable"
    later = experiment_status(exp, Observation(pods=pods, name_records_error="redis down"), status, "2025-01-01T00:01:00Z", 1)
    assert later["policyVersion"] == 12 and later["framesPerSecond"] == 3400.5
    nr = next(c for c in later["conditions"] if c["type"] == "NameRecordsReachable")
    assert (nr["status"], nr["reason"], nr["message"], nr["lastTransitionTime"]) == (
        "False", "Unreachable", "redis down", "2025-01-01T00:01:00Z",
    )  # fmt: skip
    spec_valid = next(c for c in later["conditions"] if c["type"] == "SpecValid")
    assert spec_valid["lastTransitionTime"] == NOW  # unchanged conditions keep their time


def test_bad_summary_values_are_ignored() -> None:
    exp = experiment()
    status = experiment_status(exp, Observation(pods=[], summary={"policy_version": "x", "frames_per_second": float("nan")}), {}, NOW, 1)
    assert "policyVersion" not in status and "framesPerSecond" not in status


def test_restarts_accumulate() -> None:
    exp = experiment()
    status = experiment_status(exp, Observation(pods=[], replaced={"actor": 2}), {"actors": {"restarts": 3}}, NOW, 1)
    assert status["actors"]["restarts"] == 5


def test_invalid_spec_status_names_the_field() -> None:
    status = invalid_spec_status({}, "spec.actors.replicas: must be >= 0", NOW, 3)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["message"] == "spec.actors.replicas: must be >= 0"
