"""Proves the cluster-tier harness does what the operator tests will lean on.

RBAC really denies and allows; ServiceAccount tokens (TokenRequest) authenticate; the scheduler
places pods on kwok's fake nodes and kwok marks them Running/Ready; the controller-manager's
garbage collector removes dependents; kwok can fail a pod on request and a ReplicaSet replaces it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from controlplane import ControlPlane

IMAGE = "registry.invalid/srl/none:0"  # never pulled: kwok plays the kubelet


def eventually(fn: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll fn until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last value: {last!r}")


def deployment(name: str, namespace: str, replicas: int, **pod_extra: Any) -> dict:
    labels = {"app": name}
    container = {
        "name": "main",
        "image": IMAGE,
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    container.update(pod_extra.pop("container", {}))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], **pod_extra},
            },
        },
    }


def pods(cp: ControlPlane, namespace: str, selector: str) -> list[dict]:
    return cp.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]


def test_server_version_and_helm(control_plane: ControlPlane) -> None:
    # The binaries carry their real version (ldflags): helm's kubeVersion checks depend on it.
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.35.4"
    assert version["clientVersion"]["gitVersion"] == "v1.35.4"
    assert control_plane.helm("list", "--all-namespaces").returncode == 0


def test_rbac_denies_serviceaccount_until_rolebinding(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    cp.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kubeconfig = cp.serviceaccount_kubeconfig(namespace, "reader")

    denied = cp.kubectl("get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert f"system:serviceaccount:{namespace}:reader" in denied.stderr

    cp.kubectl(
        "create", "role", "cm-reader", "-n", namespace, "--verb=get,list", "--resource=configmaps"
    )
    cp.kubectl(
        "create",
        "rolebinding",
        "cm-reader",
        "-n",
        namespace,
        "--role=cm-reader",
        f"--serviceaccount={namespace}:reader",
    )

    # The RBAC authorizer reads bindings through informers: allow a moment for it to see ours.
    eventually(
        lambda: (
            cp.kubectl(
                "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
            ).returncode
            == 0
        ),
        timeout=20,
    )
    # ...and still only what the Role grants.
    other = cp.kubectl("get", "secrets", "-n", namespace, kubeconfig=kubeconfig, check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()


def test_deployment_becomes_available_on_fake_nodes(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    nodes = cp.add_fake_nodes(2, cpu="4", memory="16Gi", prefix="cp-avail")
    cp.apply(
        deployment("web", namespace, replicas=3, nodeSelector={"kubernetes.io/hostname": nodes[0]})
    )
    cp.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s")

    dep = cp.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert dep["status"]["availableReplicas"] == 3
    for pod in pods(cp, namespace, "app=web"):
        assert pod["spec"]["nodeName"] == nodes[0]
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"
        assert pod["status"]["podIP"]


def test_gpu_requests_schedule_only_on_gpu_nodes(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    cp.add_fake_nodes(1, prefix="cp-cpu-only")
    gpu_nodes = cp.add_fake_nodes(1, gpus=2, prefix="cp-gpu")
    cp.apply(
        deployment(
            "trainer",
            namespace,
            replicas=2,
            container={"resources": {"limits": {"nvidia.com/gpu": "1"}}},
        )
    )
    cp.kubectl("rollout", "status", "deployment/trainer", "-n", namespace, "--timeout=90s")
    assert {p["spec"]["nodeName"] for p in pods(cp, namespace, "app=trainer")} == set(gpu_nodes)

    # A third GPU does not exist on the node: the pod stays Pending (Unschedulable).
    cp.kubectl("scale", "deployment/trainer", "-n", namespace, "--replicas=3")

    def unschedulable() -> bool:
        for pod in pods(cp, namespace, "app=trainer"):
            for cond in pod["status"].get("conditions", []):
                if cond["type"] == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    return True
        return False

    eventually(unschedulable, timeout=30)


def test_deleting_owner_garbage_collects_dependents(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    owner = cp.kubectl_json("create", "configmap", "owner", "-n", namespace)
    cp.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
        }
    )
    cp.kubectl("delete", "configmap", "owner", "-n", namespace)
    eventually(
        lambda: (
            cp.kubectl("get", "configmap", "dependent", "-n", namespace, check=False).returncode
            != 0
        ),
        timeout=30,
    )

    # The cascade that matters for workloads: Deployment -> ReplicaSet -> Pods. Pod deletion is
    # graceful; kwok's pod-delete stage finishes it as a kubelet would.
    cp.add_fake_nodes(1, prefix="cp-gc")
    cp.apply(deployment("gc", namespace, replicas=2))
    cp.kubectl("rollout", "status", "deployment/gc", "-n", namespace, "--timeout=90s")
    cp.kubectl("delete", "deployment", "gc", "-n", namespace, "--cascade=background")
    eventually(
        lambda: (
            not pods(cp, namespace, "app=gc")
            and not cp.kubectl_json("get", "replicasets", "-n", namespace)["items"]
        ),
        timeout=60,
    )


def test_kwok_fails_pod_on_request_and_replicaset_replaces_it(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    cp.add_fake_nodes(1, prefix="cp-fail")
    cp.apply(deployment("worker", namespace, replicas=1))
    cp.kubectl("rollout", "status", "deployment/worker", "-n", namespace, "--timeout=90s")
    (victim,) = pods(cp, namespace, "app=worker")
    name = victim["metadata"]["name"]

    cp.fail_pod(namespace, name, reason="OOMKilled", exit_code=137)
    failed = cp.wait_pod_phase(namespace, name, "Failed", timeout=30)
    (status,) = failed["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 137
    assert status["state"]["terminated"]["reason"] == "OOMKilled"

    # A Failed pod is not active: the ReplicaSet makes a new one, which kwok runs.
    def replacement() -> str | None:
        for pod in pods(cp, namespace, "app=worker"):
            if pod["metadata"]["name"] != name and pod["status"].get("phase") == "Running":
                return pod["metadata"]["name"]
        return None

    eventually(replacement, timeout=60)
