"""Deterministic names and labels of an experiment's children.

Names are fixed per (experiment, role, index) so a create that races with another (or with a restarted
operator) gets 409 AlreadyExists instead of a duplicate.
"""

from __future__ import annotations

import hashlib

from srl_runtime.config.roles import ROLES, Role

__all__ = ["ROLES", "Role"]  # the role table is the runtime's (srl_runtime.config.roles)

LABEL_EXPERIMENT = "srl.dev/experiment"
LABEL_ROLE = "srl.dev/role"
LABEL_INDEX = "srl.dev/index"
LABEL_COMPONENT = "srl.dev/component"  # redis, redis-auth, params, experiment, zmq, isolation — non-pod children
ANNOTATION_TEMPLATE_HASH = "srl.dev/template-hash"
ANNOTATION_DOCUMENT_HASH = "srl.dev/document-hash"  # the experiment document the pod's worker reads
ANNOTATION_RESTARTS = "srl.dev/restarts"  # times this pod's worker (role, index) was restarted before it
MANAGED_BY = {"app.kubernetes.io/managed-by": "srl-operator", "app.kubernetes.io/part-of": "srl"}

DNS_LABEL_MAX = 63


def dns_label(*parts: str) -> str:
    """`parts` joined by '-' as a DNS-1035 label (Service names): <= 63 chars, starting with a letter.

    Too-long names keep a prefix and get a short hash so two experiments never collide.
    """
    name = "-".join(parts)
    if not name[0].isalpha():
        name = "x" + name
    if len(name) <= DNS_LABEL_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name[: DNS_LABEL_MAX - 9].rstrip("-") + "-" + digest


def pod_name(experiment: str, role: Role, index: int) -> str:
    """e.g. cartpole-actor-3 (pod names may be DNS subdomains, but the hostname is a label)."""
    return dns_label(experiment, role, str(index))


def configmap_name(experiment: str) -> str:
    return dns_label(experiment, "experiment")


def redis_name(experiment: str) -> str:
    return dns_label(experiment, "redis")


def redis_auth_name(experiment: str) -> str:
    """The Secret holding the password of the experiment's own Redis."""
    return dns_label(experiment, "redis-auth")


def isolation_policy_name(experiment: str) -> str:
    """The NetworkPolicy that admits only the experiment's pods and the operator."""
    return dns_label(experiment, "isolation")


def pvc_name(experiment: str) -> str:
    return dns_label(experiment, "params")


def service_name(experiment: str, role: Role) -> str:
    """Headless Service giving the role's pods stable DNS names (<pod>.<service>)."""
    return dns_label(experiment, role)


def experiment_labels(experiment: str) -> dict[str, str]:
    """Labels on every child: the operator lists children by LABEL_EXPERIMENT."""
    return {LABEL_EXPERIMENT: experiment, **MANAGED_BY}


def component_labels(experiment: str, component: str) -> dict[str, str]:
    return {**experiment_labels(experiment), LABEL_COMPONENT: component}


def role_selector(experiment: str, role: Role) -> dict[str, str]:
    """Selects one role's worker pods."""
    return {LABEL_EXPERIMENT: experiment, LABEL_ROLE: role}


def pod_labels(experiment: str, role: Role, index: int) -> dict[str, str]:
    return {
        **experiment_labels(experiment),
        LABEL_ROLE: role,
        LABEL_INDEX: str(index),
        "app.kubernetes.io/name": "srl-worker",
        "app.kubernetes.io/instance": experiment,
        "app.kubernetes.io/component": role,
    }


# Selects every experiment's worker pods and nothing else: pods that carry a role label. The
# experiment label alone also matches pods the operator does not own directly (the Redis
# Deployment's pods); the reconciler must never treat those as workers.
WORKER_PODS_SELECTOR = f"{LABEL_EXPERIMENT},{LABEL_ROLE}"


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
