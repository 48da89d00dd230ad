"""The per-experiment Redis for name records: a Deployment and its Service.

Name records are soft state (workers re-register with keep-alives), so Redis runs without persistence.
"""

from __future__ import annotations

from typing import Any

from srl_operator import naming
from srl_operator.builders.common import container_security_context, metadata
from srl_operator.config import OperatorConfig
from srl_runtime.config.experiment import RLExperiment

REDIS_PORT = 6379
REDIS_UID = 999  # the redis user of the official image


def needs_redis(exp: RLExperiment, cfg: OperatorConfig) -> bool:
    """False when the spec points at an existing Redis or the operator has a shared one."""
    return not (exp.spec.name_records.redis_address or cfg.shared_redis_address)


def redis_address(exp: RLExperiment, cfg: OperatorConfig) -> str:
    """host:port workers (and the operator) use for name records: spec, shared, or the experiment's own."""
    if exp.spec.name_records.redis_address:
        return exp.spec.name_records.redis_address
    if cfg.shared_redis_address:
        return cfg.shared_redis_address
    ns = exp.metadata.namespace or "default"
    return f"{naming.redis_name(exp.metadata.name)}.{ns}.{cfg.redis_host_suffix}:{REDIS_PORT}"


def redis_deployment(exp: RLExperiment, cfg: OperatorConfig) -> dict[str, Any]:
    name = exp.metadata.name
    labels = naming.component_labels(name, "redis")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(naming.redis_name(name), exp.metadata.namespace, labels),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {naming.LABEL_EXPERIMENT: name, naming.LABEL_COMPONENT: "redis"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": REDIS_UID,
                        "runAsGroup": REDIS_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "redis",
                            "image": cfg.redis_image,
                            "args": ["--save", "", "--appendonly", "no", "--protected-mode", "no"],
                            "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
                            "readinessProbe": {"tcpSocket": {"port": REDIS_PORT}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": REDIS_PORT}, "periodSeconds": 10},
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                            "securityContext": container_security_context(),
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def redis_service(exp: RLExperiment) -> dict[str, Any]:
    name = exp.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(naming.redis_name(name), exp.metadata.namespace, naming.component_labels(name, "redis")),
        "spec": {
            "selector": {naming.LABEL_EXPERIMENT: name, naming.LABEL_COMPONENT: "redis"},
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT}],
        },
    }
