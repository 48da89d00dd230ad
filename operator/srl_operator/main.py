"""kopf entry point: `kopf run -m srl_operator.main --standalone --namespace NS` (or --all-namespaces).

Handlers are thin: every one of them runs the same level-based `reconcile` and writes what it returns.
The timer makes the operator converge even when no spec changes (pods failing, Redis coming back).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import kopf
import kubernetes
import prometheus_client

from srl_operator.config import load_config
from srl_operator.kube import Kube
from srl_operator.reconcile import EVENT_MESSAGE_CHARS, Outcome, forget, reconcile
from srl_runtime.config.crd_schema import GROUP, PLURAL, VERSION

RESOURCE = (GROUP, VERSION, PLURAL)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "srl_operator_reconcile_seconds", "Time one reconcile of one experiment took",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300),
)  # fmt: skip
CONFIG = load_config()
_state: dict[str, Kube] = {}


def _kube() -> Kube:
    if "kube" not in _state:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # $KUBECONFIG or ~/.kube/config, as kopf's own login
        # watch=True: children come from watch-fed caches, not a LIST per reconcile.
        _state["kube"] = Kube(concurrency=CONFIG.api_concurrency, watch=True)
    return _state["kube"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Our own annotation/finalizer names instead of kopf.zalando.org ones.
    settings.persistence.finalizer = "srl.dev/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="srl.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="srl.dev", key="last-handled-configuration"
    )
    # One replica (Deployment strategy Recreate): no peering objects, no peering RBAC.
    settings.peering.standalone = True
    # Serve the namespaces given on the command line and the CRD present at start-up: no
    # cluster-wide list/watch of namespaces and CRDs, which namespaced RBAC does not grant.
    settings.scanning.disabled = True
    # Post the Events we choose (kopf.event), not every log line of the handlers.
    settings.posting.loggers = False
    # Long-polling watches are re-established every few minutes so a silently dropped
    # connection cannot leave the operator deaf.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = max(4, CONFIG.api_concurrency // 4)
    if CONFIG.operator_metrics_port:
        prometheus_client.start_http_server(CONFIG.operator_metrics_port)
    _kube()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _changed(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The part of `new` that differs from `current`: an unchanged status is not written again."""
    return {k: v for k, v in new.items() if current.get(k) != v}


def _write(outcome: Outcome, body: kopf.Body, patch: kopf.Patch) -> None:
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message[:EVENT_MESSAGE_CHARS])
    delta = _changed(dict(body.get("status") or {}), outcome.status)
    if delta:
        patch.status.update(delta)


def _run(body: kopf.Body, patch: kopf.Patch, *, raise_invalid: bool) -> None:
    meta = body.get("metadata") or {}
    kube = _kube()

    def write_status(status: dict[str, Any]) -> None:
        kube.patch_status(meta["namespace"], meta["name"], status)

    with RECONCILE_SECONDS.time():
        outcome = reconcile(body, kube, CONFIG, _now(), write_status)
    _write(outcome, body, patch)
    if outcome.invalid is not None and raise_invalid:
        raise kopf.PermanentError(f"invalid spec: {outcome.invalid}")


@kopf.on.create(*RESOURCE, backoff=5)
@kopf.on.resume(*RESOURCE, backoff=5)
@kopf.on.update(*RESOURCE, field="spec", backoff=5)
def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _run(body, patch, raise_invalid=True)


@kopf.timer(*RESOURCE, interval=CONFIG.reconcile_interval, initial_delay=CONFIG.reconcile_interval, backoff=5)
def on_timer(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _run(body, patch, raise_invalid=False)


@kopf.on.delete(*RESOURCE, optional=True)
def on_delete(meta: kopf.Meta, **_: Any) -> None:
    # Children go with the experiment through their owner references (garbage collection).
    forget(meta.get("uid", ""))


@kopf.on.probe(id="reconcileIntervalSeconds")
def probe(**_: Any) -> float:
    return CONFIG.reconcile_interval


logging.getLogger("kubernetes.client.rest").setLevel(logging.WARNING)
