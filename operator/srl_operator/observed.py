"""What the operator sees: the experiment's pods, reduced to the fields reconciling needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srl_operator import naming


@dataclass(frozen=True)
class ObservedPod:
    """One worker pod as listed from the API server."""

    name: str
    role: str | None
    index: int | None
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    ready: bool
    deleting: bool
    template_hash: str | None
    waiting_reasons: tuple[str, ...] = field(default=())  # e.g. ImagePullBackOff, CreateContainerConfigError
    exit_codes: tuple[int, ...] = field(default=())

    @property
    def live(self) -> bool:
        """Counts as one of the role's replicas: exists, is not being deleted and has not failed."""
        return not self.deleting and self.phase not in ("Failed",)


def observe_pod(pod: dict[str, Any]) -> ObservedPod:
    """Parse a pod dict (as returned by the API server) into an ObservedPod."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = pod.get("status") or {}
    index_text = labels.get(naming.LABEL_INDEX, "")
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    waiting: list[str] = []
    exits: list[int] = []
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and (state["waiting"] or {}).get("reason"):
            waiting.append(state["waiting"]["reason"])
        if "terminated" in state and state["terminated"] is not None:
            exits.append(int(state["terminated"].get("exitCode", 0)))
    return ObservedPod(
        name=meta.get("name", ""),
        role=labels.get(naming.LABEL_ROLE),
        index=int(index_text) if index_text.isdigit() else None,
        phase=status.get("phase") or "Pending",
        ready=ready and status.get("phase") == "Running",
        deleting=bool(meta.get("deletionTimestamp")),
        template_hash=(meta.get("annotations") or {}).get(naming.ANNOTATION_TEMPLATE_HASH),
        waiting_reasons=tuple(waiting),
        exit_codes=tuple(exits),
    )
