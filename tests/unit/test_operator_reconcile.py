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
from srl_operator.observed import observe_pod
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

        return Children(
            [observe_pod(p) for p in of("Pod")], of("Service"), of("ConfigMap"), of("PersistentVolumeClaim"), of("Deployment"), of("NetworkPolicy")
        )

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name))
        obj = self.objects.get((kind, name))
        return copy.deepcopy(obj) if obj is not None else None

    def create(self, obj: dict[str, Any]) -> bool:
        key = (obj["kind"], obj["metadata"]["name"])
        self.calls.append(("create", *key))
        if key in self.objects:
            return False
        self.objects[key] = json.loads(json.dumps(obj))
        return True

    def delete(
        self, kind: str, namespace: str, name: str, grace_seconds: int | None = None, experiment: str | None = None
    ) -> bool:
        self.calls.append(("delete", kind, name))
        return self.objects.pop((kind, name), None) is not None

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch", kind, name))
        if (kind, name) not in self.objects:
            raise ApiException(status=404)
        _merge(self.objects[(kind, name)], patch)

    def set_phase(self, name: str, phase: str, ready: bool = False) -> None:
        self.objects[("Pod", name)]["status"] = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """A JSON merge patch (RFC 7386): maps merge, lists and scalars replace, null removes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


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
    assert names(kube, "Secret") == []  # someone else's Redis: no password of ours
    assert names(kube, "NetworkPolicy") == ["cp-isolation"]
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


def test_status_is_written_before_the_first_pod_and_after_every_batch() -> None:
    """A large experiment shows its phase and counts while its pods are created, batch by batch."""
    kube = MemoryKube()
    writes: list[tuple[int, dict[str, Any]]] = []  # (pods existing at the write, what was written)

    def write_status(status: dict[str, Any]) -> None:
        writes.append((len(names(kube, "Pod")), copy.deepcopy(status)))

    cfg = OperatorConfig(redis_timeout=0.2, create_batch=10)
    out = reconcile(body(actors={"replicas": 35}), kube, cfg, "t0", write_status)
    assert len(names(kube, "Pod")) == 36
    seen = [(pods, w["actors"]["desired"], w["actors"]["replicas"], w["phase"]) for pods, w in writes]
    # before any pod, then after 10, 20, 30 and 36 pods: the trainer first, then 35 actors
    assert seen == [(0, 35, 0, "Pending"), (10, 35, 9, "Pending"), (20, 35, 19, "Pending"),
                    (30, 35, 29, "Pending"), (36, 35, 35, "Pending")], seen  # fmt: skip
    assert writes[1][1]["trainers"]["replicas"] == 1
    assert all(set(w) <= {"phase", "actors", "policyWorkers", "trainers", "evaluation", "actorsReady",
                          "observedGeneration"} for _, w in writes)  # fmt: skip
    assert out.status["actors"]["replicas"] == 35  # the final status counts the pods it created

    writes.clear()
    reconcile(body(actors={"replicas": 35}), kube, cfg, "t1", write_status)
    assert writes == []  # nothing to create: no progress writes


def test_in_cluster_redis_is_created_when_no_address_is_given() -> None:
    kube = MemoryKube()
    b = body()
    del b["spec"]["nameRecords"]
    cfg = OperatorConfig(redis_timeout=0.2, redis_host_suffix="invalid")
    reconcile(b, kube, cfg, "t0")
    assert names(kube, "Deployment") == ["cp-redis"]
    assert names(kube, "Service") == ["cp-redis", "cp-trainer"]
    assert names(kube, "Secret") == ["cp-redis-auth"]
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


def test_parse_body_uses_name_namespace_labels_and_annotations_of_metadata() -> None:
    b = body()
    b["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    b["metadata"]["labels"] = {"team": "rl"}
    b["metadata"]["annotations"] = {"owner": "ada"}
    meta = parse_body(b).metadata
    assert (meta.name, meta.labels, meta.annotations) == ("cp", {"team": "rl"}, {"owner": "ada"})
    assert "managedFields" not in meta.model_dump(by_alias=True)
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


def _own_redis_body() -> dict[str, Any]:
    b = body()
    del b["spec"]["nameRecords"]
    return b


OWN_REDIS = OperatorConfig(redis_timeout=0.2, redis_host_suffix="invalid")


def test_redis_password_secret_is_created_once_and_never_rewritten() -> None:
    from srl_operator.builders.secrets import password_of

    kube = MemoryKube()
    out = reconcile(_own_redis_body(), kube, OWN_REDIS, "t0")
    secret = kube.objects[("Secret", "cp-redis-auth")]
    password = password_of(secret)
    assert password and len(password) >= 40
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert ("Normal", "Created", "created Secret cp-redis-auth") in out.events
    assert password not in json.dumps(out.status) + json.dumps(out.events)
    # Redis and every worker read it by reference; it is in no manifest.
    everything = json.dumps([o for k, o in kube.objects.items() if k[0] != "Secret"])
    assert password not in everything
    dep = kube.objects[("Deployment", "cp-redis")]["spec"]["template"]["spec"]["containers"][0]
    assert "--protected-mode" not in dep["args"] and dep["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    pod_env = {e["name"]: e for e in kube.objects[("Pod", "cp-trainer-0")]["spec"]["containers"][0]["env"]}
    assert pod_env["SRL_NAME_RECORDS_REDIS_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "cp-redis-auth", "key": "password"}
    }

    for t in ("t1", "t2"):  # later rounds (and a restarted operator: no memory involved) reuse it
        reconcile(_own_redis_body(), kube, OWN_REDIS, t)
    assert password_of(kube.objects[("Secret", "cp-redis-auth")]) == password
    assert [c for c in kube.calls if c[1] == "Secret" and c[0] != "get"] == [("create", "Secret", "cp-redis-auth")]


def test_secret_created_concurrently_wins() -> None:
    """A create that loses the race (409) adopts the password of the Secret that won."""
    from srl_operator.builders.secrets import password_of, redis_auth_secret
    from srl_operator.reconcile import parse_body

    class RacingKube(MemoryKube):
        def create(self, obj: dict[str, Any]) -> bool:
            if obj["kind"] == "Secret" and ("Secret", obj["metadata"]["name"]) not in self.objects:
                theirs = redis_auth_secret(parse_body(_own_redis_body()), "the-other-one")
                self.objects[("Secret", obj["metadata"]["name"])] = theirs
            return super().create(obj)

    kube = RacingKube()
    reconcile(_own_redis_body(), kube, OWN_REDIS, "t0")
    assert password_of(kube.objects[("Secret", "cp-redis-auth")]) == "the-other-one"


def test_outdated_redis_deployment_is_updated_in_place() -> None:
    """An experiment from before passwords: its Redis Deployment gets the password (and the new hash)."""
    kube = MemoryKube()
    reconcile(_own_redis_body(), kube, OWN_REDIS, "t0")
    dep = kube.objects[("Deployment", "cp-redis")]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
    del container["env"]
    dep["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    out = reconcile(_own_redis_body(), kube, OWN_REDIS, "t1")
    assert ("patch", "Deployment", "cp-redis") in kube.calls
    assert any(r == "Updated" and "Deployment cp-redis" in m for _, r, m in out.events)
    dep = kube.objects[("Deployment", "cp-redis")]
    assert "--requirepass" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    kube.calls.clear()
    reconcile(_own_redis_body(), kube, OWN_REDIS, "t2")
    assert not [c for c in kube.calls if c[0] == "patch" and c[1] == "Deployment"]


def test_network_policy_follows_the_operator_config() -> None:
    kube = MemoryKube()
    reconcile(body(), kube, CFG, "t0")
    peers = kube.objects[("NetworkPolicy", "cp-isolation")]["spec"]["ingress"][0]["from"]
    assert peers == [{"podSelector": {"matchLabels": {"srl.dev/experiment": "cp"}}}]
    moved = OperatorConfig(redis_timeout=0.2, operator_namespace="srl-system", operator_pod_labels=(("app", "op"),))
    out = reconcile(body(), kube, moved, "t1")
    peers = kube.objects[("NetworkPolicy", "cp-isolation")]["spec"]["ingress"][0]["from"]
    assert peers[1]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "srl-system"}}
    assert any(r == "Updated" and "NetworkPolicy" in m for _, r, m in out.events)


@pytest.mark.parametrize(
    ("spec", "cfg", "field"),
    [
        (
            {"actors": {"volumes": [{"name": "host", "mountPath": "/host", "source": {"hostPath": {"path": "/"}}}]}},
            OperatorConfig(),
            "spec.actors.volumes[0].source: hostPath volumes are not allowed",
        ),
        (
            {"trainers": {"volumes": [{"name": "n", "mountPath": "/n", "source": {"nfs": {"server": "s", "path": "/"}}}]}},
            OperatorConfig(allowed_volume_types=("persistentVolumeClaim",)),
            "spec.trainers.volumes[0].source: nfs volumes are not allowed",
        ),
        ({"cluster": {"serviceAccountName": "cluster-admin-sa"}}, OperatorConfig(allowed_service_accounts=("srl-workers",)),
         "spec.cluster.serviceAccountName: 'cluster-admin-sa' is not allowed"),
        ({"cluster": {"serviceAccountName": "anything"}}, OperatorConfig(allowed_service_accounts=()),
         "spec.cluster.serviceAccountName: 'anything' is not allowed by the operator (allowed: none)"),
    ],  # fmt: skip
    ids=["hostPath-by-default", "nfs-not-listed", "service-account-not-listed", "no-service-accounts"],
)
def test_what_the_operator_does_not_allow_fails_naming_the_field(spec: dict[str, Any], cfg: OperatorConfig, field: str) -> None:
    kube = MemoryKube()
    cfg = OperatorConfig(**{**cfg.__dict__, "redis_timeout": 0.2})
    b = body(**spec)
    out = reconcile(b, kube, cfg, "t0")
    assert out.status["phase"] == "Failed"
    cond = next(c for c in out.status["conditions"] if c["type"] == "SpecValid")
    assert cond["status"] == "False" and cond["reason"] == "NotAllowed" and field in cond["message"], cond
    assert [(t, r) for t, r, _ in out.events] == [("Warning", "NotAllowed")] and field in out.events[0][2]
    assert out.invalid is not None and field in out.invalid
    assert kube.objects == {}  # no pod, nor anything else
    b["status"] = out.status
    assert reconcile(b, kube, cfg, "t1").events == []


@pytest.mark.parametrize(
    ("spec", "cfg"),
    [
        ({"actors": {"volumes": [{"name": "d", "mountPath": "/d", "source": {"persistentVolumeClaim": {"claimName": "d"}}}]}}, OperatorConfig()),
        ({"actors": {"volumes": [{"name": "h", "mountPath": "/h", "source": {"hostPath": {"path": "/data"}}}]}},
         OperatorConfig(allowed_volume_types=("*",))),
        ({"cluster": {"serviceAccountName": "srl-workers"}}, OperatorConfig(allowed_service_accounts=("srl-workers",))),
        ({"cluster": {"serviceAccountName": "whoever"}}, OperatorConfig()),
        ({}, OperatorConfig(allowed_service_accounts=(), allowed_volume_types=())),
    ],  # fmt: skip
    ids=["pvc-by-default", "any-volume", "listed-account", "any-account-by-default", "nothing-asked-nothing-allowed"],
)
def test_what_the_operator_allows_runs(spec: dict[str, Any], cfg: OperatorConfig) -> None:
    kube = MemoryKube()
    cfg = OperatorConfig(**{**cfg.__dict__, "redis_timeout": 0.2})
    out = reconcile(body(**spec), kube, cfg, "t0")
    assert out.status["phase"] == "Pending" and names(kube, "Pod") == ["cp-actor-0", "cp-trainer-0"]


def test_credentials_in_the_mongodb_uri_fail_and_leave_no_document_behind() -> None:
    """An experiment stored before the CRD rejected credentials: Failed naming the field, the URI is
    never repeated, and the ConfigMap that held the last valid document (with the URI) is deleted."""
    kube = MemoryKube()
    reconcile(body(), kube, CFG, "t0")
    assert names(kube, "ConfigMap") == ["cp-experiment"]
    uri = "mongodb://srl:hunter2@mongo.infra:27017/srl"
    b = body(parameterDb={"metadata": "mongodb", "mongodb": {"uri": uri}})
    out = reconcile(b, kube, CFG, "t1")
    assert out.status["phase"] == "Failed"
    cond = next(c for c in out.status["conditions"] if c["type"] == "SpecValid")
    assert cond["message"].startswith("spec.parameterDb.mongodb.uri: must not carry credentials")
    assert "hunter2" not in json.dumps(out.status) + json.dumps(out.events) + (out.invalid or "")
    assert names(kube, "ConfigMap") == []


def _crash(kube: MemoryKube, name: str, at: str, log: str = "Traceback (most recent call last):\nValueError: bad env") -> None:
    """What a kubelet writes when the worker container exits 1 (restartPolicy Never)."""
    kube.objects[("Pod", name)]["status"] = {
        "phase": "Failed",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": at}],
        "containerStatuses": [{"name": "worker", "state": {"terminated": {
            "exitCode": 1, "reason": "Error", "message": log, "finishedAt": at}}}],
    }  # fmt: skip


def test_crash_loop_backs_off_then_fails_the_run_with_the_last_log_lines() -> None:
    spec = {"actors": {"replicas": 2, "restartLimit": 2}, "failurePolicy": {"backoffSeconds": 10}}
    kube = MemoryKube()
    b = body(**spec)
    st = reconcile(b, kube, CFG, "2025-01-01T00:00:00Z").status
    for name in names(kube, "Pod"):
        kube.set_phase(name, "Running", ready=True)

    def round_(t: str) -> Any:
        b["status"] = st
        return reconcile(b, kube, CFG, t)

    # Failure 1 at 00:01:00: replaced after 10 s, failure 2 after 20 s more, failure 3 is one too many.
    _crash(kube, "cp-actor-1", "2025-01-01T00:01:00Z")
    out = round_("2025-01-01T00:01:05Z")
    st = out.status
    assert ("delete", "Pod", "cp-actor-1") not in kube.calls  # still backing off: the failed pod stays
    ready = next(c for c in st["conditions"] if c["type"] == "WorkersReady")
    assert "cp-actor-1: failed (exit code 1 (Error)), restart 1 of 2 in 5s" in ready["message"]
    st = round_("2025-01-01T00:01:10Z").status
    assert kube.objects[("Pod", "cp-actor-1")]["metadata"]["annotations"]["srl.dev/restarts"] == "1"
    assert st["actors"]["restarts"] == 1

    kube.set_phase("cp-actor-1", "Running", ready=True)
    _crash(kube, "cp-actor-1", "2025-01-01T00:02:00Z")
    st = round_("2025-01-01T00:02:15Z").status
    assert "srl.dev/restarts" in kube.objects[("Pod", "cp-actor-1")]["metadata"]["annotations"]
    assert kube.objects[("Pod", "cp-actor-1")]["status"]["phase"] == "Failed"  # 2nd restart waits 20 s
    st = round_("2025-01-01T00:02:20Z").status
    assert kube.objects[("Pod", "cp-actor-1")]["metadata"]["annotations"]["srl.dev/restarts"] == "2"

    kube.set_phase("cp-actor-1", "Running", ready=True)
    _crash(kube, "cp-actor-1", "2025-01-01T00:03:00Z", log="\n".join(f"step {i}" for i in range(40)) + "\nRuntimeError: NaN")
    out = round_("2025-01-01T00:03:01Z")
    st = out.status
    assert st["phase"] == "Failed"
    cond = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert cond["status"] == "True" and cond["reason"] == "RestartLimitExceeded"
    assert cond["message"].startswith("cp-actor-1 failed after 2 restarts (spec.actors.restartLimit 2); exit code 1 (Error)")
    assert cond["message"].endswith("step 39\nRuntimeError: NaN") and "step 30" not in cond["message"]
    warnings = [(r, m) for t, r, m in out.events if t == "Warning"]
    assert ("RestartLimitExceeded", cond["message"]) in warnings and ("Failed", "phase Running -> Failed") in warnings
    # The failed pod stays (its status holds the log lines); every other worker is stopped.
    assert names(kube, "Pod") == ["cp-actor-1"]

    # It sticks for this spec: no new pods, no second announcement, even if someone deletes the pod.
    kube.objects.pop(("Pod", "cp-actor-1"))
    out = round_("2025-01-01T00:04:00Z")
    st = out.status
    assert st["phase"] == "Failed" and names(kube, "Pod") == [] and not out.events

    # A new generation (here: more restarts allowed) runs again.
    b["spec"]["actors"]["restartLimit"] = 5
    b["metadata"]["generation"] = 2
    st = round_("2025-01-01T00:05:00Z").status
    assert names(kube, "Pod") == ["cp-actor-0", "cp-actor-1", "cp-trainer-0"]
    assert st["phase"] == "Pending"
    assert next(c for c in st["conditions"] if c["type"] == "Failed")["status"] == "False"


def test_children_carry_the_experiments_labels_and_annotations() -> None:
    kube = MemoryKube()
    b = body(nameRecords={})  # its own Redis: Deployment and Secret too
    b["metadata"]["labels"] = {"team": "rl", "app.kubernetes.io/managed-by": "Helm"}
    b["metadata"]["annotations"] = {"owner": "ada", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    reconcile(b, kube, CFG, "t0")
    kinds = {k for k, _ in kube.objects}
    assert kinds >= {"Pod", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment", "Secret", "NetworkPolicy"}
    for (kind, name), obj in kube.objects.items():
        meta = obj["metadata"]
        assert meta["labels"]["team"] == "rl" and meta["labels"]["app.kubernetes.io/managed-by"] == "srl-operator", (kind, name)
        assert meta["annotations"]["owner"] == "ada", (kind, name)
        assert "kubectl.kubernetes.io/last-applied-configuration" not in meta["annotations"], (kind, name)
