"""The per-experiment Redis for name records: a Deployment and its Service.

Name records are soft state (workers re-register with keep-alives), so Redis runs without persistence.
It requires the password from the experiment's `<exp>-redis-auth` Secret (builders/secrets.py): the
container gets it by `secretKeyRef` and the kubelet expands `$(REDIS_PASSWORD)` in the arguments, so
it appears in neither the Deployment nor any ConfigMap.
"""

from __future__ import annotations

from typing import Any

from srl_operator import naming
from srl_operator.builders.common import (
    container_security_context,
    metadata,
    template_hash,
    with_experiment_metadata,
)
from srl_operator.builders.secrets import REDIS_PASSWORD_KEY
from srl_operator.config import OperatorConfig
from srl_runtime.config import roles
from srl_runtime.config.experiment import RLExperiment

REDIS_PORT = 6379
REDIS_UID = 999  # the redis user of the official image
PASSWORD_ENV = "REDIS_PASSWORD"  # the Redis container's variable holding the password
MAXCLIENTS_DEFAULT = 10_000  # Redis's own default
MAXCLIENTS_MARGIN = 1_000  # the operator, `srl` clients, connections of restarted workers not yet closed
MAXCLIENTS_STEP = 10_000  # rounded up to this, so scaling actors restarts Redis only across a step


def max_clients(exp: RLExperiment) -> int:
    """Redis `maxclients` for the experiment: two connections per worker (its main thread and its
    keep-alive thread) plus a margin, rounded up to MAXCLIENTS_STEP, and never below Redis's
    default. Redis needs maxclients + 32 file descriptors; the pod's limit is the container
    runtime's (containerd and CRI-O: usually 1,048,576), so nothing else needs raising."""
    workers = sum(roles.worker_counts(exp.spec).values())
    wanted = 2 * workers + MAXCLIENTS_MARGIN
    return max(MAXCLIENTS_DEFAULT, -(-wanted // MAXCLIENTS_STEP) * MAXCLIENTS_STEP)


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


def password_env(exp: RLExperiment, name: str) -> dict[str, Any]:
    """An env entry `name` holding the experiment's Redis password (a secretKeyRef)."""
    ref = {"name": naming.redis_auth_name(exp.metadata.name), "key": REDIS_PASSWORD_KEY}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def redis_deployment(exp: RLExperiment, cfg: OperatorConfig) -> dict[str, Any]:
    """The Deployment carries the hash of its own manifest: the reconciler updates an outdated one."""
    name = exp.metadata.name
    labels = naming.component_labels(name, "redis")
    dep: dict[str, Any] = {
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
                            "args": [
                                "--save", "", "--appendonly", "no", "--maxclients", str(max_clients(exp)),
                                "--requirepass", f"$({PASSWORD_ENV})",
                            ],  # fmt: skip
                            "env": [password_env(exp, PASSWORD_ENV)],
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
    dep["metadata"]["annotations"] = {naming.ANNOTATION_TEMPLATE_HASH: template_hash(dep)}
    # After the hash: an edit of the experiment's own labels does not restart Redis.
    return with_experiment_metadata(dep, exp)


def redis_service(exp: RLExperiment) -> dict[str, Any]:
    name = exp.metadata.name
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(naming.redis_name(name), exp.metadata.namespace, naming.component_labels(name, "redis")),
        "spec": {
            "selector": {naming.LABEL_EXPERIMENT: name, naming.LABEL_COMPONENT: "redis"},
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT}],
        },
    }
    return with_experiment_metadata(service, exp)
