"""The reconcile loop over an in-memory object store with the API server's create/delete semantics
(409 on duplicate names, 404 on missing ones). The cluster tier runs the same code against a real
kube-apiserver; here we check idempotency and ordering quickly."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from srl_operator.config import OperatorConfig
from srl_operator.kube import Children, Kube
from srl_operator.reconcile import parse_body, reconcile
from srl_runtime.config.load import InvalidExperiment

pytestmark = pytest.mark.unit

CFG = OperatorConfig(redis_timeout=0.2)


class MemoryKube(Kube):
    """Kube with the API replaced by a dict of (kind, name) -> object."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.concurrency = 4

    def list_children(self, namespace: str, experiment: str) -> Children:
        def of(kind: str) -> list[dict[str, Any]]:
            return [
                copy.deepcopy(o)
                for (k, _), o in self.objects.items()
                if k == kind and o["metadata"]["labels"].get("srl.dev/experiment") == experiment
            ]

        return Children(of("Pod"), of("Service"), of("ConfigMap"), of("PersistentVolumeClaim"), of("Deployment"))

    def create(self, obj: dict[str, Any]) -> bool:
        key = (obj["kind"], obj["metadata"]["name"])
        self.calls.append(("create", *key))
        if key in self.objects:
            return False
        self.objects[key] = json.loads(json.dumps(obj))
        return True

    def delete(self, kind: str, namespace: str, name: str, grace_seconds: int | None = None) -> bool:
        self.calls.append(("delete", kind, name))
        return self.objects.pop((kind, name), None) is not None

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch", kind, name))
        if (kind, name) not in self.objects:
            raise ApiException(status=404)
        self.objects[(kind, name)].update(patch)

    def set_phase(self, name: str, phase: str, ready: bool = False) -> None:
        self.objects[("Pod", name)]["status"] = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }


def body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "environment": {"id": "CartPole-v1"},
        "stop": {"trainSteps": 100},
        "nameRecords": {"redisAddress": "127.0.0.1:1"},  # nothing listens: the unreachable path
    }
    base.update(spec)
    return {
        "apiVersion": "srl.dev/v1alpha1",
        "kind": "RLExperiment",
        "metadata": {"name": "cp", "namespace": "ml", "uid": "uid-1", "generation": 1},
        "spec": base,
    }


def names(kube: MemoryKube, kind: str) -> list[str]:
    return sorted(n for k, n in kube.objects if k == kind)


def test_creates_children_with_owner_references_and_is_idempotent() -> None:
    kube = MemoryKube()
    out = reconcile(body(actors={"replicas": 3}), kube, CFG, "t0")
    assert names(kube, "Pod") == ["cp-actor-0", "cp-actor-1", "cp-actor-2", "cp-trainer-0"]
    assert names(kube, "ConfigMap") == ["cp-experiment"]
    assert names(kube, "PersistentVolumeClaim") == ["cp-params"]
    assert names(kube, "Service") == ["cp-trainer"]  # redisAddress is set: no Redis of our own
    assert names(kube, "Deployment") == []
    for obj in kube.objects.values():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "name": "cp", "uid": "uid-1",
            "controller": True, "blockOwnerDeletion": True,
        }  # fmt: skip
    assert out.status["phase"] == "Pending"
    assert any(reason == "Created" for _, reason, _ in out.events)
    nr = next(c for c in out.status["conditions"] if c["type"] == "NameRecordsReachable")
    assert nr["status"] == "False"

    kube.calls.clear()
    reconcile(body(actors={"replicas": 3}), kube, CFG, "t1")
    assert [c for c in kube.calls if c[0] != "patch"] == []  # converged: no writes at all


def test_in_cluster_redis_is_created_when_no_address_is_given() -> None:
    kube = MemoryKube()
    b = body()
    del b["spec"]["nameRecords"]
    cfg = OperatorConfig(redis_timeout=0.2, redis_host_suffix="invalid")
    reconcile(b, kube, cfg, "t0")
    assert names(kube, "Deployment") == ["cp-redis"]
    assert names(kube, "Service") == ["cp-redis", "cp-trainer"]
    # Pointing the spec at an external Redis removes ours.
    reconcile(body(), kube, CFG, "t1")
    assert names(kube, "Deployment") == [] and names(kube, "Service") == ["cp-trainer"]


def test_running_failed_replaced_scaled_suspended_resumed() -> None:
    kube = MemoryKube()
    reconcile(body(actors={"replicas": 2}), kube, CFG, "t0")
    for name in names(kube, "Pod"):
        kube.set_phase(name, "Running", ready=True)
    out = reconcile(body(actors={"replicas": 2}), kube, CFG, "t1")
    assert out.status["phase"] == "Running" and out.status["actorsReady"] == "2/2"

    kube.set_phase("cp-actor-1", "Failed")
    out = reconcile(body(actors={"replicas": 2}), kube, CFG, "t2", )
    assert ("delete", "Pod", "cp-actor-1") in kube.calls
    assert out.status["actors"]["restarts"] == 1
    reconcile(body(actors={"replicas": 2}), kube, CFG, "t3")
    assert "cp-actor-1" in names(kube, "Pod")  # recreated once gone

    reconcile(body(actors={"replicas": 5}), kube, CFG, "t4")
    assert names(kube, "Pod") == [f"cp-actor-{i}" for i in range(5)] + ["cp-trainer-0"]
    reconcile(body(actors={"replicas": 1}), kube, CFG, "t5")
    assert names(kube, "Pod") == ["cp-actor-0", "cp-trainer-0"]
    cm = kube.objects[("ConfigMap", "cp-experiment")]
    assert "replicas: 1" in cm["data"]["experiment.yaml"]

    out = reconcile(body(actors={"replicas": 1}, suspend=True), kube, CFG, "t6")
    assert names(kube, "Pod") == [] and names(kube, "PersistentVolumeClaim") == ["cp-params"]
    assert out.status["phase"] == "Suspended"
    reconcile(body(actors={"replicas": 1}, suspend=False), kube, CFG, "t7")
    assert names(kube, "Pod") == ["cp-actor-0", "cp-trainer-0"]


def test_trainer_exit_zero_succeeds_and_nothing_is_recreated() -> None:
    kube = MemoryKube()
    reconcile(body(), kube, CFG, "t0")
    kube.set_phase("cp-trainer-0", "Succeeded")
    kube.objects.pop(("Pod", "cp-actor-0"))
    b = body()
    out = reconcile(b, kube, CFG, "t1")
    assert out.status["phase"] == "Succeeded"
    b["status"] = out.status
    reconcile(b, kube, CFG, "t2")
    assert names(kube, "Pod") == ["cp-trainer-0"]


def test_invalid_spec_fails_naming_the_field_once() -> None:
    kube = MemoryKube()
    b = body(actors={"replicas": -1})
    out = reconcile(b, kube, CFG, "t0")
    assert out.invalid is not None and "spec.actors.replicas" in out.invalid
    assert out.status["phase"] == "Failed"
    assert out.events and out.events[0][1] == "InvalidSpec"
    assert kube.objects == {}
    b["status"] = out.status
    assert reconcile(b, kube, CFG, "t1").events == []  # the same problem is not announced again


def test_parse_body_uses_only_name_and_namespace_of_metadata() -> None:
    b = body()
    b["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert parse_body(b).metadata.name == "cp"
    b["spec"]["stop"] = {}
    with pytest.raises(InvalidExperiment):
        parse_body(b)


def test_refused_pods_are_reported_in_status_not_raised() -> None:
    class RefusingKube(MemoryKube):
        def create(self, obj: dict[str, Any]) -> bool:
            if obj["kind"] == "Pod" and obj["metadata"]["name"].endswith("actor-1"):
                raise ApiException(status=403, reason="Forbidden")
            return super().create(obj)

    kube = RefusingKube()
    out = reconcile(body(actors={"replicas": 2}), kube, CFG, "t0")
    assert names(kube, "Pod") == ["cp-actor-0", "cp-trainer-0"]
    cond = next(c for c in out.status["conditions"] if c["type"] == "Reconciled")
    assert cond["status"] == "False" and "403 Forbidden" in cond["message"]
    assert any(reason == "ApiError" for _, reason, _ in out.events)
