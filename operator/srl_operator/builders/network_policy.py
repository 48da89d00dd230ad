"""The NetworkPolicy that fences an experiment in: its Redis and stream ports admit only its own
pods and the operator; the metrics port stays open for Prometheus.

It selects every pod of the experiment (workers and the Redis pod carry `srl.dev/experiment`) and
restricts ingress only: workers still reach MongoDB, DNS and whatever their environment needs.
"""

from __future__ import annotations

from typing import Any

from srl_operator import naming
from srl_operator.builders.common import metadata, with_experiment_metadata
from srl_operator.config import OperatorConfig
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.ports import METRICS_PORT

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def operator_peer(cfg: OperatorConfig) -> dict[str, Any] | None:
    """The operator's pods as a NetworkPolicy peer; None when the operator does not know its namespace
    (run outside the cluster: it then never reaches an experiment's Redis through the pod network)."""
    if not cfg.operator_namespace:
        return None
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: cfg.operator_namespace}},
        "podSelector": {"matchLabels": dict(cfg.operator_pod_labels)},
    }


def isolation_policy(exp: RLExperiment, cfg: OperatorConfig) -> dict[str, Any]:
    name = exp.metadata.name
    own_pods = {"matchLabels": {naming.LABEL_EXPERIMENT: name}}
    peers: list[dict[str, Any]] = [{"podSelector": own_pods}]
    operator = operator_peer(cfg)
    if operator is not None:
        peers.append(operator)
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(
            naming.isolation_policy_name(name), exp.metadata.namespace, naming.component_labels(name, "isolation")
        ),
        "spec": {
            "podSelector": own_pods,
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers},  # every port: Redis, inference, samples, trainer rendezvous
                {"ports": [{"protocol": "TCP", "port": METRICS_PORT}]},  # from anywhere: Prometheus
            ],
        },
    }
    return with_experiment_metadata(policy, exp)
