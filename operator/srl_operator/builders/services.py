"""Headless Services for the ZMQ endpoints of policy workers and trainers.

Workers publish their exact addresses in the name records; the Services give each pod a stable DNS
name (<pod>.<service>.<namespace>.svc) and name the ports for network policies and debugging.
"""

from __future__ import annotations

from typing import Any

from srl_operator import naming
from srl_operator.builders.common import metadata
from srl_runtime.config.experiment import RLExperiment

INFERENCE_PORT = 7100  # policy workers serve the inference stream here
SAMPLE_PORT = 7200  # trainers pull the sample stream here
TRAINER_PEER_PORT = 7300  # torch.distributed rendezvous between trainers
METRICS_PORT = 9100

_PORTS: dict[naming.Role, list[tuple[str, int]]] = {
    "policy": [("inference", INFERENCE_PORT), ("metrics", METRICS_PORT)],
    "trainer": [("sample", SAMPLE_PORT), ("peers", TRAINER_PEER_PORT), ("metrics", METRICS_PORT)],
}

ZMQ_ROLES: tuple[naming.Role, ...] = ("policy", "trainer")


def role_ports(role: naming.Role) -> list[tuple[str, int]]:
    """(name, port) a role listens on; actors and eval only expose metrics."""
    return _PORTS.get(role, [("metrics", METRICS_PORT)])


def zmq_service(exp: RLExperiment, role: naming.Role) -> dict[str, Any]:
    name = exp.metadata.name
    return {
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


def zmq_services(exp: RLExperiment) -> list[dict[str, Any]]:
    """One Service per role that serves a stream and has pods."""
    out = []
    if exp.spec.policy_workers.replicas > 0:
        out.append(zmq_service(exp, "policy"))
    out.append(zmq_service(exp, "trainer"))
    return out
