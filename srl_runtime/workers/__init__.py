"""Worker roles and how to build one."""

from __future__ import annotations

from srl_runtime.config.roles import ROLES, restart_limit, worker_counts
from srl_runtime.workers.base import PollResult, Worker, WorkerContext


def make_worker(ctx: WorkerContext) -> Worker:
    """The worker for ctx.role (imports lazily: a pod loads only its own role's code)."""
    if ctx.role == "actor":
        from srl_runtime.workers.actor import ActorWorker

        return ActorWorker(ctx)
    if ctx.role == "policy":
        from srl_runtime.workers.policy_worker import PolicyWorker

        return PolicyWorker(ctx)
    if ctx.role == "trainer":
        from srl_runtime.workers.trainer import TrainerWorker

        return TrainerWorker(ctx)
    if ctx.role == "eval":
        from srl_runtime.workers.evaluation import EvaluationWorker

        return EvaluationWorker(ctx)
    raise ValueError(f"unknown worker role {ctx.role!r}; expected one of {ROLES}")


__all__ = ["ROLES", "PollResult", "Worker", "WorkerContext", "make_worker", "restart_limit", "worker_counts"]
