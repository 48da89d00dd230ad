"""What the operator sees: the experiment's pods, reduced to the fields reconciling needs."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from srl_operator import naming


@dataclass(frozen=True)
class ObservedPod:
    """One worker pod as listed from the API server."""

    name: str
    role: naming.Role | None  # None: not one of the roles (not a worker pod)
    index: int | None
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    ready: bool
    deleting: bool
    template_hash: str | None
    waiting_reasons: tuple[str, ...] = field(default=())  # e.g. ImagePullBackOff, CreateContainerConfigError
    exit_codes: tuple[int, ...] = field(default=())
    restarts: int = 0  # restarts of this worker before this pod (annotation srl.dev/restarts)
    failed_at: datetime.datetime | None = None  # when its container stopped (None: unknown or not failed)
    exit_summary: str = ""  # how the failed container ended, e.g. "exit code 1 (Error)"
    last_log: str = ""  # its termination message: the worker's last log lines (FallbackToLogsOnError)
    disrupted: bool = False  # failed because of the node or the cluster (eviction, preemption), not the worker

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
    finished: list[datetime.datetime] = []
    exit_summary, last_log = "", ""
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and (state["waiting"] or {}).get("reason"):
            waiting.append(state["waiting"]["reason"])
        if "terminated" in state and state["terminated"] is not None:
            term = state["terminated"]
            exits.append(int(term.get("exitCode", 0)))
            when = parse_time(term.get("finishedAt"))
            if when is not None:
                finished.append(when)
            if int(term.get("exitCode", 0)) != 0 and not exit_summary:
                exit_summary = f"exit code {term.get('exitCode')}" + (f" ({term['reason']})" if term.get("reason") else "")
                last_log = str(term.get("message") or "")
    annotations = meta.get("annotations") or {}
    restarts_text = annotations.get(naming.ANNOTATION_RESTARTS, "")
    failed_at = max(finished) if finished else None
    if failed_at is None and status.get("phase") == "Failed":
        ready_condition: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
        failed_at = parse_time(ready_condition.get("lastTransitionTime")) or parse_time(status.get("startTime"))
    return ObservedPod(
        name=meta.get("name", ""),
        role=_role(labels.get(naming.LABEL_ROLE)),
        index=int(index_text) if index_text.isdigit() else None,
        phase=status.get("phase") or "Pending",
        ready=ready and status.get("phase") == "Running",
        deleting=bool(meta.get("deletionTimestamp")),
        template_hash=annotations.get(naming.ANNOTATION_TEMPLATE_HASH),
        waiting_reasons=tuple(waiting),
        exit_codes=tuple(exits),
        restarts=int(restarts_text) if restarts_text.isdigit() else 0,
        failed_at=failed_at,
        exit_summary=exit_summary,
        last_log=last_log,
        disrupted=any(c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions)
        or status.get("reason") in DISRUPTION_REASONS,
    )


# Pod status reasons of failures that are the node's or the cluster's doing, not the worker's.
DISRUPTION_REASONS = frozenset({"Evicted", "Preempting", "NodeLost", "NodeShutdown", "Shutdown", "Terminated"})


def parse_time(text: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp of the API server (e.g. 2025-01-02T03:04:05Z); None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def _role(label: str | None) -> naming.Role | None:
    """The role a pod's label names, if it is one."""
    return next((r for r in naming.ROLES if r == label), None)
