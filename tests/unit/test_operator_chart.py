"""The Helm chart renders as intended: helm lint, both RBAC scopes, strict values, CRD in crds/.

Needs the helm binary from scripts/install-cluster-tools.sh (skipped without it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from srl_runtime.config import crd_schema

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "srl-operator"


def _helm() -> str:
    cached = Path(os.environ.get("SRL_CACHE", Path.home() / ".cache" / "srl-test")) / "bin" / "helm"
    if os.access(cached, os.X_OK):
        return str(cached)
    found = shutil.which("helm")
    if not found:
        pytest.skip("helm not installed (scripts/install-cluster-tools.sh builds it)")
    return found


def helm(*args: str, check: bool = True, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp / "c"), "HELM_CONFIG_HOME": str(tmp / "g"), "HELM_DATA_HOME": str(tmp / "d")}
    return subprocess.run([_helm(), *args], capture_output=True, text=True, check=check, env=env)


def render(tmp: Path, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "srl-operator", str(CHART), "-n", "srl-system", "--kube-version", "1.35.0"]
    for s in sets:
        args += ["--set", s]
    out = helm(*args, tmp=tmp).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_helm_lint(tmp_path: Path) -> None:
    proc = helm("lint", "--strict", str(CHART), tmp=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for extra in (["--set", "scope=cluster"], ["--set", "redis.enabled=true,mongodb.enabled=true,nfs.enabled=true,nfs.serviceIP=10.96.200.200"]):
        proc = helm("lint", "--strict", str(CHART), *extra, tmp=tmp_path, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_namespaced_scope_gets_a_role_per_watched_namespace(tmp_path: Path) -> None:
    docs = render(tmp_path, "watchNamespaces={team-a,team-b}")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert not [d for d in by_kind(docs, "ClusterRole") if not d["metadata"]["name"].endswith(("-edit", "-view"))]
    bindings = by_kind(docs, "RoleBinding")
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"srl-system"}
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in roles[0]["rules"]}
    assert rules[(("srl.dev",), ("rlexperiments",))] == ["list", "watch", "patch"]
    assert rules[(("",), ("pods", "services"))] == ["list", "create", "delete"]
    # Secrets: it creates each experiment's Redis password and reads it by name; never lists or changes one.
    assert rules[(("",), ("secrets",))] == ["get", "create"]
    assert [r for r in roles[0]["rules"] if "secrets" in r["resources"]] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]}
    ]
    assert rules[(("networking.k8s.io",), ("networkpolicies",))] == ["list", "create", "patch"]
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in roles[0]["rules"])
    (dep,) = by_kind(docs, "Deployment")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SRL_WATCH_NAMESPACES"] == "team-a,team-b"


def test_default_watches_the_release_namespace(tmp_path: Path) -> None:
    docs = render(tmp_path)
    assert [r["metadata"]["namespace"] for r in by_kind(docs, "Role")] == ["srl-system"]


def test_cluster_scope_and_operator_deployment(tmp_path: Path) -> None:
    docs = render(tmp_path, "scope=cluster", "runtimeImage.repository=reg/srl-runtime", "runtimeImage.tag=v9")
    assert not by_kind(docs, "Role")
    names = [c["metadata"]["name"] for c in by_kind(docs, "ClusterRole")]
    assert names == ["srl-operator", "srl-operator-edit", "srl-operator-view"]
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SRL_WATCH_NAMESPACES"] == "*" and env["SRL_RUNTIME_IMAGE"] == "reg/srl-runtime:v9"


def test_optional_components(tmp_path: Path) -> None:
    docs = render(tmp_path, "redis.enabled=true", "mongodb.enabled=true", "nfs.enabled=true", "nfs.serviceIP=10.96.200.200")
    names = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs if d["kind"] in ("Deployment", "Service", "Secret", "StorageClass"))
    assert names == [
        "Deployment/srl-operator", "Deployment/srl-operator-mongodb", "Deployment/srl-operator-nfs",
        "Deployment/srl-operator-redis", "Secret/srl-operator-mongodb", "Service/srl-operator-mongodb",
        "Service/srl-operator-nfs", "Service/srl-operator-redis", "StorageClass/srl-nfs",
    ]  # fmt: skip
    assert len(by_kind(docs, "PersistentVolume")) == 4
    env = {e["name"]: e.get("value") for e in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SRL_SHARED_REDIS_ADDRESS"] == "srl-operator-redis.srl-system.svc:6379"


def test_values_schema_rejects_unknown_keys(tmp_path: Path) -> None:
    for bad in ("imagee.tag=x", "image.tagg=x", "redis.enable=true", "scope=everywhere"):
        proc = helm("template", "x", str(CHART), "--kube-version", "1.35.0", "--set", bad, tmp=tmp_path, check=False)
        assert proc.returncode != 0, f"--set {bad} was accepted"


def test_chart_crd_is_the_generated_one() -> None:
    assert (CHART / "crds" / "rlexperiment.yaml").read_text() == crd_schema.crd_yaml()


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    (dep,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "srl-operator"]
    return {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_operator_knows_its_namespace_and_labels_for_network_policies(tmp_path: Path) -> None:
    from srl_operator.config import OperatorConfig

    docs = render(tmp_path)
    env = _operator_env(docs)
    assert env["SRL_OPERATOR_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    (dep,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "srl-operator"]
    cfg = OperatorConfig.from_env({"SRL_OPERATOR_POD_LABELS": env["SRL_OPERATOR_POD_LABELS"]["value"]})
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert cfg.operator_pod_labels and all(pod_labels[k] == v for k, v in cfg.operator_pod_labels)


def test_worker_policy_defaults_are_the_operators(tmp_path: Path) -> None:
    """The chart's defaults and OperatorConfig's are the same lists (hostPath is in neither)."""
    from srl_operator.config import OperatorConfig

    env = _operator_env(render(tmp_path))
    from_chart = OperatorConfig.from_env({k: e["value"] for k, e in env.items() if "value" in e})
    assert from_chart.allowed_volume_types == OperatorConfig().allowed_volume_types
    assert from_chart.allowed_service_accounts == OperatorConfig().allowed_service_accounts
    assert "hostPath" not in from_chart.allowed_volume_types

    env = _operator_env(render(tmp_path, "workerPolicy.allowedServiceAccounts={srl-workers,eval}"))
    assert env["SRL_ALLOWED_SERVICE_ACCOUNTS"]["value"] == "srl-workers,eval"


def test_worker_policy_values_are_strict(tmp_path: Path) -> None:
    for bad in ("workerPolicy.allowedVolumeType={emptyDir}", "workerPolicy.allowedServiceAccounts={Bad_Name}",
                "workerPolicy.allowedVolumeTypes={host path}"):  # fmt: skip
        proc = helm("template", "x", str(CHART), "--kube-version", "1.35.0", "--set", bad, tmp=tmp_path, check=False)
        assert proc.returncode != 0, f"--set {bad} was accepted"
    values = tmp_path / "none.yaml"
    values.write_text("workerPolicy: {allowedServiceAccounts: [], allowedVolumeTypes: []}\n")
    out = helm("template", "srl-operator", str(CHART), "--kube-version", "1.35.0", "-f", str(values), tmp=tmp_path).stdout
    env = _operator_env([d for d in yaml.safe_load_all(out) if d])
    assert env["SRL_ALLOWED_VOLUME_TYPES"]["value"] == env["SRL_ALLOWED_SERVICE_ACCOUNTS"]["value"] == ""
    from srl_operator.config import OperatorConfig

    none = OperatorConfig.from_env({"SRL_ALLOWED_VOLUME_TYPES": "", "SRL_ALLOWED_SERVICE_ACCOUNTS": ""})
    assert none.allowed_volume_types == none.allowed_service_accounts == ()  # set and empty: none allowed
