"""Kubernetes API access for the reconciler: an experiment's children, create/delete idempotently.

Children come from a watch-fed cache (`cache.py`) when the Kube has one (the operator's does), else
from one LIST per kind. Responses are read as raw JSON (`_preload_content=False`): deserialising
thousands of pods into client model objects costs seconds of CPU, and the reconciler only needs a
few fields. Every request is counted in `srl_operator_api_requests_total`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client import Counter as MetricCounter

from srl_operator import naming
from srl_operator.cache import ChildrenCache, selector_of
from srl_operator.observed import ObservedPod, observe_pod
from srl_runtime.config.crd_schema import GROUP, PLURAL, VERSION

API_REQUESTS = MetricCounter(
    "srl_operator_api_requests", "Kubernetes API requests the reconciler made", ["verb", "kind", "code"]
)

# kind -> (api attribute, suffix of its {verb}_namespaced_{suffix} methods)
_KINDS: dict[str, tuple[str, str]] = {
    "Pod": ("core", "pod"),
    "Service": ("core", "service"),
    "ConfigMap": ("core", "config_map"),
    "PersistentVolumeClaim": ("core", "persistent_volume_claim"),
    "Secret": ("core", "secret"),  # read by name only (get), never listed: RBAC get+create, no list
    "Deployment": ("apps", "deployment"),
    "NetworkPolicy": ("networking", "network_policy"),
}


_CHILD_FIELDS = {  # kind -> Children field
    "Pod": "pods", "Service": "services", "ConfigMap": "configmaps", "PersistentVolumeClaim": "pvcs",
    "Deployment": "deployments", "NetworkPolicy": "networkpolicies",
}  # fmt: skip


@dataclass
class Children:
    """Every object of an experiment, found by its srl.dev/experiment label; worker pods reduced to
    what reconciling reads."""

    pods: list[ObservedPod]
    services: list[dict[str, Any]]
    configmaps: list[dict[str, Any]]
    pvcs: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    networkpolicies: list[dict[str, Any]] = field(default_factory=list)

    def by_kind(self, kind: str) -> list[dict[str, Any]]:
        """The children of a kind other than Pod, as API objects."""
        if kind == "Pod":
            raise ValueError("worker pods are kept as ObservedPod: read Children.pods")
        objs: list[dict[str, Any]] = getattr(self, _CHILD_FIELDS[kind])
        return objs


class Kube:
    """Thin, idempotent wrappers around the typed client; create treats 409 as done, delete 404."""

    def __init__(self, api_client: client.ApiClient | None = None, concurrency: int = 16, watch: bool = False) -> None:
        if api_client is None:
            configuration = client.Configuration.get_default_copy()
            # One pooled connection per worker thread (the default pool is 5 per CPU): a request
            # beyond the pool opens and closes a TLS connection of its own.
            configuration.connection_pool_maxsize = max(concurrency, 4) + len(_KINDS) * 2
            api_client = client.ApiClient(configuration)
        self.api_client = api_client
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.networking = client.NetworkingV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.concurrency = concurrency
        self.cache = ChildrenCache(lambda kind: self._counted("list", kind)) if watch else None

    def _count(self, verb: str, kind: str, code: int) -> None:
        API_REQUESTS.labels(verb, kind, str(code)).inc()

    def _counted(self, verb: str, kind: str) -> Callable[..., Any]:
        """The client method of (verb, kind), counting each call by its response code."""
        method = self._method(verb, kind)

        def call(*args: Any, **kwargs: Any) -> Any:
            verb_name = "watch" if kwargs.get("watch") else verb
            try:
                resp = method(*args, **kwargs)
            except ApiException as e:
                self._count(verb_name, kind, e.status or 0)
                raise
            self._count(verb_name, kind, 200)
            return resp

        return call

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        api_name, suffix = _KINDS[kind]
        api = {"core": self.core, "apps": self.apps, "networking": self.networking}[api_name]
        return getattr(api, f"{verb}_namespaced_{suffix}")

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        resp = self._counted("list", kind)(namespace, label_selector=selector, _preload_content=False)
        return json.loads(resp.data).get("items") or []

    def list_children(self, namespace: str, experiment: str) -> Children:
        """Worker pods (role label present) and the other children (experiment label): from the
        watch-fed cache, or one LIST per kind without one."""
        if self.cache is not None:
            self.cache.wait_synced(namespace)
            got = {kind: self.cache.objects(kind, namespace, experiment) for kind in _CHILD_FIELDS}
        else:
            got = {
                kind: self.list(kind, namespace, f"{selector_of(kind)},{naming.LABEL_EXPERIMENT}={experiment}")
                for kind in _CHILD_FIELDS
            }
            got["Pod"] = [observe_pod(p) for p in got["Pod"]]
        return Children(**{_CHILD_FIELDS[kind]: objs for kind, objs in got.items()})

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object by name; None when it does not exist."""
        try:
            resp = self._counted("read", kind)(name, namespace, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return json.loads(resp.data)

    def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; False when it already exists (a restarted or concurrent reconcile made it)."""
        ns = obj["metadata"]["namespace"]
        try:
            resp = self._counted("create", obj["kind"])(ns, obj, _preload_content=False)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        if self.cache is not None:
            self.cache.created(json.loads(resp.data))
        return True

    def delete(
        self, kind: str, namespace: str, name: str, grace_seconds: int | None = None, experiment: str | None = None
    ) -> bool:
        """Delete; False when it was already gone. `experiment` (the child's) keeps the cache in step."""
        body = client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=grace_seconds)
        try:
            resp = self._counted("delete", kind)(name, namespace, body=body, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                self._forget(kind, namespace, name, experiment, gone=True)
                return False
            raise
        # A pod with a grace period comes back still there, marked for deletion.
        left = json.loads(resp.data) if resp.data else {}
        gone = kind != "Pod" or left.get("kind") == "Status" or not (left.get("metadata") or {}).get("deletionTimestamp")
        self._forget(kind, namespace, name, experiment, gone=gone)
        return True

    def _forget(self, kind: str, namespace: str, name: str, experiment: str | None, *, gone: bool) -> None:
        if self.cache is not None and experiment:
            self.cache.deleting(kind, namespace, experiment, name, gone)

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._counted("patch", kind)(name, namespace, patch, _preload_content=False)

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch an RLExperiment's status now (progress while a large experiment comes up)."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status},
                _content_type="application/merge-patch+json", _preload_content=False,
            )  # fmt: skip
        except ApiException as e:
            self._count("patch", "RLExperiment/status", e.status or 0)
            if e.status == 404:  # deleted meanwhile
                return
            raise
        self._count("patch", "RLExperiment/status", 200)

    def parallel(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> builtins.list[Any]:  # `list` here: Kube.list
        """Run `fn` over `items` with bounded concurrency; re-raises the first error after all finish."""
        items = list(items)
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            futures = [pool.submit(fn, i) for i in items]
        results, first_error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except Exception as e:  # noqa: BLE001 - collected, re-raised below
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        return results
