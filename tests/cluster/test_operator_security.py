# ruff: noqa: F811 - pytest fixtures are imported and then named as parameters
"""Trust boundaries on a real kube-apiserver: the per-experiment Redis password (a Secret owned by the
experiment), the NetworkPolicy around the experiment, and what the operator allows an experiment to
put into its pods (the chart's `workerPolicy`).

The chart is installed with a restricted `workerPolicy.allowedServiceAccounts`; the operator runs with
the environment the chart gives it (tests/cluster/test_operator_fixtures.chart_operator_env).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from controlplane import ControlPlane
from test_operator_fixtures import (  # noqa: F401 - fixtures, requested by name
    OPERATOR_NAMESPACE,
    OperatorProcess,
    children,
    dump,
    events_for,
    eventually,
    experiment_doc,
    fake_nodes,
    live,
    operator_namespace,
    pre_bind_volume,
    rlx,
    start_operator,
    status_of,
    stop_operator,
    worker_pods,
)

ALLOWED_SA = "srl-workers"


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, fake_nodes: list[str], operator_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator-security") / "operator.log"
    op = start_operator(control_plane, operator_namespace, log, sets=(f"workerPolicy.allowedServiceAccounts={{{ALLOWED_SA}}}",))
    try:
        yield op
    finally:
        stop_operator(control_plane, op)


def apply_experiment(cp: ControlPlane, namespace: str, doc: dict[str, Any]) -> None:
    pre_bind_volume(cp, namespace, doc["metadata"]["name"])
    cp.apply({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})


def wait_phase(cp: ControlPlane, ns: str, name: str, phase: str, op: OperatorProcess, timeout: float = 90) -> dict[str, Any]:
    try:
        return eventually(lambda: (st := status_of(cp, ns, name)).get("phase") == phase and st, timeout, what=f"{name} {phase}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{dump(cp, ns, name, op)}") from None


def secret(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    return cp.kubectl_json("get", "secret", name, "-n", ns)


def test_redis_password_secret_and_network_policy(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name = control_plane, operator_namespace, "fenced"
    apply_experiment(cp, ns, experiment_doc(name, actors={"replicas": 2}, policyWorkers={"replicas": 1}))
    wait_phase(cp, ns, name, "Running", operator)
    uid = rlx(cp, ns, name)["metadata"]["uid"]

    s = secret(cp, ns, f"{name}-redis-auth")
    (ref,) = s["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("RLExperiment", uid, True)
    password = base64.b64decode(s["data"]["password"]).decode()
    assert len(password) >= 40

    (dep,) = children(cp, ns, name, "deployments")
    redis = dep["spec"]["template"]["spec"]["containers"][0]
    assert "--protected-mode" not in redis["args"] and redis["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert redis["env"] == [
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": f"{name}-redis-auth", "key": "password"}}}
    ]
    for pod in live(worker_pods(cp, ns, name)):
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["SRL_NAME_RECORDS_REDIS_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": f"{name}-redis-auth", "key": "password"}
        }

    # Nothing else the operator wrote holds the password: manifests, ConfigMap, status, Events, its log.
    written = json.dumps([children(cp, ns, name, k) for k in ("pods", "configmaps", "deployments", "services")])
    written += json.dumps(status_of(cp, ns, name)) + json.dumps(events_for(cp, ns, name))
    assert password not in written and password not in operator.log.read_text(errors="replace")

    (policy,) = children(cp, ns, name, "networkpolicies")
    assert policy["metadata"]["name"] == f"{name}-isolation"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == uid
    own = {"matchLabels": {"srl.dev/experiment": name}}
    spec = policy["spec"]
    assert spec["podSelector"] == own and spec["policyTypes"] == ["Ingress"]
    (peers, metrics) = spec["ingress"]
    op_labels = dict(kv.split("=", 1) for kv in operator.chart_env["SRL_OPERATOR_POD_LABELS"].split(","))
    operator_pod = cp.kubectl_json("get", "deployment", "srl-operator", "-n", OPERATOR_NAMESPACE)
    assert op_labels == operator_pod["spec"]["selector"]["matchLabels"]  # the chart's operator pods
    assert peers == {
        "from": [
            {"podSelector": own},
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}},
                "podSelector": {"matchLabels": op_labels},
            },
        ]
    }
    assert metrics == {"ports": [{"protocol": "TCP", "port": 9100}]}
    # Every pod of the experiment is inside the fence: workers and the Redis pod.
    selected = cp.kubectl_json("get", "pods", "-n", ns, "-l", f"srl.dev/experiment={name}")["items"]
    assert {p["metadata"]["labels"].get("srl.dev/component", "worker") for p in selected} >= {"redis", "worker"}

    # Level-based and never rewritten: an operator restart and more rounds keep the same Secret and policy.
    before = (s["metadata"]["uid"], s["metadata"]["resourceVersion"], policy["metadata"]["resourceVersion"])
    tick = f"[{ns}/{name}] Timer 'on_timer' succeeded"
    ticks = operator.log.read_text(errors="replace").count(tick)
    operator.kill()
    operator.start()
    eventually(lambda: operator.log.read_text(errors="replace").count(tick) >= ticks + 3 or None, 90,
               what="three timer rounds of the restarted operator")  # fmt: skip
    s2 = secret(cp, ns, f"{name}-redis-auth")
    (policy2,) = children(cp, ns, name, "networkpolicies")
    assert (s2["metadata"]["uid"], s2["metadata"]["resourceVersion"], policy2["metadata"]["resourceVersion"]) == before
    assert not [e for e in events_for(cp, ns, name) if e["reason"] == "Updated"]


def test_external_redis_gets_no_secret_but_still_a_policy(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name = control_plane, operator_namespace, "outside"
    apply_experiment(cp, ns, experiment_doc(name, nameRecords={"redisAddress": "redis.infra.invalid:6379"}))
    wait_phase(cp, ns, name, "Running", operator)
    got = cp.kubectl("get", "secret", f"{name}-redis-auth", "-n", ns, check=False)
    assert got.returncode != 0 and "NotFound" in got.stderr
    assert [p["metadata"]["name"] for p in children(cp, ns, name, "networkpolicies")] == [f"{name}-isolation"]


@pytest.mark.parametrize(
    ("case", "spec", "field"),
    [
        (
            "hostpath",
            {"actors": {"volumes": [{"name": "host", "mountPath": "/host", "source": {"hostPath": {"path": "/"}}}]}},
            "spec.actors.volumes[0].source: hostPath volumes are not allowed",
        ),
        (
            "service-account",
            {"cluster": {"serviceAccountName": "kube-admin"}},
            f"spec.cluster.serviceAccountName: 'kube-admin' is not allowed by the operator (allowed: {ALLOWED_SA})",
        ),
    ],
    ids=["hostpath-by-default", "service-account-not-in-chart-values"],
)
def test_what_the_operator_does_not_allow_fails_with_an_event(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    cp, ns, name = control_plane, operator_namespace, f"denied-{case}"
    apply_experiment(cp, ns, experiment_doc(name, **spec))
    st = wait_phase(cp, ns, name, "Failed", operator)
    cond = next(c for c in st["conditions"] if c["type"] == "SpecValid")
    assert cond["status"] == "False" and cond["reason"] == "NotAllowed" and field in cond["message"], cond
    eventually(lambda: [e for e in events_for(cp, ns, name) if e["reason"] == "NotAllowed" and e["type"] == "Warning"], 30,
               what="a NotAllowed Warning Event")  # fmt: skip
    assert not worker_pods(cp, ns, name) and not children(cp, ns, name, "configmaps")


def test_listed_service_account_runs(control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str) -> None:
    cp, ns, name = control_plane, operator_namespace, "allowed-sa"
    cp.kubectl("create", "serviceaccount", ALLOWED_SA, "-n", ns, check=False)
    apply_experiment(cp, ns, experiment_doc(name, cluster={"serviceAccountName": ALLOWED_SA}))
    wait_phase(cp, ns, name, "Running", operator)
    assert {p["spec"]["serviceAccountName"] for p in live(worker_pods(cp, ns, name))} == {ALLOWED_SA}


def test_outdated_redis_and_policy_are_put_right(
    control_plane: ControlPlane, operator: OperatorProcess, operator_namespace: str
) -> None:
    """An experiment from before passwords (its Redis without --requirepass) and a policy someone
    widened: the operator brings both back to what it builds, in place."""
    cp, ns, name = control_plane, operator_namespace, "upgraded"
    apply_experiment(cp, ns, experiment_doc(name))
    wait_phase(cp, ns, name, "Running", operator)
    old_container = {"name": "redis", "args": ["--save", "", "--appendonly", "no", "--protected-mode", "no"], "env": []}
    cp.kubectl("patch", "deployment", f"{name}-redis", "-n", ns, "--type=strategic", "-p", json.dumps({
        "metadata": {"annotations": {"srl.dev/template-hash": "from-an-older-operator"}},
        "spec": {"template": {"spec": {"containers": [old_container]}}},
    }))  # fmt: skip
    cp.kubectl("patch", "networkpolicy", f"{name}-isolation", "-n", ns, "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": "/spec/ingress", "value": [{}]}]))  # fmt: skip

    def restored() -> bool:
        (dep,) = children(cp, ns, name, "deployments")
        (policy,) = children(cp, ns, name, "networkpolicies")
        redis = dep["spec"]["template"]["spec"]["containers"][0]
        return "--requirepass" in redis["args"] and bool(redis.get("env")) and len(policy["spec"]["ingress"]) == 2

    eventually(restored, 60, what="Redis Deployment and NetworkPolicy restored")
    (dep,) = children(cp, ns, name, "deployments")
    assert "--protected-mode" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert dep["metadata"]["annotations"].get("deployment.kubernetes.io/revision")  # the controller's stay
    reasons = [e["message"] for e in events_for(cp, ns, name) if e["reason"] == "Updated"]
    assert any("Deployment" in m for m in reasons) and any("NetworkPolicy" in m for m in reasons), reasons
