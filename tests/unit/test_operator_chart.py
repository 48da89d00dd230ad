"""The Helm chart renders as intended: helm lint, both RBAC scopes, strict values, the CRD as a
template, and every values switch (SWITCHES: a test fails when values.yaml gains a key without one).

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
    for extra in (["--set", "scope=cluster"], ["--set", "redis.enabled=true,mongodb.enabled=true,nfs.enabled=true,nfs.serviceIP=10.96.200.200"],
                  ["--set", "podMonitor.enabled=true,podMonitor.labels.release=prom"]):
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
    # Children are read from watch-fed caches: list once, then watch.
    assert rules[(("",), ("pods", "services"))] == ["list", "watch", "create", "delete"]
    # Secrets: it creates each experiment's Redis password and reads it by name; never lists or changes one.
    assert rules[(("",), ("secrets",))] == ["get", "create"]
    assert [r for r in roles[0]["rules"] if "secrets" in r["resources"]] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]}
    ]
    assert rules[(("networking.k8s.io",), ("networkpolicies",))] == ["list", "watch", "create", "patch"]
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


def test_chart_crd_is_the_generated_one(tmp_path: Path) -> None:
    """Rendered, the CRD is the generated one plus Helm's labels and the keep policy."""
    assert not (CHART / "crds").exists()  # Helm never upgrades crds/: the CRD is a template
    (rendered,) = by_kind(render(tmp_path), "CustomResourceDefinition")
    expected = crd_schema.crd()
    assert rendered["spec"] == expected["spec"]
    assert rendered["metadata"]["name"] == expected["metadata"]["name"]
    assert rendered["metadata"]["annotations"] == {**expected["metadata"]["annotations"], "helm.sh/resource-policy": "keep"}
    assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def render_values(tmp: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = helm("template", "srl-operator", str(CHART), "-n", "srl-system", "--kube-version", "1.35.0", "-f", str(path), tmp=tmp).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def _pod(docs: list[dict[str, Any]], name: str = "srl-operator") -> dict[str, Any]:
    return _named(docs, "Deployment", name)["spec"]["template"]


def _container(docs: list[dict[str, Any]], name: str = "srl-operator") -> dict[str, Any]:
    return _pod(docs, name)["spec"]["containers"][0]


def _env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in _container(docs)["env"]}


NFS_ON = {"enabled": True, "serviceIP": "10.96.200.200"}  # nfs.enabled needs a serviceIP
CUSTOM_RESOURCES = {"requests": {"cpu": "3", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}}  # fmt: skip

# values path -> (values to render with, what the rendered manifests must show). Every leaf of
# values.yaml (or a parent of it) has an entry; test_every_value_has_a_rendering_test checks that.
SWITCHES: dict[str, tuple[dict[str, Any], Any]] = {
    "crds.enabled": ({"crds": {"enabled": False}}, lambda d: not by_kind(d, "CustomResourceDefinition")),
    "crds.keep": (
        {"crds": {"keep": False}},
        lambda d: "helm.sh/resource-policy" not in by_kind(d, "CustomResourceDefinition")[0]["metadata"]["annotations"],
    ),
    "image.repository": ({"image": {"repository": "reg/op"}}, lambda d: _container(d)["image"] == "reg/op:0.1.0"),
    "image.tag": ({"image": {"tag": "v7"}}, lambda d: _container(d)["image"] == "srl-operator:v7"),
    "image.pullPolicy": ({"image": {"pullPolicy": "Always"}}, lambda d: _container(d)["imagePullPolicy"] == "Always"),
    "imagePullSecrets": (
        {"imagePullSecrets": [{"name": "regcred"}]}, lambda d: _pod(d)["spec"]["imagePullSecrets"] == [{"name": "regcred"}],
    ),
    "runtimeImage.repository": ({"runtimeImage": {"repository": "reg/rt"}}, lambda d: _env(d)["SRL_RUNTIME_IMAGE"] == "reg/rt:0.1.0"),
    "runtimeImage.tag": ({"runtimeImage": {"tag": "v8"}}, lambda d: _env(d)["SRL_RUNTIME_IMAGE"] == "srl-runtime:v8"),
    "runtimeImage.pullPolicy": (
        {"runtimeImage": {"pullPolicy": "Never"}}, lambda d: _env(d)["SRL_RUNTIME_IMAGE_PULL_POLICY"] == "Never",
    ),
    "parameterDbAccessMode": (
        {"parameterDbAccessMode": "ReadWriteOnce"}, lambda d: _env(d)["SRL_PVC_ACCESS_MODE"] == "ReadWriteOnce",
    ),
    "actorCpuRequest": ({"actorCpuRequest": "500m"}, lambda d: _env(d)["SRL_ACTOR_CPU_REQUEST"] == "500m"),
    "redisImage": ({"redisImage": "mirror/redis:7"}, lambda d: _env(d)["SRL_REDIS_IMAGE"] == "mirror/redis:7"),
    "scope": ({"scope": "cluster"}, lambda d: not by_kind(d, "Role") and _env(d)["SRL_WATCH_NAMESPACES"] == "*"),
    "watchNamespaces": (
        {"watchNamespaces": ["a", "b"]},
        lambda d: sorted(r["metadata"]["namespace"] for r in by_kind(d, "Role")) == ["a", "b"]
        and _env(d)["SRL_WATCH_NAMESPACES"] == "a,b",
    ),
    "workerPolicy.allowedServiceAccounts": (
        {"workerPolicy": {"allowedServiceAccounts": ["w"], "allowedVolumeTypes": ["*"]}},
        lambda d: _env(d)["SRL_ALLOWED_SERVICE_ACCOUNTS"] == "w",
    ),
    "workerPolicy.allowedVolumeTypes": (
        {"workerPolicy": {"allowedServiceAccounts": ["*"], "allowedVolumeTypes": ["emptyDir"]}},
        lambda d: _env(d)["SRL_ALLOWED_VOLUME_TYPES"] == "emptyDir",
    ),
    "reconcileIntervalSeconds": ({"reconcileIntervalSeconds": 3}, lambda d: _env(d)["SRL_RECONCILE_INTERVAL"] == "3"),
    "apiConcurrency": ({"apiConcurrency": 64}, lambda d: _env(d)["SRL_API_CONCURRENCY"] == "64"),
    "logLevel": ({"logLevel": "debug"}, lambda d: _container(d)["args"] == ["--debug"]),
    "serviceAccount.create": (
        {"serviceAccount": {"create": False, "name": "mine"}},
        lambda d: not by_kind(d, "ServiceAccount") and _pod(d)["spec"]["serviceAccountName"] == "mine",
    ),
    "serviceAccount.name": (
        {"serviceAccount": {"name": "ops"}},
        lambda d: by_kind(d, "ServiceAccount")[0]["metadata"]["name"] == "ops"
        and _pod(d)["spec"]["serviceAccountName"] == "ops"
        and all(b["subjects"][0]["name"] == "ops" for b in by_kind(d, "RoleBinding")),
    ),
    "serviceAccount.annotations": (
        {"serviceAccount": {"annotations": {"iam": "role-1"}}},
        lambda d: by_kind(d, "ServiceAccount")[0]["metadata"]["annotations"] == {"iam": "role-1"},
    ),
    "rbac.create": ({"rbac": {"create": False}}, lambda d: not [x for x in d if x["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]),
    "rbac.aggregateToDefaultRoles": (
        {"rbac": {"aggregateToDefaultRoles": False}}, lambda d: not by_kind(d, "ClusterRole") and by_kind(d, "Role"),
    ),
    "resources": ({"resources": CUSTOM_RESOURCES}, lambda d: _container(d)["resources"] == CUSTOM_RESOURCES),
    "nodeSelector": ({"nodeSelector": {"pool": "system"}}, lambda d: _pod(d)["spec"]["nodeSelector"] == {"pool": "system"}),
    "tolerations": (
        {"tolerations": [{"key": "ops", "operator": "Exists"}]},
        lambda d: _pod(d)["spec"]["tolerations"] == [{"key": "ops", "operator": "Exists"}],
    ),
    "affinity": ({"affinity": AFFINITY}, lambda d: _pod(d)["spec"]["affinity"] == AFFINITY),
    "podAnnotations": ({"podAnnotations": {"a": "b"}}, lambda d: _pod(d)["metadata"]["annotations"] == {"a": "b"}),
    "livenessProbe.port": (
        {"livenessProbe": {"port": 9090}},
        lambda d: _env(d)["SRL_LIVENESS_PORT"] == "9090" and _container(d)["ports"] == [{"name": "liveness", "containerPort": 9090}],
    ),
    "livenessProbe.initialDelaySeconds": (
        {"livenessProbe": {"initialDelaySeconds": 42}}, lambda d: _container(d)["livenessProbe"]["initialDelaySeconds"] == 42,
    ),
    "livenessProbe.periodSeconds": (
        {"livenessProbe": {"periodSeconds": 7}}, lambda d: _container(d)["livenessProbe"]["periodSeconds"] == 7,
    ),
    "redis.enabled": (
        {"redis": {"enabled": True}},
        lambda d: _named(d, "Service", "srl-operator-redis") and "SRL_SHARED_REDIS_ADDRESS" in _env(d),
    ),
    "redis.image": ({"redis": {"enabled": True, "image": "m/redis:1"}}, lambda d: _container(d, "srl-operator-redis")["image"] == "m/redis:1"),
    "redis.resources": (
        {"redis": {"enabled": True, "resources": CUSTOM_RESOURCES}},
        lambda d: _container(d, "srl-operator-redis")["resources"] == CUSTOM_RESOURCES,
    ),
    "mongodb.enabled": ({"mongodb": {"enabled": True}}, lambda d: _named(d, "Secret", "srl-operator-mongodb")),
    "mongodb.image": ({"mongodb": {"enabled": True, "image": "m/mongo:7"}}, lambda d: _container(d, "srl-operator-mongodb")["image"] == "m/mongo:7"),
    "mongodb.storageSize": (
        {"mongodb": {"enabled": True, "storageSize": "9Gi"}},
        lambda d: _named(d, "PersistentVolumeClaim", "srl-operator-mongodb")["spec"]["resources"]["requests"]["storage"] == "9Gi",
    ),
    "mongodb.storageClass": (
        {"mongodb": {"enabled": True, "storageClass": "fast"}},
        lambda d: _named(d, "PersistentVolumeClaim", "srl-operator-mongodb")["spec"]["storageClassName"] == "fast",
    ),
    "mongodb.resources": (
        {"mongodb": {"enabled": True, "resources": CUSTOM_RESOURCES}},
        lambda d: _container(d, "srl-operator-mongodb")["resources"] == CUSTOM_RESOURCES,
    ),
    "nfs.enabled": ({"nfs": NFS_ON}, lambda d: _named(d, "StorageClass", "srl-nfs")),
    "nfs.image": ({"nfs": {**NFS_ON, "image": "m/nfs:1"}}, lambda d: _container(d, "srl-operator-nfs")["image"] == "m/nfs:1"),
    "nfs.serviceIP": (
        {"nfs": {**NFS_ON, "serviceIP": "10.96.0.77"}},
        lambda d: _named(d, "Service", "srl-operator-nfs")["spec"]["clusterIP"] == "10.96.0.77"
        and {pv["spec"]["nfs"]["server"] for pv in by_kind(d, "PersistentVolume")} == {"10.96.0.77"},
    ),
    "nfs.storageClass": (
        {"nfs": {**NFS_ON, "storageClass": "shared"}},
        lambda d: _named(d, "StorageClass", "shared") and {pv["spec"]["storageClassName"] for pv in by_kind(d, "PersistentVolume")} == {"shared"},
    ),
    "nfs.persistentVolumes": ({"nfs": {**NFS_ON, "persistentVolumes": 2}}, lambda d: len(by_kind(d, "PersistentVolume")) == 2),
    "podMonitor.enabled": ({"podMonitor": {"enabled": True}}, lambda d: len(by_kind(d, "PodMonitor")) == 1),
    "podMonitor.interval": (
        {"podMonitor": {"enabled": True, "interval": "15s"}},
        lambda d: by_kind(d, "PodMonitor")[0]["spec"]["podMetricsEndpoints"][0]["interval"] == "15s",
    ),
    "podMonitor.labels": (
        {"podMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        lambda d: by_kind(d, "PodMonitor")[0]["metadata"]["labels"]["release"] == "prom",
    ),
    "nfs.size": (
        {"nfs": {**NFS_ON, "size": "3Gi"}},
        lambda d: {pv["spec"]["capacity"]["storage"] for pv in by_kind(d, "PersistentVolume")} == {"3Gi"},
    ),
}


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.extend(_leaves(value, path + ".") if isinstance(value, dict) and value else [path])
    return out


def test_every_value_has_a_rendering_test() -> None:
    leaves = _leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    untested = [p for p in leaves if not any(p == s or p.startswith(s + ".") for s in SWITCHES)]
    assert not untested, f"values without a rendering test in SWITCHES: {untested}"


@pytest.mark.parametrize("path", sorted(SWITCHES))
def test_values_switch(path: str, tmp_path: Path) -> None:
    values, shows = SWITCHES[path]
    default = render(tmp_path)
    docs = render_values(tmp_path, values)
    assert shows(docs), f"{path}: {yaml.safe_dump(values)} did not render as expected"
    assert docs != default, f"{path}: the switch changed nothing"


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


def test_skaffold_dev_uses_the_namespaced_rbac_production_uses(tmp_path: Path) -> None:
    """skaffold's default deploy passes its setValues as --set: render the chart with exactly those."""
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    (release,) = skaffold["deploy"]["helm"]["releases"]
    sets = [f"{k}={v}" for k, v in release.get("setValues", {}).items()]
    assert release["setValues"]["scope"] == "namespaced"
    docs = render(tmp_path, *sets)
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "Role")) == ["default", "srl-system"]
    # No ClusterRole for the operator itself (only the aggregated edit/view roles for users).
    assert [c["metadata"]["name"] for c in by_kind(docs, "ClusterRole")] == ["srl-operator-edit", "srl-operator-view"]
    assert not by_kind(docs, "ClusterRoleBinding")
    assert _env(docs)["SRL_WATCH_NAMESPACES"] == "srl-system,default"


def test_pod_monitor_is_off_by_default_and_scrapes_every_worker(tmp_path: Path) -> None:
    from srl_operator import naming
    from srl_runtime.config.ports import role_ports

    assert not by_kind(render(tmp_path), "PodMonitor"), "off by default (needs the Prometheus Operator's CRDs)"
    docs = render(tmp_path, "podMonitor.enabled=true", "podMonitor.labels.release=prom", "watchNamespaces={team-a,team-b}")
    (monitor,) = by_kind(docs, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "prom"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}
    # It selects every worker pod the operator makes, by the port name every role's pod declares.
    for role in ("actor", "policy", "trainer", "eval"):
        assert spec["selector"]["matchLabels"].items() <= naming.pod_labels("exp", role, 0).items(), role
        assert "metrics" in dict(role_ports(role)), role
    (monitor,) = by_kind(render(tmp_path, "podMonitor.enabled=true", "scope=cluster"), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    for bad in ("podMonitor.enable=true", "podMonitor.interval=30"):
        proc = helm("template", "x", str(CHART), "--kube-version", "1.35.0", "--set", bad, tmp=tmp_path, check=False)
        assert proc.returncode != 0, f"--set {bad} was accepted"
