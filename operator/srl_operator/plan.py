"""The pod plan: desired worker pods vs observed ones -> what to create and what to delete. Pure."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from srl_operator import naming, restarts
from srl_operator.builders.configmap import running_document_hash
from srl_operator.builders.pods import RoleTemplate, desired_replicas, role_template
from srl_operator.config import OperatorConfig
from srl_operator.observed import ObservedPod
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.roles import START_ORDER


class PodsToCreate(Sequence[dict[str, Any]]):
    """The pods a plan creates, built when read: a 15,000-actor plan holds (template, index) pairs,
    not 15,000 manifests, and the reconciler builds one batch at a time."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any] | tuple[RoleTemplate, int]] = []

    def add(self, template: RoleTemplate, index: int) -> None:
        self._items.append((template, index))

    def append(self, pod: dict[str, Any]) -> None:
        self._items.append(pod)

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def _build(item: dict[str, Any] | tuple[RoleTemplate, int]) -> dict[str, Any]:
        return item if isinstance(item, dict) else item[0].pod(item[1])

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._build(item) for item in self._items[i]]
        return self._build(self._items[i])


@dataclass
class PodPlan:
    """Actions of one reconcile round. A failed pod is deleted and its replacement created in the
    same round (a deleted failed pod goes at once); other deleted pods are recreated once gone."""

    create: PodsToCreate = field(default_factory=PodsToCreate)
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
    # name -> (the role's template, index); manifests are built only for pods to create.
    doc = running_document_hash(exp)
    templates = [role_template(exp, role, cfg, doc) for role in START_ORDER if desired_replicas(exp, role)]
    desired: dict[str, tuple[RoleTemplate, int]] = {
        naming.pod_name(exp.metadata.name, t.role, index): (t, index)
        for t in templates
        for index in range(desired_replicas(exp, t.role))
    }
    if not finished:
        plan.exhausted = [
            p for name, (t, _) in desired.items()
            if (p := by_name.get(name)) is not None and p.phase == "Failed" and not p.deleting
            and p.template_hash == t.template_hash and restarts.out_of_restarts(exp, p)
        ]  # fmt: skip
        if failed or plan.exhausted:
            plan.failed = True
            # Keep what ended (the failed pods hold the exit code and the last log lines); stop the rest.
            ended = {p.name for p in observed if p.phase in ("Failed", "Succeeded")}
            plan.delete_extra = _extras(observed, ended)
            return plan
    for name, (t, index) in desired.items():
        pod = by_name.get(name)
        if finished:
            continue
        if pod is None:
            plan.create.add(t, index)
        elif pod.deleting or pod.phase == "Succeeded":
            continue  # wait for it to go / a finished worker is not restarted
        elif pod.phase == "Failed":
            want = t.pod(index)
            if pod.template_hash != t.template_hash:
                plan.delete_failed.append(name)  # built from an older spec: the new one starts afresh
                plan.create.append(want)
                continue
            wait = restarts.seconds_until_restart(exp, pod, now)
            if wait > 0:
                plan.backing_off[name] = wait
                continue
            plan.delete_failed.append(name)
            plan.create.append(_with_restarts(want, pod.restarts + (0 if pod.disrupted else 1)))
        elif pod.template_hash != t.template_hash:
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

