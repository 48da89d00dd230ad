"""Kubernetes API access for the reconciler: list an experiment's children, create/delete idempotently.

Responses are read as raw JSON (`_preload_content=False`): deserialising 1,000 pods into client model
objects costs seconds of CPU, and the reconciler only needs a few fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from srl_operator import naming

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


@dataclass
class Children:
    """Every object of an experiment, found by its srl.dev/experiment label (one list per kind)."""

    pods: list[dict[str, Any]]
    services: list[dict[str, Any]]
    configmaps: list[dict[str, Any]]
    pvcs: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    networkpolicies: list[dict[str, Any]] = field(default_factory=list)

    def by_kind(self, kind: str) -> list[dict[str, Any]]:
        return {
            "Pod": self.pods,
            "Service": self.services,
            "ConfigMap": self.configmaps,
            "PersistentVolumeClaim": self.pvcs,
            "Deployment": self.deployments,
            "NetworkPolicy": self.networkpolicies,
        }[kind]


class Kube:
    """Thin, idempotent wrappers around the typed client; create treats 409 as done, delete 404."""

    def __init__(self, api_client: client.ApiClient | None = None, concurrency: int = 16) -> None:
        self.api_client = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.networking = client.NetworkingV1Api(self.api_client)
        self.concurrency = concurrency

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        api_name, suffix = _KINDS[kind]
        api = {"core": self.core, "apps": self.apps, "networking": self.networking}[api_name]
        return getattr(api, f"{verb}_namespaced_{suffix}")

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        resp = self._method("list", kind)(namespace, label_selector=selector, _preload_content=False)
        return json.loads(resp.data).get("items") or []

    def list_children(self, namespace: str, experiment: str) -> Children:
        """Worker pods (role label present) and the other children (experiment label)."""
        selector = f"{naming.LABEL_EXPERIMENT}={experiment}"
        children = {
            field: self.list(kind, namespace, selector)
            for field, kind in (("services", "Service"), ("configmaps", "ConfigMap"),
                                ("pvcs", "PersistentVolumeClaim"), ("deployments", "Deployment"),
                                ("networkpolicies", "NetworkPolicy"))
        }  # fmt: skip
        return Children(pods=self.list("Pod", namespace, naming.worker_pods_selector(experiment)), **children)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object by name; None when it does not exist."""
        try:
            resp = self._method("read", kind)(name, namespace, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return json.loads(resp.data)

    def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; False when it already exists (a restarted or concurrent reconcile made it)."""
        ns = obj["metadata"]["namespace"]
        try:
            self._method("create", obj["kind"])(ns, obj, _preload_content=False)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def delete(self, kind: str, namespace: str, name: str, grace_seconds: int | None = None) -> bool:
        """Delete; False when it was already gone."""
        body = client.V1DeleteOptions(propagation_policy="Background", grace_period_seconds=grace_seconds)
        try:
            self._method("delete", kind)(name, namespace, body=body, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._method("patch", kind)(name, namespace, patch, _preload_content=False)

    def parallel(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
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
