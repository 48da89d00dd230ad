"""Replacing failed workers: exponential backoff per worker and the per-worker restart limit
(`spec.<role>.restartLimit`, `spec.failurePolicy.backoffSeconds` / `maxBackoffSeconds`, as `srl run`
applies them locally). Pure.

The state is in the objects, so a restarted operator goes on where the last one stopped: every pod
carries how often its worker (role, index) was restarted before it (annotation `srl.dev/restarts`; its
replacement gets one more), and its status says when it failed. A failed pod stays until its backoff
is over — its status keeps the exit code and the worker's last log lines (the container's
terminationMessagePolicy is FallbackToLogsOnError) — and is then replaced in the same round.
A worker whose pod fails once it has used up its restarts fails the run: that pod is kept, every other
worker pod is deleted, and the phase stays Failed until the spec changes (pods built from the new spec
start with fresh counts). Failures that are the node's or the cluster's doing (eviction, preemption,
node shutdown) are replaced at once and not counted.
"""

from __future__ import annotations

import datetime
from typing import Any

from srl_operator.observed import ObservedPod
from srl_runtime.config import roles
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.roles import Role

LOG_LINES = 10  # last log lines of a failed worker in the failure message
LINE_CHARS = 200  # each cut to this length
FAILED_CONDITION = "Failed"
FAILED_REASON = "RestartLimitExceeded"


def restart_limit(exp: RLExperiment, role: Role) -> int:
    """Restarts one worker of `role` may have; its pod failing after that many fails the run."""
    return roles.restart_limit(exp.spec, role)


def seconds_until_restart(exp: RLExperiment, pod: ObservedPod, now: datetime.datetime | None) -> float:
    """How long a failed pod still waits before its replacement (<= 0: due now)."""
    if pod.disrupted or now is None or pod.failed_at is None:
        return 0.0
    due = pod.failed_at + datetime.timedelta(seconds=exp.spec.failure_policy.backoff(pod.restarts))
    return (due - now).total_seconds()


def out_of_restarts(exp: RLExperiment, pod: ObservedPod) -> bool:
    """A failed pod whose worker may not be restarted again."""
    return pod.role is not None and not pod.disrupted and pod.restarts >= restart_limit(exp, pod.role)


def last_lines(text: str, lines: int = LOG_LINES) -> list[str]:
    """The last `lines` non-empty lines of `text`, each at most LINE_CHARS long."""
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    return [ln if len(ln) <= LINE_CHARS else ln[: LINE_CHARS - 3] + "..." for ln in kept]


def failure_message(exp: RLExperiment, pods: list[ObservedPod], max_chars: int = 4096) -> str:
    """Why the run failed: the first worker out of restarts, with its exit and last log lines (the
    oldest lines dropped to fit `max_chars`: Events hold 1,024 characters, the condition more)."""
    first, *rest = sorted(pods, key=lambda p: (p.failed_at or datetime.datetime.max.replace(tzinfo=datetime.UTC), p.name))
    role = first.role
    head = f"{first.name} failed after {first.restarts} restarts (spec.{_field(role)}.restartLimit {restart_limit(exp, role) if role else 0})"
    if rest:
        head += f"; also out of restarts: {', '.join(p.name for p in rest[:5])}" + (" ..." if len(rest) > 5 else "")
    lines = last_lines(first.last_log)
    text = head + (f"; {first.exit_summary}" if first.exit_summary else "")

    def with_lines(kept: list[str]) -> str:
        return text + ("; last log lines:\n" + "\n".join(kept) if kept else "")

    while lines and len(with_lines(lines)) > max_chars:
        lines = lines[1:]
    return with_lines(lines)[:max_chars]


def _field(role: Role | None) -> str:
    return roles.document_field(role) if role is not None else ""


def failed_earlier(previous: dict[str, Any], generation: int | None) -> str | None:
    """The failure message when this generation of the spec already failed the run (it sticks)."""
    for c in previous.get("conditions") or []:
        if c.get("type") == FAILED_CONDITION and c.get("status") == "True" and c.get("observedGeneration") == generation:
            return str(c.get("message") or FAILED_REASON)
    return None
