"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

ANY = "*"  # in an allow-list: everything is allowed

# The volume types the restricted Pod Security Standard admits: no hostPath, no node-level mounts.
RESTRICTED_VOLUME_TYPES: tuple[str, ...] = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
)  # fmt: skip


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    """'k=v,k2=v2' -> (('k', 'v'), ('k2', 'v2')); a part without '=' is a ValueError naming it."""
    out = []
    for part in _csv(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"$SRL_OPERATOR_POD_LABELS: {part!r} is not key=value")
        out.append((key.strip(), value.strip()))
    return tuple(out)


@dataclass(frozen=True)
class OperatorConfig:
    """Knobs that are the operator's, not the experiment's."""

    runtime_image: str = "srl-runtime:latest"
    runtime_image_pull_policy: str = "IfNotPresent"  # worker pods' pull policy unless the spec sets one
    pvc_access_mode: str = "ReadWriteMany"  # the parameter-DB claim's access mode unless the spec sets one
    actor_cpu_request: str = "1"  # actors step environments: one core each unless the spec says otherwise
    redis_image: str = "redis:7.2-alpine"
    reconcile_interval: float = 10.0  # seconds between level-based reconciles of one experiment
    api_concurrency: int = 16  # parallel create/delete calls (1,000 actors must not take minutes)
    redis_timeout: float = 1.0  # seconds to wait for the name-record Redis before giving up this round
    redis_host_suffix: str = "svc"  # <service>.<namespace>.<suffix>: how the operator reaches in-cluster Redis
    shared_redis_address: str | None = None  # the chart's Redis: experiments without redisAddress share it
    worker_uid: int = 1000  # non-root user of the runtime image
    operator_namespace: str | None = None  # where the operator's pod runs (downward API); NetworkPolicy peer
    operator_pod_labels: tuple[tuple[str, str], ...] = ()  # labels of the operator's pod; NetworkPolicy peer
    allowed_service_accounts: tuple[str, ...] = (ANY,)  # spec.cluster.serviceAccountName values allowed; "*": any
    allowed_volume_types: tuple[str, ...] = RESTRICTED_VOLUME_TYPES  # volume source types of spec.*.volumes; "*": any

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        default = cls()
        sas = env.get("SRL_ALLOWED_SERVICE_ACCOUNTS")
        volumes = env.get("SRL_ALLOWED_VOLUME_TYPES")
        return cls(
            runtime_image=env.get("SRL_RUNTIME_IMAGE", default.runtime_image),
            runtime_image_pull_policy=env.get("SRL_RUNTIME_IMAGE_PULL_POLICY", default.runtime_image_pull_policy),
            pvc_access_mode=env.get("SRL_PVC_ACCESS_MODE", default.pvc_access_mode),
            actor_cpu_request=env.get("SRL_ACTOR_CPU_REQUEST", default.actor_cpu_request),
            redis_image=env.get("SRL_REDIS_IMAGE", default.redis_image),
            reconcile_interval=float(env.get("SRL_RECONCILE_INTERVAL", default.reconcile_interval)),
            api_concurrency=int(env.get("SRL_API_CONCURRENCY", default.api_concurrency)),
            redis_timeout=float(env.get("SRL_REDIS_TIMEOUT", default.redis_timeout)),
            redis_host_suffix=env.get("SRL_REDIS_HOST_SUFFIX", default.redis_host_suffix),
            shared_redis_address=env.get("SRL_SHARED_REDIS_ADDRESS") or None,
            worker_uid=int(env.get("SRL_WORKER_UID", default.worker_uid)),
            operator_namespace=env.get("SRL_OPERATOR_NAMESPACE") or None,
            operator_pod_labels=_labels(env.get("SRL_OPERATOR_POD_LABELS", "")),
            # Unset: the default; set but empty: nothing beyond the pod's defaults is allowed.
            allowed_service_accounts=default.allowed_service_accounts if sas is None else _csv(sas),
            allowed_volume_types=default.allowed_volume_types if volumes is None else _csv(volumes),
        )
