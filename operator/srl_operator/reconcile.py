"""One level-based reconcile of an RLExperiment: desired children vs observed, then the status.

Called by every kopf handler (create, update, resume, timer) with the same arguments; running it twice,
concurrently, or after a crash half-way is harmless (deterministic names, 409/404 tolerated).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client.rest import ApiException

from srl_operator import naming, policy, restarts
from srl_operator.builders.configmap import EXPERIMENT_KEY, experiment_configmap
from srl_operator.builders.network_policy import isolation_policy
from srl_operator.builders.pvc import parameter_db_pvc
from srl_operator.builders.redis import needs_redis, redis_address, redis_deployment, redis_service
from srl_operator.builders.secrets import new_password, password_of, redis_auth_secret
from srl_operator.builders.services import zmq_services
from srl_operator.config import OperatorConfig
from srl_operator.kube import Children, Kube
from srl_operator.name_records import read_summary
from srl_operator.observed import parse_time
from srl_operator.plan import PodPlan, plan_pods
from srl_operator.status import Observation, experiment_status, finished, invalid_spec_status
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.load import InvalidExperiment, parse_experiment

log = logging.getLogger(__name__)

MONGO_URI_FIELD = "spec.parameterDb.mongodb.uri"

Event = tuple[str, str, str]  # (Normal|Warning, reason, message)
EVENT_MESSAGE_CHARS = 1024  # an Event's message is cut here when posted
StatusWriter = Callable[[dict[str, Any]], None]  # writes a partial status (a merge patch of .status) now
# What a progress write (between batches of creates) carries: the counts and the phase, not the
# summary or the conditions, which the full status at the end of the round writes.
PROGRESS_FIELDS = ("phase", "actors", "policyWorkers", "trainers", "evaluation", "actorsReady", "observedGeneration")


@dataclass
class Outcome:
    """What a reconcile decided: the status to write and the Events to post."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    invalid: str | None = None  # set when the spec does not validate (the handler raises PermanentError)


# One reconcile at a time per experiment: a timer tick and an update handler may fire together.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(uid: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def forget(uid: str) -> None:
    """Drop the lock of a deleted experiment."""
    with _locks_guard:
        _locks.pop(uid, None)


def parse_body(body: Mapping[str, Any]) -> RLExperiment:
    """The experiment model of a watched object; InvalidExperiment names the bad fields."""
    meta = body.get("metadata") or {}
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            # Passed on to every child (builders/common.py drops the bookkeeping keys).
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": dict(body.get("spec") or {}),
    }
    return parse_experiment(_plain(doc))


def _plain(value: Any) -> Any:
    """kopf bodies are read-only mapping views; pydantic wants plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def reconcile(
    body: Mapping[str, Any], kube: Kube, cfg: OperatorConfig, now: str, write_status: StatusWriter | None = None
) -> Outcome:
    """`now` is the time of this round (RFC 3339, UTC): condition times and restart backoff (a `now`
    that does not parse lets failed pods be replaced without waiting). `write_status`, when given,
    is called with the phase and counts before the first pod is created and after every batch of
    `cfg.create_batch` creates, so a large experiment shows progress while it comes up."""
    meta = body.get("metadata") or {}
    with _lock_for(meta.get("uid", meta.get("name", ""))):
        return _reconcile(body, kube, cfg, now, write_status)


def _reconcile(
    body: Mapping[str, Any], kube: Kube, cfg: OperatorConfig, now: str, write_status: StatusWriter | None
) -> Outcome:
    meta = body.get("metadata") or {}
    previous = _plain(body.get("status") or {})
    generation = meta.get("generation")
    try:
        exp = parse_body(body)
    except InvalidExperiment as e:
        outcome = _rejected(previous, e.problems, "InvalidSpec", now, generation)
        if outcome.events and any(p.startswith(MONGO_URI_FIELD) for p in e.problems):
            # Stored before the CRD rejected credentials in the URI: the last valid document in the
            # ConfigMap may hold them (readable by the view role). It goes; the URI is never echoed.
            kube.delete("ConfigMap", meta["namespace"], naming.configmap_name(meta["name"]))
        return outcome
    not_allowed = policy.problems(exp, cfg)
    if not_allowed:
        return _rejected(previous, not_allowed, "NotAllowed", now, generation)

    owner = kopf.Body({
        "apiVersion": body.get("apiVersion", ""),
        "kind": body.get("kind", ""),
        "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "uid": meta.get("uid", "")},
    })  # fmt: skip
    namespace = meta["namespace"]
    children = kube.list_children(namespace, exp.metadata.name)
    events: list[Event] = []
    redis_password = _reconcile_supporting(exp, children, kube, cfg, owner, events)
    _reconcile_redis_deployment(exp, children, kube, cfg, owner, events)

    observed = children.pods
    failed_earlier = restarts.failed_earlier(previous, generation)
    plan = plan_pods(
        exp, observed, cfg, finished=finished(exp, observed, previous), failed=failed_earlier is not None, now=parse_time(now)
    )
    failure = failed_earlier
    if failure is None and plan.exhausted:
        failure = restarts.failure_message(exp, plan.exhausted)
        events.append(("Warning", restarts.FAILED_REASON, restarts.failure_message(exp, plan.exhausted, EVENT_MESSAGE_CHARS)))

    phase_shown = [previous.get("phase")]  # the phase the status shows now (progress writes change it)

    def progress() -> None:
        if write_status is None:
            return
        pods = kube.list_children(namespace, exp.metadata.name).pods
        full = experiment_status(exp, Observation(pods=pods, failure=failure), previous, now, generation)
        write_status({k: full[k] for k in PROGRESS_FIELDS if k in full})
        _phase_event(phase_shown, full["phase"], events)

    api_errors = _apply_pod_plan(plan, namespace, kube, owner, events, exp.metadata.name, cfg.create_batch, progress)

    summary, nr_error = read_summary(
        redis_address(exp, cfg), exp.metadata.name, namespace, cfg.redis_timeout, password=redis_password
    )
    roles_of = {p.name: p.role or "" for p in observed}
    if not plan.empty:  # the status counts what exists after this round's creates and deletes
        observed = kube.list_children(namespace, exp.metadata.name).pods
    replaced: Counter[str] = Counter(roles_of[n] for n in plan.delete_failed)
    obs = Observation(
        pods=observed, summary=summary, name_records_error=nr_error, replaced=dict(replaced), api_errors=api_errors,
        backing_off=plan.backing_off, failure=failure,
    )  # fmt: skip
    status = experiment_status(exp, obs, previous, now, generation)
    _phase_event(phase_shown, status["phase"], events)
    return Outcome(status, events)


def _phase_event(shown: list[str | None], phase: str, events: list[Event]) -> None:
    """An Event for each phase the status takes on (`shown[0]`: the phase it shows until now)."""
    if phase != shown[0]:
        kind = "Warning" if phase == "Failed" else "Normal"
        events.append((kind, phase, f"phase {shown[0] or '(none)'} -> {phase}"))
        shown[0] = phase


def _rejected(previous: dict[str, Any], problems: list[str], reason: str, now: str, generation: int | None) -> Outcome:
    """Failed with SpecValid False naming the fields; the Warning Event only when the message is new."""
    message = "; ".join(problems)
    already = any(
        c.get("type") == "SpecValid" and c.get("status") == "False" and c.get("message") == message
        for c in previous.get("conditions") or []
    )
    events: list[Event] = [] if already else [("Warning", reason, message)]
    return Outcome(invalid_spec_status(previous, message, now, generation, reason), events, message)


def _reconcile_supporting(
    exp: RLExperiment, children: Children, kube: Kube, cfg: OperatorConfig, owner: kopf.Body, events: list[Event]
) -> str | None:
    """Redis password Secret, NetworkPolicy, ConfigMap, PVC, Redis and Services: create what is missing,
    update the document and the policy, drop extras. Returns the password of the experiment's own
    Redis (None when it uses another Redis, or its Secret holds no readable password)."""
    password = _redis_password(exp, kube, owner, events) if needs_redis(exp, cfg) else None
    desired: list[dict[str, Any]] = [isolation_policy(exp, cfg), experiment_configmap(exp)]
    pvc = parameter_db_pvc(exp, cfg)
    if pvc is not None:
        desired.append(pvc)
    desired.extend(zmq_services(exp))
    if needs_redis(exp, cfg):
        desired.append(redis_service(exp))
    namespace = owner["metadata"]["namespace"]
    for obj in desired:
        existing = {o["metadata"]["name"]: o for o in children.by_kind(obj["kind"])}
        name = obj["metadata"]["name"]
        if name not in existing:
            kopf.adopt(obj, owner=owner)
            if kube.create(obj):
                events.append(("Normal", "Created", f"created {obj['kind']} {name}"))
        elif obj["kind"] == "ConfigMap" and (existing[name].get("data") or {}).get(EXPERIMENT_KEY) != obj["data"][EXPERIMENT_KEY]:
            kube.patch("ConfigMap", namespace, name, {"data": obj["data"]})
            events.append(("Normal", "Updated", f"updated ConfigMap {name} with the new spec"))
        elif obj["kind"] == "NetworkPolicy" and existing[name].get("spec") != obj["spec"]:
            # The peers are in lists, which a merge patch replaces whole.
            kube.patch("NetworkPolicy", namespace, name, {"spec": obj["spec"]})
            events.append(("Normal", "Updated", f"updated NetworkPolicy {name}"))
    # Services and ConfigMaps of ours that the spec no longer asks for (PVCs are never deleted here:
    # they hold checkpoints; they go with the experiment through garbage collection).
    wanted = {(o["kind"], o["metadata"]["name"]) for o in desired}
    for kind, objs in (("Service", children.services), ("ConfigMap", children.configmaps)):
        for o in objs:
            if (kind, o["metadata"]["name"]) not in wanted and not o["metadata"].get("deletionTimestamp"):
                if kube.delete(kind, namespace, o["metadata"]["name"], experiment=exp.metadata.name):
                    events.append(("Normal", "Deleted", f"deleted {kind} {o['metadata']['name']}"))
    return password


def _redis_password(exp: RLExperiment, kube: Kube, owner: kopf.Body, events: list[Event]) -> str | None:
    """The password in the experiment's `<exp>-redis-auth` Secret; the Secret is made (with a random
    password) only when it does not exist, and never rewritten: the Redis pod and the workers hold it."""
    namespace = owner["metadata"]["namespace"]
    name = naming.redis_auth_name(exp.metadata.name)
    existing = kube.get("Secret", namespace, name)
    if existing is not None:
        return password_of(existing)
    password = new_password()
    secret = redis_auth_secret(exp, password)
    kopf.adopt(secret, owner=owner)
    if kube.create(secret):
        events.append(("Normal", "Created", f"created Secret {name}"))
        return password
    # Created meanwhile (a concurrent or restarted reconcile): that one's password is the real one.
    existing = kube.get("Secret", namespace, name)
    return password_of(existing) if existing is not None else None


def _reconcile_redis_deployment(
    exp: RLExperiment, children: Children, kube: Kube, cfg: OperatorConfig, owner: kopf.Body, events: list[Event]
) -> None:
    """The Redis Deployment exists exactly when the spec has no redisAddress."""
    namespace = owner["metadata"]["namespace"]
    names = {d["metadata"]["name"] for d in children.deployments if not d["metadata"].get("deletionTimestamp")}
    if needs_redis(exp, cfg):
        dep = redis_deployment(exp, cfg)
        name = dep["metadata"]["name"]
        if name not in names:
            kopf.adopt(dep, owner=owner)
            if kube.create(dep):
                events.append(("Normal", "Created", f"created Deployment {name}"))
        else:
            current = next(d for d in children.deployments if d["metadata"]["name"] == name)
            if _outdated(current, dep):
                # Containers, env and volumes are lists (replaced or merged by name); the controller's
                # own annotations stay.
                kube.patch("Deployment", namespace, name, {"metadata": {"annotations": dep["metadata"]["annotations"]},
                                                           "spec": dep["spec"]})  # fmt: skip
                events.append(("Normal", "Updated", f"updated Deployment {name} (its template changed)"))
        names.discard(name)
    for name in names:
        if kube.delete("Deployment", namespace, name, experiment=exp.metadata.name):
            events.append(("Normal", "Deleted", f"deleted Deployment {name}"))


def _outdated(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    key = naming.ANNOTATION_TEMPLATE_HASH
    have = (current["metadata"].get("annotations") or {}).get(key)
    return have != desired["metadata"]["annotations"][key]


def _apply_pod_plan(
    plan: PodPlan,
    namespace: str,
    kube: Kube,
    owner: kopf.Body,
    events: list[Event],
    experiment: str,
    batch: int,
    progress: Callable[[], None],
) -> list[str]:
    """Carry out the plan: deletes, then creates in batches of `batch` with `progress()` before the
    first and after each. API errors are collected (and reported in status), not raised, so one
    rejected pod (quota, admission) does not stop the rest or the status update."""
    errors: list[str] = []

    def attempt(fn: Any, arg: Any) -> Any:
        try:
            return fn(arg)
        except ApiException as e:
            errors.append(_api_error(e))
            return None

    def delete(names: list[str], grace_seconds: int | None = None) -> None:
        kube.parallel(
            lambda n: attempt(lambda x: kube.delete("Pod", namespace, x, grace_seconds, experiment), n), names
        )

    if plan.delete_failed:
        # A failed pod's containers have exited: nothing to drain, remove it at once.
        delete(plan.delete_failed, grace_seconds=0)
        events.append(("Warning", "WorkerFailed", "replacing failed pods: " + _names(plan.delete_failed)))
    if plan.delete_extra:
        delete(plan.delete_extra)
        events.append(("Normal", "ScaledDown", f"deleted {len(plan.delete_extra)} pods: " + _names(plan.delete_extra)))
    if plan.delete_stale:
        delete(plan.delete_stale)
        events.append(("Normal", "SpecChanged", "replacing pods built from an older spec: " + _names(plan.delete_stale)))
    if plan.create:
        created: list[dict[str, Any]] = []
        progress()
        for start in range(0, len(plan.create), batch):
            pods = plan.create[start : start + batch]
            for pod in pods:
                kopf.adopt(pod, owner=owner)
            results = kube.parallel(lambda p: attempt(kube.create, p), pods)
            created.extend(p for p, ok in zip(pods, results, strict=True) if ok)
            progress()
        if created:
            roles = Counter(p["metadata"]["labels"][naming.LABEL_ROLE] for p in created)
            text = ", ".join(f"{n} {r}" for r, n in sorted(roles.items()))
            events.append(("Normal", "Created", f"created {len(created)} worker pods ({text})"))
    if errors:
        unique = sorted(set(errors))
        events.append(("Warning", "ApiError", f"{len(errors)} API calls failed: " + "; ".join(unique[:3])))
    return errors


def _api_error(e: ApiException) -> str:
    """The API server's message of a failed call (its Status body), or the HTTP reason."""
    try:
        return str(json.loads(e.body or "").get("message") or e.reason)
    except (TypeError, ValueError):
        return f"{e.status} {e.reason}"


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
