"""The experiment's status from what the operator observed. Pure: no I/O, `now` is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from srl_operator import naming, restarts
from srl_operator.builders.pods import desired_replicas
from srl_operator.observed import ObservedPod
from srl_runtime.config import roles
from srl_runtime.config.experiment import RLExperiment

# status field of each role (camelCase, as in the CRD's status schema)
ROLE_STATUS_FIELD: dict[naming.Role, str] = {role: roles.document_field(role) for role in naming.ROLES}

# name-record summary key (written by the trainer) -> status field
SUMMARY_FIELDS: dict[str, tuple[str, type]] = {
    "policy_version": ("policyVersion", int),
    "frames_per_second": ("framesPerSecond", float),
    "env_frames": ("envFrames", int),
    "train_steps": ("trainSteps", int),
    "mean_return": ("meanReturn", float),
}
STOP_REASON_KEY, STOP_REASON_FIELD = "stop_reason", "stopReason"


@dataclass
class Observation:
    """Everything one reconcile round saw, besides the spec."""

    pods: list[ObservedPod]
    summary: dict[str, Any] | None = None  # the experiment-state JSON from the name records
    name_records_error: str | None = None  # why the summary could not be read, if it could not
    replaced: dict[str, int] = field(default_factory=dict)  # role -> failed pods replaced this round
    api_errors: list[str] = field(default_factory=list)  # create/delete calls the API server refused
    backing_off: dict[str, float] = field(default_factory=dict)  # failed pods waiting for their restart
    failure: str | None = None  # why the run failed (a worker out of restarts), if it did


def _condition(
    previous: list[dict[str, Any]], type_: str, status: bool, reason: str, message: str, now: str, generation: int | None
) -> dict[str, Any]:
    text = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    changed = old is None or old.get("status") != text
    return {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": old.get("lastTransitionTime", now) if old is not None and not changed else now,
        "observedGeneration": generation,
    }


def _number(value: Any, kind: type) -> int | float | None:
    """A summary value coerced to the status field's type; None when absent or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
        float("inf"), float("-inf")
    ):
        return None
    return kind(value)


def finished(exp: RLExperiment, pods: list[ObservedPod], previous: dict[str, Any]) -> bool:
    """Succeeded: once every desired trainer pod exited 0 (and for good: it sticks).

    A pod being deleted is not a finished trainer, whatever its phase says on the way out.
    """
    if previous.get("phase") == "Succeeded":
        return True
    done = sum(1 for p in pods if p.role == "trainer" and p.phase == "Succeeded" and not p.deleting)
    return done >= exp.spec.trainers.replicas > 0


def invalid_spec_status(
    previous: dict[str, Any], message: str, now: str, generation: int | None, reason: str = "InvalidSpec"
) -> dict[str, Any]:
    """Status of an experiment whose spec does not validate (reason InvalidSpec) or asks for what the
    operator does not allow (NotAllowed): Failed, naming the field."""
    prev_conditions = previous.get("conditions") or []
    conditions = [c for c in prev_conditions if c.get("type") != "SpecValid"]
    conditions.append(_condition(prev_conditions, "SpecValid", False, reason, message, now, generation))
    return {"phase": "Failed", "conditions": conditions, "observedGeneration": generation}


def experiment_status(
    exp: RLExperiment,
    obs: Observation,
    previous: dict[str, Any],
    now: str,
    generation: int | None,
) -> dict[str, Any]:
    """The full status to write (a merge patch of `.status`)."""
    name = exp.metadata.name
    status: dict[str, Any] = {}
    role_counts: dict[naming.Role, tuple[int, int]] = {}
    problems: list[str] = []
    for role, field_name in ROLE_STATUS_FIELD.items():
        pods = [p for p in obs.pods if p.role == role]
        desired = desired_replicas(exp, role)
        ready = sum(1 for p in pods if p.ready and not p.deleting)
        prev_restarts = int(((previous.get(field_name) or {}).get("restarts")) or 0)
        status[field_name] = {
            "desired": desired,
            "replicas": sum(1 for p in pods if p.live),
            "ready": ready,
            "restarts": prev_restarts + obs.replaced.get(role, 0),
            "selector": naming.selector_string(naming.role_selector(name, role)),
        }
        role_counts[role] = (ready, desired)
        for p in pods:
            for reason in p.waiting_reasons:
                if reason not in ("ContainerCreating", "PodInitializing"):
                    problems.append(f"{p.name}: {reason}")
            if p.name in obs.backing_off:
                limit = restarts.restart_limit(exp, role)
                problems.append(
                    f"{p.name}: failed ({p.exit_summary or 'no exit code'}), restart {p.restarts + 1} of {limit}"
                    f" in {obs.backing_off[p.name]:.0f}s"
                )
    status["actorsReady"] = f"{role_counts['actor'][0]}/{role_counts['actor'][1]}"

    succeeded = finished(exp, obs.pods, previous)
    all_ready = all(r >= d for r, d in role_counts.values())
    trainers_ready = role_counts["trainer"][0] >= role_counts["trainer"][1] > 0
    actors_ok = role_counts["actor"][1] == 0 or role_counts["actor"][0] >= 1
    if succeeded:
        phase = "Succeeded"
    elif obs.failure is not None:
        phase = "Failed"
    elif exp.spec.suspend:
        phase = "Suspended"
    elif trainers_ready and actors_ok:
        phase = "Running"
    else:
        phase = "Pending"
    status["phase"] = phase
    failed = phase == "Failed"

    for key, (field_name, kind) in SUMMARY_FIELDS.items():
        value = _number((obs.summary or {}).get(key), kind)
        if value is None:
            value = previous.get(field_name)  # keep the last known value
        if value is not None:
            status[field_name] = value

    stop_reason = (obs.summary or {}).get(STOP_REASON_KEY)
    if isinstance(stop_reason, str) and stop_reason:
        status[STOP_REASON_FIELD] = stop_reason[:256]
    elif previous.get(STOP_REASON_FIELD):
        status[STOP_REASON_FIELD] = previous[STOP_REASON_FIELD]

    prev_conditions = previous.get("conditions") or []
    summary_text = ", ".join(f"{ROLE_STATUS_FIELD[r]} {rd}/{d}" for r, (rd, d) in role_counts.items() if d)
    if all_ready:
        ready_cond = (True, "AllReady", summary_text or "no workers desired")
    else:
        detail = "; ".join(problems[:5])
        ready_cond = (False, "WorkersNotReady", summary_text + (f" ({detail})" if detail else ""))
    if obs.name_records_error is None:
        nr_cond = (True, "Reachable" if obs.summary is not None else "NoSummaryYet", "")
    else:
        nr_cond = (False, "Unreachable", obs.name_records_error)
    if obs.api_errors:
        unique = sorted(set(obs.api_errors))
        reconciled = (False, "ApiError", f"{len(obs.api_errors)} calls failed: " + "; ".join(unique[:3]))
    else:
        reconciled = (True, "Reconciled", "")
    conditions = [
        _condition(prev_conditions, "SpecValid", True, "Valid", "", now, generation),
        _condition(prev_conditions, "Reconciled", *reconciled, now, generation),
        _condition(prev_conditions, "WorkersReady", *ready_cond, now, generation),
        _condition(prev_conditions, "NameRecordsReachable", *nr_cond, now, generation),
        _condition(
            prev_conditions, "Complete", succeeded, "TrainersSucceeded" if succeeded else "Training",
            f"stopped: {status[STOP_REASON_FIELD]}" if succeeded and status.get(STOP_REASON_FIELD) else "",
            now, generation,
        ),
        _condition(
            prev_conditions, restarts.FAILED_CONDITION, failed, restarts.FAILED_REASON if failed else "WithinRestartLimits",
            obs.failure or "", now, generation,
        ),
    ]
    status["conditions"] = conditions
    status["observedGeneration"] = generation
    return status
