"""Worker roles and how to build one."""

from __future__ import annotations

from srl_runtime.workers.base import PollResult, Worker, WorkerContext

ROLES = ("trainer", "policy", "actor", "eval")


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


def worker_counts(spec) -> dict[str, int]:  # noqa: ANN001 - ExperimentSpec, imported lazily by callers
    """How many workers of each role an experiment runs."""
    return {
        "trainer": spec.trainers.replicas,
        "policy": spec.policy_workers.replicas,
        "actor": spec.actors.replicas,
        "eval": 1 if spec.evaluation.enabled else 0,
    }


def restart_limit(spec, role: str) -> int:  # noqa: ANN001 - ExperimentSpec
    """Restarts one worker of `role` may have before the run fails (spec.<role>.restartLimit)."""
    block = {"trainer": spec.trainers, "policy": spec.policy_workers, "actor": spec.actors, "eval": spec.evaluation}
    return int(block[role].restart_limit)


__all__ = ["ROLES", "PollResult", "Worker", "WorkerContext", "make_worker", "restart_limit", "worker_counts"]
