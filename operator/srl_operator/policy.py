"""What the operator allows an experiment to put into its pods, beyond the spec's own validation.

Creating an RLExperiment is creating pods: they run under `spec.cluster.serviceAccountName` and mount
`spec.<role>.volumes`. The operator's allow-lists (OperatorConfig, chart values `workerPolicy.*`)
bound both; `problems` names each field that asks for more. Pure.
"""

from __future__ import annotations

from srl_operator.config import ANY, OperatorConfig
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.roles import ROLES, document_field, worker_settings


def _allowed(value: str, allowed: tuple[str, ...]) -> bool:
    return ANY in allowed or value in allowed


def _shown(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed) if allowed else "none"


def problems(exp: RLExperiment, cfg: OperatorConfig) -> list[str]:
    """'spec.field: why' for every setting the operator does not allow (empty: allowed)."""
    out: list[str] = []
    sa = exp.spec.cluster.service_account_name
    if sa and not _allowed(sa, cfg.allowed_service_accounts):
        out.append(
            f"spec.cluster.serviceAccountName: {sa!r} is not allowed by the operator "
            f"(allowed: {_shown(cfg.allowed_service_accounts)})"
        )
    for role in ROLES:
        settings = worker_settings(exp.spec, role)
        if settings is None:  # the evaluation block has no volumes
            continue
        doc_field = document_field(role)
        for i, volume in enumerate(settings.volumes):
            for kind in volume.source:
                if not _allowed(kind, cfg.allowed_volume_types):
                    out.append(
                        f"spec.{doc_field}.volumes[{i}].source: {kind} volumes are not allowed by the operator "
                        f"(allowed: {_shown(cfg.allowed_volume_types)})"
                    )
    return out
