"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    """Knobs that are the operator's, not the experiment's."""

    runtime_image: str = "srl-runtime:latest"
    runtime_image_pull_policy: str = "IfNotPresent"  # worker pods' pull policy unless the spec sets one
    redis_image: str = "redis:7.2-alpine"
    reconcile_interval: float = 10.0  # seconds between level-based reconciles of one experiment
    api_concurrency: int = 16  # parallel create/delete calls (1,000 actors must not take minutes)
    redis_timeout: float = 1.0  # seconds to wait for the name-record Redis before giving up this round
    redis_host_suffix: str = "svc"  # <service>.<namespace>.<suffix>: how the operator reaches in-cluster Redis
    shared_redis_address: str | None = None  # the chart's Redis: experiments without redisAddress share it
    worker_uid: int = 1000  # non-root user of the runtime image

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        default = cls()
        return cls(
            runtime_image=env.get("SRL_RUNTIME_IMAGE", default.runtime_image),
            runtime_image_pull_policy=env.get("SRL_RUNTIME_IMAGE_PULL_POLICY", default.runtime_image_pull_policy),
            redis_image=env.get("SRL_REDIS_IMAGE", default.redis_image),
            reconcile_interval=float(env.get("SRL_RECONCILE_INTERVAL", default.reconcile_interval)),
            api_concurrency=int(env.get("SRL_API_CONCURRENCY", default.api_concurrency)),
            redis_timeout=float(env.get("SRL_REDIS_TIMEOUT", default.redis_timeout)),
            redis_host_suffix=env.get("SRL_REDIS_HOST_SUFFIX", default.redis_host_suffix),
            shared_redis_address=env.get("SRL_SHARED_REDIS_ADDRESS") or None,
            worker_uid=int(env.get("SRL_WORKER_UID", default.worker_uid)),
        )
