# ruff: noqa: F811 - pytest fixtures are imported and then named as parameters
"""The operator against a real kube-apiserver (RBAC on), controller-manager and kwok fake nodes.

One helm-installed chart and one operator process (under the chart's ServiceAccount) serve the
module; every test uses its own experiment name in the watched namespace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane
from test_operator_fixtures import (  # noqa: F401 - fixtures, requested by name
    REPO,
    OperatorProcess,
    children,
    crd_installed,
    dump,
    events_for,
    eventually,
    experiment_doc,
    fake_nodes,
    live,
    load_example,
    operator,
    operator_namespace,
    pre_bind_volume,
    rlx,
    status_of,
    worker_pods,
)

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def apply_experiment(cp: ControlPlane, namespace: str, doc: dict[str, Any]) -> None:
    pre_bind_volume(cp, namespace, doc["metadata"]["name"])
    cp.apply({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})


def wait_running(cp: ControlPlane, ns: str, name: str, op: OperatorProcess, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = status_of(cp, ns, name)
        ready = all((st.get(r) or {}).get("ready", -1) == (st.get(r) or {}).get("desired", -2)
                    for r in ("actors", "policyWorkers", "trainers", "evaluation"))  # fmt: skip
        return st if st.get("phase") == "Running" and ready else None

    try:
        return eventually(check, timeout, what=f"{name} Running with every worker ready")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{dump(cp, ns, name, op)}") from None


def actor_indices(cp: ControlPlane, ns: str, name: str) -> list[int]:
    return sorted(int(p["metadata"]["labels"]["srl.dev/index"]) for p in live(worker_pods(cp, ns, name, "actor")))


def ready_actor_indices(cp: ControlPlane, ns: str, name: str) -> list[int]:
    out = []
    for p in live(worker_pods(cp, ns, name, "actor")):
        conds = (p.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            out.append(int(p["metadata"]["labels"]["srl.dev/index"]))
    return sorted(out)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_creates_owned_children_and_runs(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str, example: Path
) -> None:
    cp, ns = control_plane, operator_namespace
    doc = load_example(example)
    name = doc["metadata"]["name"]
    apply_experiment(cp, ns, doc)
    st = wait_running(cp, ns, name, operator)
    uid = rlx(cp, ns, name)["metadata"]["uid"]

    spec = rlx(cp, ns, name)["spec"]
    kinds = {
        "ConfigMap": [f"{name}-experiment"],
        "PersistentVolumeClaim": [] if spec["parameterDb"].get("claimName") else [f"{name}-params"],
        "Service": sorted(
            ([] if spec["nameRecords"].get("redisAddress") else [f"{name}-redis"])
            + ([f"{name}-policy"] if spec["policyWorkers"]["replicas"] else [])
            + [f"{name}-trainer"]
        ),
        "Deployment": [] if spec["nameRecords"].get("redisAddress") else [f"{name}-redis"],
    }
    for kind, expected in kinds.items():
        objs = children(cp, ns, name, kind.lower() + "s" if kind != "PersistentVolumeClaim" else "pvc")
        assert sorted(o["metadata"]["name"] for o in objs) == expected, kind
        for o in objs:
            (ref,) = o["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("RLExperiment", name, uid, True)
    pods = live(worker_pods(cp, ns, name))
    assert len(pods) == spec["actors"]["replicas"] + spec["policyWorkers"]["replicas"] + spec["trainers"]["replicas"] + (
        1 if spec["evaluation"]["enabled"] else 0
    )
    for p in pods:
        assert p["metadata"]["ownerReferences"][0]["uid"] == uid
        assert p["spec"]["securityContext"]["runAsNonRoot"] is True
        c = p["spec"]["containers"][0]
        assert c["args"][:2] == ["worker", "--role"]
        role = p["metadata"]["labels"]["srl.dev/role"]
        device = {"actor": spec["actors"], "policy": spec["policyWorkers"], "trainer": spec["trainers"]}.get(role, spec["evaluation"])["device"]
        if device == "cuda":
            assert "nvidia.com/gpu" in c["resources"]["limits"]
    # The worker pods read the same document from the ConfigMap.
    cm = children(cp, ns, name, "configmaps")[0]
    assert f"name: {name}" in cm["data"]["experiment.yaml"]
    # Status went Pending -> Running, and the Events say so.
    reasons = [e["reason"] for e in events_for(cp, ns, name)]
    assert "Pending" in reasons and "Running" in reasons and "Created" in reasons, reasons
    assert st["actorsReady"] == f"{spec['actors']['replicas']}/{spec['actors']['replicas']}"
    printed = cp.kubectl("get", "rlx", name, "-n", ns).stdout
    assert "Running" in printed.splitlines()[1]


def test_failed_pod_is_replaced(control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str) -> None:
    cp, ns, name = control_plane, operator_namespace, "failing"
    apply_experiment(cp, ns, experiment_doc(name, actors={"replicas": 2}))
    wait_running(cp, ns, name, operator)
    pod = f"{name}-actor-1"
    old_uid = cp.kubectl_json("get", "pod", pod, "-n", ns)["metadata"]["uid"]
    cp.fail_pod(ns, pod)

    def replaced() -> bool:
        pods = [p for p in live(worker_pods(cp, ns, name, "actor")) if p["metadata"]["name"] == pod]
        return bool(pods) and pods[0]["metadata"]["uid"] != old_uid and pods[0]["status"].get("phase") == "Running"

    eventually(replaced, 90, what="failed actor replaced by a running one")
    eventually(lambda: (status_of(cp, ns, name).get("actors") or {}).get("restarts", 0) >= 1, 30, what="restart counted")
    wait_running(cp, ns, name, operator)
    assert "WorkerFailed" in [e["reason"] for e in events_for(cp, ns, name)]


def test_crash_looping_worker_fails_the_run_after_its_restart_limit(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    """restartLimit 1: the first failure is replaced (after the backoff, the count on the new pod), the
    second fails the run — phase Failed, a Failed condition quoting the worker's last log line, a
    Warning Event — and stops the other workers while the failed pod stays for inspection."""
    cp, ns, name = control_plane, operator_namespace, "crashloop"
    spec = {"actors": {"replicas": 2, "restartLimit": 1}, "failurePolicy": {"backoffSeconds": 1}}
    apply_experiment(cp, ns, experiment_doc(name, **spec))
    wait_running(cp, ns, name, operator)
    pod = f"{name}-actor-1"
    first_uid = cp.kubectl_json("get", "pod", pod, "-n", ns)["metadata"]["uid"]
    cp.fail_pod(ns, pod, message="RuntimeError bad observation shape at step 7")

    def replaced() -> dict[str, Any] | None:
        got = [p for p in live(worker_pods(cp, ns, name, "actor")) if p["metadata"]["name"] == pod]
        ok = got and got[0]["metadata"]["uid"] != first_uid and got[0]["status"].get("phase") == "Running"
        return got[0] if ok else None

    second = eventually(replaced, 90, what="the failed actor replaced once")
    assert second["metadata"]["annotations"]["srl.dev/restarts"] == "1"
    cp.fail_pod(ns, pod, message="RuntimeError bad observation shape at step 9", exit_code=3)

    def failed() -> dict[str, Any] | None:
        st = status_of(cp, ns, name)
        return st if st.get("phase") == "Failed" else None

    try:
        st = eventually(failed, 90, what="phase Failed after the restart limit")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{dump(cp, ns, name, operator)}") from None
    cond = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert cond["status"] == "True" and cond["reason"] == "RestartLimitExceeded", cond
    assert cond["message"].startswith(f"{pod} failed after 1 restarts (spec.actors.restartLimit 1); exit code 3"), cond
    assert "RuntimeError bad observation shape at step 9" in cond["message"], cond
    event = eventually(lambda: [e for e in events_for(cp, ns, name) if e["reason"] == "RestartLimitExceeded"], 30,
                       what="a RestartLimitExceeded Event")[0]  # fmt: skip
    assert event["type"] == "Warning" and "step 9" in event["message"]
    eventually(lambda: [p["metadata"]["name"] for p in live(worker_pods(cp, ns, name))] == [pod], 60,
               what="only the failed pod left")  # fmt: skip
    assert cp.kubectl_json("get", "pod", pod, "-n", ns)["status"]["phase"] == "Failed"


def test_deleted_pod_is_recreated(control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str) -> None:
    cp, ns, name = control_plane, operator_namespace, "lost"
    apply_experiment(cp, ns, experiment_doc(name))
    wait_running(cp, ns, name, operator)
    cp.kubectl("delete", "pod", f"{name}-trainer-0", "-n", ns, "--wait=true")
    eventually(lambda: [p for p in live(worker_pods(cp, ns, name, "trainer")) if p["status"].get("phase") == "Running"], 90,
               what="trainer recreated")  # fmt: skip


def test_redis_pod_is_never_deleted_by_the_reconciler(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    """The Redis Deployment's pod carries the experiment label but no role: reconciles must leave it.

    Regression: the worker-pod listing matched it and every reconcile deleted it as an extra.
    """
    cp, ns, name = control_plane, operator_namespace, "keepredis"
    apply_experiment(cp, ns, experiment_doc(name))
    wait_running(cp, ns, name, operator)
    selector = f"srl.dev/experiment={name},srl.dev/component=redis"

    def redis_pods() -> list[dict[str, Any]]:
        return [p for p in cp.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]
                if (p.get("status") or {}).get("phase") == "Running"]  # fmt: skip

    first = eventually(redis_pods, 60, what="the Redis pod Running")
    uids = sorted(p["metadata"]["uid"] for p in first)
    # Several reconcile intervals (the operator here reconciles every 2 s) with the experiment Running.
    tick = f"[{ns}/{name}] Timer 'on_timer' succeeded"
    before = operator.log.read_text(errors="replace").count(tick)
    eventually(lambda: operator.log.read_text(errors="replace").count(tick) >= before + 4 or None, 60,
               what=f"four more timer reconciles of {name} (log line {tick!r})")  # fmt: skip
    now = cp.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"]
    assert sorted(p["metadata"]["uid"] for p in now) == uids, dump(cp, ns, name, operator)
    assert all(not p["metadata"].get("deletionTimestamp") for p in now), now
    scaled = [e["message"] for e in events_for(cp, ns, name) if e["reason"] == "ScaledDown"]
    assert not scaled, scaled


def test_actors_scale_4_8_2_via_spec_and_scale_subresource(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name = control_plane, operator_namespace, "scaling"
    apply_experiment(cp, ns, experiment_doc(name, actors={"replicas": 4}))
    wait_running(cp, ns, name, operator)
    assert actor_indices(cp, ns, name) == [0, 1, 2, 3]

    cp.kubectl("patch", "rlx", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"actors": {"replicas": 8}}}))
    eventually(lambda: ready_actor_indices(cp, ns, name) == list(range(8)), 90, what="8 ready actors")
    wait_running(cp, ns, name, operator)

    cp.kubectl("scale", "rlx", name, "-n", ns, "--replicas=2")
    eventually(lambda: actor_indices(cp, ns, name) == [0, 1], 90, what="actors 0 and 1 left")
    scale = cp.kubectl_json("get", "rlx", name, "-n", ns, "--subresource=scale")
    assert scale["spec"]["replicas"] == 2
    eventually(lambda: cp.kubectl_json("get", "rlx", name, "-n", ns, "--subresource=scale")["status"].get("replicas") == 2,
               30, what="scale status replicas 2")  # fmt: skip
    assert "srl.dev/role=actor" in scale["status"]["selector"]
    st = wait_running(cp, ns, name, operator)
    assert st["actors"]["desired"] == 2 and st["actorsReady"] == "2/2"
    assert "ScaledDown" in [e["reason"] for e in events_for(cp, ns, name)]


def test_suspend_keeps_the_volume_and_resume_recreates_workers(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name = control_plane, operator_namespace, "pausing"
    apply_experiment(cp, ns, experiment_doc(name, actors={"replicas": 3}))
    wait_running(cp, ns, name, operator)
    pvc_uid = children(cp, ns, name, "pvc")[0]["metadata"]["uid"]

    cp.kubectl("patch", "rlx", name, "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    eventually(lambda: not worker_pods(cp, ns, name), 90, what="worker pods gone")
    eventually(lambda: status_of(cp, ns, name).get("phase") == "Suspended", 30, what="phase Suspended")
    assert children(cp, ns, name, "pvc")[0]["metadata"]["uid"] == pvc_uid
    assert children(cp, ns, name, "deployments"), "Redis stays while suspended"

    cp.kubectl("patch", "rlx", name, "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    wait_running(cp, ns, name, operator)
    assert actor_indices(cp, ns, name) == [0, 1, 2]
    assert children(cp, ns, name, "pvc")[0]["metadata"]["uid"] == pvc_uid


def test_deletion_leaves_nothing_behind(control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str) -> None:
    cp, ns, name = control_plane, operator_namespace, "doomed"
    apply_experiment(cp, ns, experiment_doc(name, actors={"replicas": 3}, policyWorkers={"replicas": 1}))
    wait_running(cp, ns, name, operator)
    cp.kubectl("delete", "rlx", name, "-n", ns, "--wait=false")

    def gone() -> bool:
        left = children(cp, ns, name, "pods,services,configmaps,persistentvolumeclaims,deployments,replicasets")
        return not left

    eventually(gone, 120, what="every child of the experiment garbage-collected")
    eventually(lambda: not cp.kubectl_json("get", "rlx", "-n", ns, "--field-selector", f"metadata.name={name}")["items"], 30,
               what="the experiment itself gone (finalizer released)")  # fmt: skip


def test_restart_mid_reconcile_creates_no_duplicates(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name, n = control_plane, operator_namespace, "restarted", 300
    apply_experiment(cp, ns, experiment_doc(name, actors={"replicas": n, "resources": {"cpu": "10m"}}))
    # Kill the operator while it is creating actor pods.
    eventually(lambda: len(worker_pods(cp, ns, name)) > 0, 60, interval=0.05, what="first pods")
    operator.kill()
    created_before = len(worker_pods(cp, ns, name))
    assert created_before < n + 1, "the operator finished before it was killed: nothing was mid-reconcile"
    operator.start()
    st = wait_running(cp, ns, name, operator, timeout=180)
    pods = worker_pods(cp, ns, name)
    names = [p["metadata"]["name"] for p in pods]
    assert len(names) == len(set(names)) == n + 1, (created_before, len(names))
    assert actor_indices(cp, ns, name) == list(range(n))
    assert st["actors"]["ready"] == n
    for kind in ("services", "configmaps", "deployments", "pvc"):
        objs = children(cp, ns, name, kind)
        assert len({o["metadata"]["name"] for o in objs}) == len(objs)
        assert all(len(o["metadata"]["ownerReferences"]) == 1 for o in objs)


def test_status_from_name_records(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str, redis_server: Any
) -> None:
    """The trainer's summary in Redis shows up in status; an unreachable Redis keeps the last values."""
    import redis

    from srl_runtime.name_records import keys

    cp, ns, name = control_plane, operator_namespace, "reporting"
    apply_experiment(cp, ns, experiment_doc(name, nameRecords={"redisAddress": redis_server.address}))
    wait_running(cp, ns, name, operator)
    assert not children(cp, ns, name, "deployments"), "an external Redis means no Redis of our own"
    key = keys.experiment_state(keys.experiment_root(name, ns))
    client = redis.Redis.from_url(f"redis://{redis_server.address}")
    summary = {"policy_version": 12, "frames_per_second": 3400.0, "env_frames": 123456, "train_steps": 48, "mean_return": 187.5}
    client.set(key, json.dumps(summary))
    client.close()

    def shows() -> dict[str, Any] | None:
        st = status_of(cp, ns, name)
        return st if st.get("policyVersion") == 12 and st.get("framesPerSecond") == 3400.0 else None

    st = eventually(shows, 60, what="policy version and frames/s in status")
    assert st["envFrames"] == 123456 and st["trainSteps"] == 48 and st["meanReturn"] == 187.5
    printed = cp.kubectl("get", "rlx", name, "-n", ns).stdout.splitlines()[1].split()
    assert "12" in printed and "3400" in printed

    redis_server.stop()

    def unreachable() -> dict[str, Any] | None:
        st = status_of(cp, ns, name)
        cond = next((c for c in st.get("conditions", []) if c["type"] == "NameRecordsReachable"), {})
        return st if cond.get("status") == "False" else None

    st = eventually(unreachable, 60, what="NameRecordsReachable False")
    assert st["policyVersion"] == 12 and st["framesPerSecond"] == 3400.0 and st["phase"] == "Running"


def test_trainer_exit_zero_marks_succeeded(control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str) -> None:
    cp, ns, name = control_plane, operator_namespace, "finishing"
    apply_experiment(cp, ns, experiment_doc(name))
    wait_running(cp, ns, name, operator)
    # A trainer that exits 0: the same status a kubelet writes (kwok has no stage for it, so we write it).
    pod = cp.kubectl_json("get", "pod", f"{name}-trainer-0", "-n", ns)
    status = {
        "phase": "Succeeded",
        "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
        "containerStatuses": [
            {"name": "worker", "image": pod["spec"]["containers"][0]["image"], "imageID": "", "ready": False,
             "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ],
    }  # fmt: skip
    cp.kubectl("patch", "pod", f"{name}-trainer-0", "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))
    eventually(lambda: status_of(cp, ns, name).get("phase") == "Succeeded", 60, what="phase Succeeded")
    complete = next(c for c in status_of(cp, ns, name)["conditions"] if c["type"] == "Complete")
    assert complete["status"] == "True"


def test_liveness_endpoint(operator: OperatorProcess) -> None:
    """kopf's --liveness endpoint (the chart's livenessProbe) answers with the operator's probes."""
    import urllib.request

    def probe() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{operator.liveness_port}/healthz", timeout=5) as resp:
                return json.loads(resp.read()) if resp.status == 200 else None
        except OSError:
            return None

    body = eventually(probe, 30, what="/healthz 200")
    assert body["reconcileIntervalSeconds"] == operator.interval


def test_spec_that_got_past_the_api_server_fails_naming_the_field(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    """An experiment stored before a CRD upgrade added a rule: the operator rejects it, naming the field."""
    import copy

    import yaml

    from srl_runtime.config import crd_schema

    cp, ns, name = control_plane, operator_namespace, "legacy"
    lax = crd_schema.crd()
    schema = lax["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = crd_schema.spec_schema(cel=False)
    strict = copy.deepcopy(crd_schema.crd())
    try:
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(lax))
        doc = experiment_doc(name, stop={"returnWindow": 5})  # no stop condition: a model-validator rule
        eventually(lambda: cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(doc), check=False).returncode == 0,
                   30, what="the lax CRD in effect")  # fmt: skip
    finally:
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(strict))

    def failed() -> dict[str, Any] | None:
        st = status_of(cp, ns, name)
        return st if st.get("phase") == "Failed" else None

    st = eventually(failed, 60, what="phase Failed")
    cond = next(c for c in st["conditions"] if c["type"] == "SpecValid")
    assert cond["status"] == "False" and "spec.stop" in cond["message"], cond
    assert not worker_pods(cp, ns, name) and not children(cp, ns, name, "configmaps")
    assert "InvalidSpec" in [e["reason"] for e in events_for(cp, ns, name)]
    cp.kubectl("delete", "rlx", name, "-n", ns, "--wait=true", "--timeout=60s")
