"""The worker roles: the one table of what each role is called, where its settings live in the
document, and how many workers of it an experiment runs. The runtime (workers, launchers, `srl
worker`) and the operator (names, pods, restarts, status) all read it; it imports no torch, and the
experiment's models only when a function needs them (the CLI imports ROLES before anything else)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from srl_runtime.config.experiment import EvaluationSpec, ExperimentSpec, WorkerRoleSpec

Role = Literal["actor", "policy", "trainer", "eval"]
ROLES: tuple[Role, ...] = ("actor", "policy", "trainer", "eval")

# Trainers first: they publish version 1 and the sample-stream addresses actors wait for.
START_ORDER: tuple[Role, ...] = ("trainer", "policy", "eval", "actor")

# role -> its block of ExperimentSpec (Python name; the document's is its camelCase alias)
SPEC_FIELD: dict[Role, str] = {"actor": "actors", "policy": "policy_workers", "trainer": "trainers", "eval": "evaluation"}

SEED_STRIDE = 10_000  # workers' seeds: role k of ROLES starts at k * SEED_STRIDE (+ index)


def role_block(spec: ExperimentSpec, role: Role) -> WorkerRoleSpec | EvaluationSpec:
    """spec.<role's block>: the role's settings."""
    block: WorkerRoleSpec | EvaluationSpec = getattr(spec, SPEC_FIELD[role])
    return block


def worker_settings(spec: ExperimentSpec, role: Role) -> WorkerRoleSpec | None:
    """The shared worker settings (pod resources, env, volumes, threads) of a role; None for eval."""
    from srl_runtime.config.experiment import WorkerRoleSpec

    block = role_block(spec, role)
    return block if isinstance(block, WorkerRoleSpec) else None


def document_field(role: Role) -> str:
    """The camelCase name of the role's block in the document (and in the status): e.g. policyWorkers."""
    from srl_runtime.config.experiment import ExperimentSpec

    return ExperimentSpec.model_fields[SPEC_FIELD[role]].alias or SPEC_FIELD[role]


def replicas(spec: ExperimentSpec, role: Role) -> int:
    """How many workers of `role` the spec asks for (evaluation: one when enabled)."""
    from srl_runtime.config.experiment import EvaluationSpec

    block = role_block(spec, role)
    if isinstance(block, EvaluationSpec):
        return 1 if block.enabled else 0
    return block.replicas


def worker_counts(spec: ExperimentSpec) -> dict[Role, int]:
    """How many workers of each role an experiment runs."""
    return {role: replicas(spec, role) for role in ROLES}


def restart_limit(spec: ExperimentSpec, role: Role) -> int:
    """Restarts one worker of `role` may have before the run fails (spec.<role>.restartLimit)."""
    return role_block(spec, role).restart_limit


def device(spec: ExperimentSpec, role: Role) -> str:
    """The torch device of the role's workers."""
    return role_block(spec, role).device


def seed_offset(role: Role) -> int:
    """Where the role's workers' seeds start, relative to the experiment's."""
    return ROLES.index(role) * SEED_STRIDE
