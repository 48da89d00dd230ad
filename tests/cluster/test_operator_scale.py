# ruff: noqa: F811 - pytest fixtures are imported and then named as parameters
"""The operator with a few hundred actors: status while pods are created, and no LIST at rest.

The 15,000-actor figures belong to `bench/operator_scale.py`; here the mechanisms are checked: a
reconcile that creates pods in batches writes the status before the first pod and between batches,
and a converged experiment is reconciled from the watch-fed cache without any LIST call.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from controlplane import ControlPlane
from prometheus_client.parser import text_string_to_metric_families
from test_operator_fixtures import (  # noqa: F401 - fixtures, requested by name
    OperatorProcess,
    _free_port,
    crd_installed,
    dump,
    eventually,
    experiment_doc,
    fake_nodes,
    operator_namespace,
    pre_bind_volume,
    start_operator,
    status_of,
    stop_operator,
)

BATCH = 40  # pods per batch between two status writes (SRL_CREATE_BATCH)
INTERVAL = 2.0  # seconds between timer reconciles


@pytest.fixture(scope="module")
def scale_operator(
    control_plane: ControlPlane, fake_nodes: list[str], operator_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    port = _free_port()
    op = start_operator(
        control_plane, operator_namespace, tmp_path_factory.mktemp("operator") / "operator.log",
        extra_env={"SRL_CREATE_BATCH": str(BATCH), "SRL_OPERATOR_METRICS_PORT": str(port),
                   "SRL_RECONCILE_INTERVAL": str(INTERVAL)},
    )  # fmt: skip
    op.metrics_port = port  # type: ignore[attr-defined]
    try:
        yield op
    finally:
        stop_operator(control_plane, op)


def operator_metrics(op: OperatorProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the operator's /metrics: (name, sorted labels) -> value."""
    url = f"http://127.0.0.1:{op.metrics_port}/metrics"  # type: ignore[attr-defined]
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in metrics.items() if n == name and all((k, labels[k]) in ls for k in labels))


def pod_count(cp: ControlPlane, ns: str, name: str) -> int:
    out = cp.kubectl("get", "pods", "-n", ns, "-l", f"srl.dev/experiment={name},srl.dev/role", "-o", "name").stdout
    return len(out.split())


def apply_actors(cp: ControlPlane, ns: str, name: str, n: int) -> None:
    pre_bind_volume(cp, ns, name)
    cp.apply({**experiment_doc(name, actors={"replicas": n, "resources": {"cpu": "10m"}}),
              "metadata": {"name": name, "namespace": ns}})  # fmt: skip


def test_status_is_written_while_a_large_experiment_is_created(
    control_plane: ControlPlane, scale_operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name, n = control_plane, operator_namespace, "big", 400
    apply_actors(cp, ns, name, n)
    seen: list[tuple[int | None, int]] = []  # (status.actors.replicas then, pods existing right after)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        actors = (status_of(cp, ns, name).get("actors") or {})
        seen.append((actors.get("replicas"), pod_count(cp, ns, name)))
        if actors.get("ready") == n:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{n} actors never ready; samples {seen[-5:]}\n{dump(cp, ns, name, scale_operator)}")
    # The status existed while pods were still missing, and showed a count between none and all.
    early = [(r, pods) for r, pods in seen if r is not None and pods < n + 1]
    assert early, f"no status before all {n + 1} pods existed: {seen[:20]}"
    assert any(0 < r < n for r, _ in early), f"no intermediate actor count in the status: {early[:20]}"


def test_an_idle_experiment_is_reconciled_without_a_list(
    control_plane: ControlPlane, scale_operator: OperatorProcess, operator_namespace: str
) -> None:
    cp, ns, name, n = control_plane, operator_namespace, "idle", 50
    apply_actors(cp, ns, name, n)
    eventually(lambda: (status_of(cp, ns, name).get("actors") or {}).get("ready") == n, 120, what=f"{n} actors ready")
    before = operator_metrics(scale_operator)
    time.sleep(4 * INTERVAL + 1)
    after = operator_metrics(scale_operator)
    reconciles = total(after, "srl_operator_reconcile_seconds_count") - total(before, "srl_operator_reconcile_seconds_count")
    lists = total(after, "srl_operator_api_requests_total", verb="list") - total(before, "srl_operator_api_requests_total", verb="list")
    writes = sum(
        total(after, "srl_operator_api_requests_total", verb=v) - total(before, "srl_operator_api_requests_total", verb=v)
        for v in ("create", "delete")
    )
    assert reconciles >= 3, f"the timer reconciled {reconciles} times in {4 * INTERVAL + 1}s"
    assert lists == 0, f"{lists} LIST calls during {reconciles} reconciles of a converged experiment"
    assert writes == 0, f"{writes} creates/deletes during {reconciles} reconciles of a converged experiment"
    # The cache still follows the cluster: a pod deleted behind the operator's back comes back.
    cp.kubectl("delete", "pod", "-n", ns, f"{name}-actor-7", "--wait=true")
    eventually(lambda: pod_count(cp, ns, name) == n + 1 and
               (status_of(cp, ns, name).get("actors") or {}).get("ready") == n, 60, what="actor-7 recreated")  # fmt: skip
