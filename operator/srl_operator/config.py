"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from srl_runtime.config.env_settings import EXIT_INVALID, EnvironmentProblem, EnvSettings, load

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
            raise ValueError(f"{part!r} is not key=value")
        out.append((key.strip(), value.strip()))
    return tuple(out)


class OperatorConfig(EnvSettings):
    """Knobs that are the operator's, not the experiment's: field `x` is read from $SRL_X."""

    # Set but empty is meaningful here: an empty allow-list allows nothing.
    model_config = SettingsConfigDict(env_prefix="SRL_", env_ignore_empty=False)

    runtime_image: str = "srl-runtime:latest"
    runtime_image_pull_policy: str = "IfNotPresent"  # worker pods' pull policy unless the spec sets one
    pvc_access_mode: str = "ReadWriteMany"  # the parameter-DB claim's access mode unless the spec sets one
    actor_cpu_request: str = "1"  # actors step environments: one core each unless the spec says otherwise
    redis_image: str = "redis:7.2-alpine"
    reconcile_interval: float = Field(10.0, gt=0)  # seconds between level-based reconciles of one experiment
    api_concurrency: int = Field(16, ge=1)  # parallel create/delete calls (15,000 actors must not take many minutes)
    create_batch: int = Field(500, ge=1)  # pods created between two status writes while a large experiment comes up
    operator_metrics_port: int = Field(0, ge=0)  # serve the operator's Prometheus metrics here; 0: off
    redis_timeout: float = Field(1.0, gt=0)  # seconds to wait for the name-record Redis before giving up this round
    redis_host_suffix: str = "svc"  # <service>.<namespace>.<suffix>: how the operator reaches in-cluster Redis
    shared_redis_address: str | None = None  # the chart's Redis: experiments without redisAddress share it
    worker_uid: int = Field(1000, ge=0)  # non-root user of the runtime image
    operator_namespace: str | None = None  # where the operator's pod runs (downward API); NetworkPolicy peer
    operator_pod_labels: Annotated[tuple[tuple[str, str], ...], NoDecode] = ()  # labels of the operator's pod ('k=v,k2=v2'); NetworkPolicy peer
    allowed_service_accounts: Annotated[tuple[str, ...], NoDecode] = (ANY,)  # spec.cluster.serviceAccountName values allowed (comma-separated); "*": any
    allowed_volume_types: Annotated[tuple[str, ...], NoDecode] = RESTRICTED_VOLUME_TYPES  # volume source types of spec.*.volumes; "*": any

    @field_validator("shared_redis_address", "operator_namespace", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None

    @field_validator("allowed_service_accounts", "allowed_volume_types", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _csv(value) if isinstance(value, str) else value

    @field_validator("operator_pod_labels", mode="before")
    @classmethod
    def _key_values(cls, value: Any) -> Any:
        return _labels(value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        """The settings in `env` (default os.environ); EnvironmentProblem names a bad variable."""
        return load(cls, env)


def load_config() -> OperatorConfig:
    """The operator's settings from its environment; a bad value ends the process with one line
    naming the variable and exit code 2 (the operator must not start half-configured)."""
    try:
        return OperatorConfig.from_env()
    except EnvironmentProblem as err:
        print(f"srl-operator: {err}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID) from None
