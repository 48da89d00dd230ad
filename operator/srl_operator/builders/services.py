"""Headless Services for the ZMQ endpoints of policy workers and trainers.

Workers publish their exact addresses in the name records; the Services give each pod a stable DNS
name (<pod>.<service>.<namespace>.svc) and name the ports for network policies and debugging.
"""

from __future__ import annotations

from typing import Any

from srl_operator import naming
from srl_operator.builders.common import metadata, with_experiment_metadata
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.ports import METRICS_PORT, role_ports

__all__ = ["METRICS_PORT", "ZMQ_ROLES", "role_ports", "zmq_service", "zmq_services"]

ZMQ_ROLES: tuple[naming.Role, ...] = ("policy", "trainer")


def zmq_service(exp: RLExperiment, role: naming.Role) -> dict[str, Any]:
    name = exp.metadata.name
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            naming.service_name(name, role), exp.metadata.namespace, naming.component_labels(name, f"zmq-{role}")
        ),
        "spec": {
            "clusterIP": "None",
            # Workers register in name records before they are Ready; peers must resolve them anyway.
            "publishNotReadyAddresses": True,
            "selector": naming.role_selector(name, role),
            "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in role_ports(role)],
        },
    }
    return with_experiment_metadata(service, exp)


def zmq_services(exp: RLExperiment) -> list[dict[str, Any]]:
    """One Service per role that serves a stream and has pods."""
    out = []
    if exp.spec.policy_workers.replicas > 0:
        out.append(zmq_service(exp, "policy"))
    out.append(zmq_service(exp, "trainer"))
    return out
