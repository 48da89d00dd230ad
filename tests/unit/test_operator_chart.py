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
    assert not any("secrets" in r["resources"] for r in roles[0]["rules"]), "the operator never reads Secrets"
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
