"""Fixtures of the e2e experiments: the operator installed by `helm install` from its image, the
namespace it watches, local volumes for parameter-DB claims, and FerretDB in a pod.

They need `e2e_cluster` (ControlPlane-like) and `e2e_images` (image name -> ref) from conftest.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rlx import eventually

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "srl-operator"
OPERATOR_NAMESPACE = "srl-system"
EXPERIMENT_NAMESPACE = "srl-e2e"
RELEASE = "srl-operator"


def split_ref(ref: str) -> tuple[str, str]:
    """registry/repo:tag -> (registry/repo, tag); a port in the registry is not a tag."""
    head, _, tag = ref.rpartition(":")
    if not head or "/" in tag:
        return ref, "latest"
    return head, tag


@dataclass
class OperatorRelease:
    """The chart's release: where the operator pod runs."""

    cluster: Any
    namespace: str

    def pods(self) -> list[dict[str, Any]]:
        selector = "app.kubernetes.io/name=srl-operator"
        pods = self.cluster.kubectl_json("get", "pods", "-n", self.namespace, "-l", selector)["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def logs(self) -> str:
        out = self.cluster.kubectl("logs", "-n", self.namespace, "-l", "app.kubernetes.io/name=srl-operator",
                                   "--tail=80", check=False)  # fmt: skip
        return out.stdout + out.stderr


def helm_values(images: dict[str, str], watch: list[str]) -> list[str]:
    """--set arguments: our images (never pulled: they are on the node), namespaced scope."""
    op_repo, op_tag = split_ref(images["operator"])
    rt_repo, rt_tag = split_ref(images["runtime"])
    args = [
        "--set", f"image.repository={op_repo}", "--set", f"image.tag={op_tag}", "--set", "image.pullPolicy=IfNotPresent",
        "--set", f"runtimeImage.repository={rt_repo}", "--set", f"runtimeImage.tag={rt_tag}",
        "--set", "runtimeImage.pullPolicy=IfNotPresent",
        "--set", f"redisImage={images['redis']}",
        # A 2-core test node holds 3-4 actors, a policy worker and 2 trainers only at 250m each.
        "--set", "actorCpuRequest=250m",
        "--set", "scope=namespaced", "--set", "reconcileIntervalSeconds=3", "--set", "logLevel=verbose",
    ]  # fmt: skip
    for i, ns in enumerate(watch):
        args += ["--set", f"watchNamespaces[{i}]={ns}"]
    return args


@pytest.fixture(scope="session")
def srl_operator(e2e_cluster: Any, e2e_images: dict[str, str]) -> Iterator[OperatorRelease]:
    """`helm install` of charts/srl-operator; the operator runs as a pod under the chart's ServiceAccount."""
    cluster = e2e_cluster
    cluster.kubectl("create", "namespace", EXPERIMENT_NAMESPACE, check=False)
    cluster.helm(
        "upgrade", "--install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace",
        *helm_values(e2e_images, [EXPERIMENT_NAMESPACE]), "--wait", "--timeout", "300s", timeout=360,
    )  # fmt: skip
    release = OperatorRelease(cluster, OPERATOR_NAMESPACE)
    try:
        eventually(lambda: [p for p in release.pods() if _ready(p)], 240, "the operator pod Ready")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{release.logs()}") from None
    yield release
    # Experiments first (their finalizer is the operator's), then the release.
    cluster.kubectl("delete", "rlx", "--all", "-n", EXPERIMENT_NAMESPACE, "--wait=true", "--timeout=180s",
                    check=False, timeout=240)  # fmt: skip
    cluster.helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", check=False)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


@pytest.fixture
def srl_namespace(srl_operator: OperatorRelease) -> Iterator[str]:
    """The watched namespace; the test's experiments are deleted after it (pods and claims go too)."""
    yield EXPERIMENT_NAMESPACE
    cluster = srl_operator.cluster
    cluster.kubectl("delete", "rlx", "--all", "-n", EXPERIMENT_NAMESPACE, "--wait=true", "--timeout=180s",
                    check=False, timeout=240)  # fmt: skip
    eventually(lambda: not cluster.kubectl_json("get", "pods", "-n", EXPERIMENT_NAMESPACE,
                                                "-l", "srl.dev/experiment")["items"], 180,
               "the experiments' pods gone")  # fmt: skip


@pytest.fixture
def volumes(e2e_node: Any) -> Callable[[int], None]:
    """Make n more volumes for claims: local PVs on our node; on an external cluster its default
    StorageClass provisions them, so nothing to do."""

    def add(n: int) -> None:
        if e2e_node is not None:
            e2e_node.add_volumes(n)

    return add


@dataclass
class FerretDB:
    """FerretDB (MongoDB wire protocol, SQLite) in a pod with a Service, reached by tests via its pod IP."""

    cluster: Any
    namespace: str
    name: str = "ferretdb"

    @property
    def in_cluster_uri(self) -> str:
        return f"mongodb://{self.name}.{self.namespace}.svc:27017/"

    def pod(self) -> dict[str, Any]:
        pods = self.cluster.kubectl_json("get", "pods", "-n", self.namespace, "-l", f"app={self.name}")["items"]
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and _ready(p)]
        assert running, json.dumps([p.get("status") for p in pods])[:1500]
        return running[0]

    def versions(self, database: str) -> tuple[int, int | None]:
        """(number of version documents, version tagged latest) in `database`."""
        import pymongo

        ip = self.pod()["status"]["podIP"]
        client = pymongo.MongoClient(f"mongodb://{ip}:27017/", serverSelectionTimeoutMS=10_000)
        try:
            db = client[database]
            count = db["versions"].count_documents({})
            latest = db["tags"].find_one({"_id": "latest"})
            return count, (latest or {}).get("version")
        finally:
            client.close()


@pytest.fixture(scope="session")
def ferretdb(e2e_cluster: Any, e2e_images: dict[str, str], srl_operator: OperatorRelease) -> Iterator[FerretDB]:
    db = FerretDB(e2e_cluster, EXPERIMENT_NAMESPACE)
    labels = {"app": db.name}
    e2e_cluster.apply([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": db.name, "namespace": db.namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": "ferretdb", "image": e2e_images["ferretdb"], "imagePullPolicy": "IfNotPresent",
                             "ports": [{"containerPort": 27017}],
                             "readinessProbe": {"tcpSocket": {"port": 27017}, "periodSeconds": 2}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": db.name, "namespace": db.namespace},
         "spec": {"selector": labels, "ports": [{"port": 27017, "targetPort": 27017}]}},
    ])  # fmt: skip
    eventually(lambda: _has_ready(db), 180, "FerretDB ready", interval=2)
    time.sleep(1)
    yield db
    e2e_cluster.kubectl("delete", "deployment,service", db.name, "-n", db.namespace, check=False)


def _has_ready(db: FerretDB) -> bool:
    try:
        db.pod()
    except AssertionError:
        return False
    return True
