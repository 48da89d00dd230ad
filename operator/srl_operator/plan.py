"""The pod plan: desired worker pods vs observed ones -> what to create and what to delete. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srl_operator import naming
from srl_operator.builders.pods import desired_replicas, worker_pod
from srl_operator.config import OperatorConfig
from srl_operator.observed import ObservedPod
from srl_runtime.config.experiment import RLExperiment


@dataclass
class PodPlan:
    """Actions of one reconcile round. Deleted pods are recreated in a later round, once gone."""

    create: list[dict[str, Any]] = field(default_factory=list)
    delete_extra: list[str] = field(default_factory=list)  # scale-down / suspend / unknown, highest index first
    delete_failed: list[str] = field(default_factory=list)  # failed pods to replace
    delete_stale: list[str] = field(default_factory=list)  # pods built from an outdated template

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete_extra or self.delete_failed or self.delete_stale)


def plan_pods(
    exp: RLExperiment,
    observed: list[ObservedPod],
    cfg: OperatorConfig,
    *,
    finished: bool = False,
) -> PodPlan:
    """Level-based: the plan depends only on the spec and what exists now.

    `finished` (the experiment Succeeded) stops creating and replacing pods; extras are still removed.
    """
    plan = PodPlan()
    by_name = {p.name: p for p in observed}
    wanted: set[str] = set()
    for role in naming.ROLES:
        replicas = desired_replicas(exp, role)
        for index in range(replicas):
            name = naming.pod_name(exp.metadata.name, role, index)
            wanted.add(name)
            pod = by_name.get(name)
            if finished:
                continue
            if pod is None:
                plan.create.append(worker_pod(exp, role, index, cfg))
            elif pod.deleting or pod.phase == "Succeeded":
                continue  # wait for it to go / a finished worker is not restarted
            elif pod.phase == "Failed":
                plan.delete_failed.append(name)
            elif pod.template_hash != _hash_of(worker_pod(exp, role, index, cfg)):
                plan.delete_stale.append(name)
    # Only worker pods (those with a role) are ours to remove; a pod of the experiment without one
    # belongs to another controller (the Redis Deployment's ReplicaSet).
    extras = [p for p in observed if p.role is not None and p.name not in wanted and not p.deleting]
    extras.sort(key=lambda p: (p.role or "", -(p.index if p.index is not None else 1 << 30)))
    plan.delete_extra = [p.name for p in extras]
    return plan


def _hash_of(pod: dict[str, Any]) -> str:
    return pod["metadata"]["annotations"][naming.ANNOTATION_TEMPLATE_HASH]
