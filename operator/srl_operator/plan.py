"""The pod plan: desired worker pods vs observed ones -> what to create and what to delete. Pure."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from srl_operator import naming, restarts
from srl_operator.builders.pods import desired_replicas, worker_pod
from srl_operator.config import OperatorConfig
from srl_operator.observed import ObservedPod
from srl_runtime.config.experiment import RLExperiment


@dataclass
class PodPlan:
    """Actions of one reconcile round. A failed pod is deleted and its replacement created in the
    same round (a deleted failed pod goes at once); other deleted pods are recreated once gone."""

    create: list[dict[str, Any]] = field(default_factory=list)
    delete_extra: list[str] = field(default_factory=list)  # scale-down / suspend / unknown, highest index first
    delete_failed: list[str] = field(default_factory=list)  # failed pods to replace (replacements are in create)
    delete_stale: list[str] = field(default_factory=list)  # pods built from an outdated template
    backing_off: dict[str, float] = field(default_factory=dict)  # failed pods waiting: name -> seconds left
    exhausted: list[ObservedPod] = field(default_factory=list)  # failed pods whose worker is out of restarts
    failed: bool = False  # the run failed (a worker out of restarts): nothing is created or replaced

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete_extra or self.delete_failed or self.delete_stale)


def plan_pods(
    exp: RLExperiment,
    observed: list[ObservedPod],
    cfg: OperatorConfig,
    *,
    finished: bool = False,
    failed: bool = False,
    now: datetime.datetime | None = None,
) -> PodPlan:
    """Level-based: the plan depends only on the spec, what exists now and the time.

    `finished` (the experiment Succeeded) stops creating and replacing pods; extras are still removed.
    `failed` (the run already failed for this spec) or a worker out of restarts (restarts.py) keeps the
    failed pods and deletes every other worker pod. `now` (None: no waiting) times the backoff of
    failed pods.
    """
    plan = PodPlan()
    by_name = {p.name: p for p in observed}
    desired: dict[str, dict[str, Any]] = {}  # name -> the pod it should be
    for role in naming.ROLES:
        for index in range(desired_replicas(exp, role)):
            desired[naming.pod_name(exp.metadata.name, role, index)] = worker_pod(exp, role, index, cfg)
    if not finished:
        plan.exhausted = [
            p for name, pod in desired.items()
            if (p := by_name.get(name)) is not None and p.phase == "Failed" and not p.deleting
            and p.template_hash == _hash_of(pod) and restarts.out_of_restarts(exp, p)
        ]  # fmt: skip
        if failed or plan.exhausted:
            plan.failed = True
            # Keep what ended (the failed pods hold the exit code and the last log lines); stop the rest.
            ended = {p.name for p in observed if p.phase in ("Failed", "Succeeded")}
            plan.delete_extra = _extras(observed, ended)
            return plan
    for name, want in desired.items():
        pod = by_name.get(name)
        if finished:
            continue
        if pod is None:
            plan.create.append(want)
        elif pod.deleting or pod.phase == "Succeeded":
            continue  # wait for it to go / a finished worker is not restarted
        elif pod.phase == "Failed":
            if pod.template_hash != _hash_of(want):
                plan.delete_failed.append(name)  # built from an older spec: the new one starts afresh
                plan.create.append(want)
                continue
            wait = restarts.seconds_until_restart(exp, pod, now)
            if wait > 0:
                plan.backing_off[name] = wait
                continue
            plan.delete_failed.append(name)
            plan.create.append(_with_restarts(want, pod.restarts + (0 if pod.disrupted else 1)))
        elif pod.template_hash != _hash_of(want):
            plan.delete_stale.append(name)
    plan.delete_extra = _extras(observed, set(desired))
    return plan


def _extras(observed: list[ObservedPod], keep: set[str]) -> list[str]:
    """Worker pods not in `keep`, highest index first per role. Only pods with a role are ours to
    remove; a pod of the experiment without one belongs to another controller (the Redis ReplicaSet)."""
    extras = [p for p in observed if p.role is not None and p.name not in keep and not p.deleting]
    extras.sort(key=lambda p: (p.role or "", -(p.index if p.index is not None else 1 << 30)))
    return [p.name for p in extras]


def _with_restarts(pod: dict[str, Any], count: int) -> dict[str, Any]:
    """The replacement pod, carrying its worker's restart count (outside the template hash)."""
    if count:
        pod["metadata"]["annotations"][naming.ANNOTATION_RESTARTS] = str(count)
    return pod


def _hash_of(pod: dict[str, Any]) -> str:
    return pod["metadata"]["annotations"][naming.ANNOTATION_TEMPLATE_HASH]
