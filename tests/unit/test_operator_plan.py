"""Pod plans and status: pure functions of the spec and what was observed."""

from __future__ import annotations

import datetime
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
    # servers first, then the actors (a large experiment's trainer does not wait behind them)
    assert [p["metadata"]["name"] for p in plan.create] == [
        "cp-trainer-0", "cp-policy-0", "cp-eval-0", "cp-actor-0", "cp-actor-1", "cp-actor-2",
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
    # The failed pod's replacement comes in the same round (a failed pod is deleted at once), counting
    # the restart; actor-1 is still terminating; actor-2 finished on its own.
    assert [p["metadata"]["name"] for p in plan.create] == ["cp-actor-0"]
    assert plan.create[0]["metadata"]["annotations"]["srl.dev/restarts"] == "1"
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


# --------------------------------------------------------------------------- restarts: backoff and limit

T0 = "2025-01-01T00:00:00Z"


def at(seconds: float) -> datetime.datetime:
    return datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=seconds)


def crashed(
    exp: Any, role: str, index: int, restarts: int = 0, finished: str = T0, log: str = "boom", **status: Any
) -> ObservedPod:
    """A pod of the current template whose worker container exited 1 at `finished`."""
    pod = worker_pod(exp, role, index, CFG)  # type: ignore[arg-type]
    if restarts:
        pod["metadata"]["annotations"]["srl.dev/restarts"] = str(restarts)
    pod["status"] = {
        "phase": "Failed",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": finished}],
        "containerStatuses": [{"name": "worker", "state": {"terminated": {
            "exitCode": 1, "reason": "Error", "message": log, "finishedAt": finished}}}],
        **status,
    }  # fmt: skip
    return observe_pod(pod)


def test_observed_failure_fields() -> None:
    exp = experiment()
    pod = crashed(exp, "actor", 0, restarts=3, finished="2025-01-01T00:00:07Z", log="line 1\nTraceback ...\nValueError: x")
    assert (pod.restarts, pod.failed_at, pod.exit_summary) == (3, at(7), "exit code 1 (Error)")
    assert pod.last_log.endswith("ValueError: x") and not pod.disrupted
    evicted = crashed(exp, "actor", 0, reason="Evicted")
    preempted = crashed(exp, "actor", 0, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    assert evicted.disrupted and preempted.disrupted


def test_failed_pod_waits_out_its_exponential_backoff() -> None:
    """failurePolicy.backoffSeconds 2, doubling: the third restart waits 2 * 2**2 = 8 s after the failure."""
    exp = experiment(failurePolicy={"backoffSeconds": 2, "maxBackoffSeconds": 60})
    pods = [crashed(exp, "actor", 0, restarts=2), running(exp, "trainer", 0)]
    early = plan_pods(exp, pods, CFG, now=at(5))
    assert early.backing_off == {"cp-actor-0": 3.0} and not early.delete_failed and not early.create
    due = plan_pods(exp, pods, CFG, now=at(8.5))
    assert due.delete_failed == ["cp-actor-0"] and not due.backing_off
    (replacement,) = due.create
    assert replacement["metadata"]["annotations"]["srl.dev/restarts"] == "3"
    # The count is outside the template: the replacement is not "stale".
    assert plan_pods(exp, [observe_pod({**replacement, "status": {"phase": "Running"}}), pods[1]], CFG, now=at(9)).empty
    capped = experiment(failurePolicy={"backoffSeconds": 2, "maxBackoffSeconds": 10})
    assert plan_pods(capped, [crashed(capped, "actor", 0, restarts=9)], CFG, now=at(9)).backing_off == {"cp-actor-0": 1.0}


def test_worker_out_of_restarts_fails_the_run_keeping_its_pod() -> None:
    exp = experiment(actors={"replicas": 3, "restartLimit": 2})
    failed = crashed(exp, "actor", 1, restarts=2)
    pods = [running(exp, "actor", 0), failed, running(exp, "trainer", 0),
            running(exp, "trainer", 0, phase="Succeeded", ready=False, name="cp-trainer-9")]  # fmt: skip
    plan = plan_pods(exp, pods, CFG, now=at(3600))
    assert plan.failed and plan.exhausted == [failed]
    assert not plan.create and not plan.delete_failed  # actor-2 is missing: not created either
    assert plan.delete_extra == ["cp-actor-0", "cp-trainer-0"]  # the failed and the finished stay
    # One restart left: replaced as usual.
    assert plan_pods(exp, [crashed(exp, "actor", 1, restarts=1)], CFG, now=at(3600)).delete_failed == ["cp-actor-1"]
    # A raised limit (the same template: restart settings are not part of it) lets the worker go on.
    raised = plan_pods(experiment(actors={"replicas": 3, "restartLimit": 5}), [failed], CFG, now=at(3600))
    assert not raised.failed and raised.delete_failed == ["cp-actor-1"]
    assert [p["metadata"]["annotations"].get("srl.dev/restarts") for p in raised.create if p["metadata"]["name"] == "cp-actor-1"] == ["3"]


def test_a_failed_run_stays_failed_for_its_spec() -> None:
    exp = experiment(actors={"replicas": 2})
    plan = plan_pods(exp, [running(exp, "actor", 0)], CFG, failed=True)
    assert plan.failed and plan.delete_extra == ["cp-actor-0"] and not plan.create


def test_disruptions_are_replaced_at_once_and_not_counted() -> None:
    exp = experiment(actors={"restartLimit": 1}, failurePolicy={"backoffSeconds": 30})
    evicted = crashed(exp, "actor", 0, restarts=1, reason="Evicted")
    plan = plan_pods(exp, [evicted], CFG, now=at(1))
    assert not plan.failed and plan.delete_failed == ["cp-actor-0"]
    (replacement,) = [p for p in plan.create if p["metadata"]["name"] == "cp-actor-0"]
    assert replacement["metadata"]["annotations"]["srl.dev/restarts"] == "1"


def test_failed_pod_of_an_older_spec_starts_afresh() -> None:
    old = experiment(actors={"restartLimit": 0}, cluster={"image": "broken:1"})
    new = experiment(actors={"restartLimit": 0}, cluster={"image": "fixed:2"})
    plan = plan_pods(new, [crashed(old, "actor", 0, restarts=5)], CFG, now=at(0))
    assert not plan.failed and plan.delete_failed == ["cp-actor-0"]
    assert "srl.dev/restarts" not in [p for p in plan.create if p["metadata"]["name"] == "cp-actor-0"][0]["metadata"]["annotations"]


def test_failure_message_names_the_worker_the_limit_and_its_last_log_lines() -> None:
    from srl_operator import restarts

    exp = experiment(trainers={"restartLimit": 4})
    log = "\n".join(f"log line {i}" for i in range(30)) + "\n" + "x" * 500 + "\n"
    pod = crashed(exp, "trainer", 0, restarts=4, log=log)
    text = restarts.failure_message(exp, [pod])
    head, _, tail = text.partition("; last log lines:\n")
    assert head == "cp-trainer-0 failed after 4 restarts (spec.trainers.restartLimit 4); exit code 1 (Error)"
    lines = tail.split("\n")
    assert lines[:9] == [f"log line {i}" for i in range(21, 30)] and len(lines) == restarts.LOG_LINES
    assert lines[-1] == "x" * 197 + "..."
    short = restarts.failure_message(exp, [pod], max_chars=400)  # an Event: the newest lines stay
    assert len(short) <= 400 and short.startswith(head) and short.endswith("x" * 197 + "...")


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


def test_failure_fails_the_phase_with_a_condition_and_backoff_shows_in_workers_ready() -> None:
    exp = experiment()
    pods = [crashed(exp, "actor", 0, restarts=1), running(exp, "trainer", 0)]
    st = experiment_status(exp, Observation(pods=pods, backing_off={"cp-actor-0": 3.2}), {}, NOW, 1)
    ready = next(c for c in st["conditions"] if c["type"] == "WorkersReady")
    assert "cp-actor-0: failed (exit code 1 (Error)), restart 2 of 10 in 3s" in ready["message"], ready
    assert next(c for c in st["conditions"] if c["type"] == "Failed")["status"] == "False"
    st = experiment_status(exp, Observation(pods=pods, failure="cp-actor-0 failed after 10 restarts"), st, NOW, 1)
    assert st["phase"] == "Failed"
    cond = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "RestartLimitExceeded", "cp-actor-0 failed after 10 restarts")
