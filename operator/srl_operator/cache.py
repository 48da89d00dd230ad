"""A watch-fed cache of every experiment's children (an informer per kind and namespace).

One paginated LIST per kind and namespace when an experiment of that namespace is first reconciled,
then a WATCH from that list's resourceVersion keeps the cache current: a reconcile reads memory, so
an idle experiment of 15,000 pods costs no LIST at all. Pods are kept reduced to `ObservedPod`
(a few fields) rather than as API objects, which bounds the operator's memory at that scale.

Writes go through too (`Kube` reports what it created or deleted): a reconcile that follows its own
creates at once does not see them missing before their watch events arrive, so it never creates twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes.client.rest import ApiException

from srl_operator import naming
from srl_operator.observed import ObservedPod, observe_pod

log = logging.getLogger(__name__)

# The kinds an experiment owns that the reconciler reads. Secrets are read by name only (no list or
# watch: the chart grants get and create on them).
CACHED_KINDS = ("Pod", "Service", "ConfigMap", "PersistentVolumeClaim", "Deployment", "NetworkPolicy")
LIST_PAGE = 500  # objects per LIST page: the initial list of 15,000 pods never sits in memory whole
WATCH_SECONDS = 300  # the API server ends a watch after this long; it is resumed from the last resourceVersion
SYNC_TIMEOUT = 120.0  # seconds a reconcile waits for a namespace's first list before it gives up this round
RETRY_SECONDS = 2.0  # pause after a failed list or watch before trying again


def selector_of(kind: str) -> str:
    """Worker pods are the pods with a role (the Redis Deployment's pods are its ReplicaSet's);
    every other kind is an experiment's when it carries the experiment label."""
    return naming.WORKER_PODS_SELECTOR if kind == "Pod" else naming.LABEL_EXPERIMENT


def _newer(candidate: str | None, current: str | None) -> bool:
    """Whether resourceVersion `candidate` is at least as new as `current`. resourceVersions are
    opaque, but every API server backed by etcd issues increasing integers; anything else is taken."""
    if current is None or candidate is None:
        return True
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


@dataclass
class _Entry:
    """One cached object: the value the reconciler reads and the resourceVersion it is from."""

    value: Any  # ObservedPod for pods, the API object (dict) for other kinds
    version: str | None


TOMBSTONE_SECONDS = 120.0  # how long a deletion seen on the watch outranks a late write-through


@dataclass
class _Store:
    """The objects of one kind in one namespace, by experiment then name, and the recent deletions."""

    by_experiment: dict[str, dict[str, _Entry]] = field(default_factory=dict)
    deleted: dict[str, tuple[str | None, float]] = field(default_factory=dict)  # name -> (version, when)

    def put(self, experiment: str, name: str, entry: _Entry) -> None:
        self.by_experiment.setdefault(experiment, {})[name] = entry

    def pop(self, experiment: str, name: str) -> None:
        objs = self.by_experiment.get(experiment)
        if objs is not None:
            objs.pop(name, None)
            if not objs:
                del self.by_experiment[experiment]

    def tombstone(self, name: str, version: str | None) -> None:
        now = time.monotonic()
        self.deleted[name] = (version, now)
        if len(self.deleted) > 1024:
            self.deleted = {n: t for n, t in self.deleted.items() if now - t[1] < TOMBSTONE_SECONDS}

    def deleted_since(self, name: str, version: str | None) -> bool:
        """A watch reported `name` deleted at or after `version`: a late write-through is stale."""
        gone = self.deleted.get(name)
        return gone is not None and _newer(gone[0], version) and time.monotonic() - gone[1] < TOMBSTONE_SECONDS


ListCall = Callable[..., Any]  # the typed client's list_namespaced_<kind> method


class Informer:
    """LIST then WATCH one kind in one namespace, forever, on a daemon thread."""

    def __init__(self, kind: str, namespace: str, list_call: ListCall, lock: threading.Lock, store: _Store) -> None:
        self.kind, self.namespace = kind, namespace
        self._list_call = list_call
        self._lock = lock
        self._store = store
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind}-{namespace}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ---- what an object becomes in the cache ------------------------------------------------

    def _entry(self, obj: dict[str, Any]) -> tuple[str, str, _Entry] | None:
        meta = obj.get("metadata") or {}
        experiment = (meta.get("labels") or {}).get(naming.LABEL_EXPERIMENT)
        if not experiment:
            return None
        value = observe_pod(obj) if self.kind == "Pod" else obj
        return experiment, meta["name"], _Entry(value, meta.get("resourceVersion"))

    # ---- list and watch -----------------------------------------------------------------------

    def _list(self) -> str:
        """Replace the store with a fresh paginated list; returns the list's resourceVersion."""
        fresh = _Store()
        cont: str | None = None
        version = ""
        while True:
            kwargs: dict[str, Any] = {"label_selector": selector_of(self.kind), "limit": LIST_PAGE}
            if cont:
                kwargs["_continue"] = cont
            page = json.loads(self._list_call(self.namespace, _preload_content=False, **kwargs).data)
            for obj in page.get("items") or []:
                made = self._entry(obj)
                if made is not None:
                    fresh.put(*made)
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            cont = meta.get("continue")
            if not cont:
                break
        with self._lock:
            self._store.by_experiment = fresh.by_experiment
        return version

    def _events(self, version: str) -> Iterator[dict[str, Any]]:
        resp = self._list_call(
            self.namespace,
            label_selector=selector_of(self.kind),
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            pending = b""
            for chunk in resp.stream(None, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()

    def _apply(self, event: dict[str, Any]) -> str | None:
        """Apply one watch event; returns its resourceVersion, or None when the watch expired."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:  # Gone: the version is too old, list again
                return None
            raise RuntimeError(f"watch of {self.kind} in {self.namespace}: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            return version
        made = self._entry(obj)
        if made is not None:
            experiment, name, entry = made
            with self._lock:
                if kind == "DELETED":
                    self._store.pop(experiment, name)
                    self._store.tombstone(name, entry.version)
                else:
                    self._store.put(experiment, name, entry)
                    self._store.deleted.pop(name, None)
        return version

    def _run(self) -> None:
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = self._list()
                    self.synced.set()
                for event in self._events(version):
                    got = self._apply(event)
                    if got is None:
                        version = None
                        break
                    version = got
            except ApiException as e:
                if e.status == 410:
                    version = None
                    continue
                log.warning("%s informer in %s: %s %s; retrying", self.kind, self.namespace, e.status, e.reason)
                time.sleep(RETRY_SECONDS)
            except Exception as e:  # noqa: BLE001 - a dropped connection must not end the informer
                log.warning("%s informer in %s: %s; retrying", self.kind, self.namespace, e)
                time.sleep(RETRY_SECONDS)


class ChildrenCache:
    """Every experiment's children in the namespaces the operator has reconciled so far."""

    def __init__(self, list_call_of: Callable[[str], ListCall]) -> None:
        self._list_call_of = list_call_of
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str], _Store] = {}  # (kind, namespace) -> store
        self._informers: dict[tuple[str, str], Informer] = {}

    def _ensure(self, namespace: str) -> list[Informer]:
        started = []
        with self._lock:
            for kind in CACHED_KINDS:
                key = (kind, namespace)
                if key not in self._informers:
                    store = self._stores[key] = _Store()
                    inf = self._informers[key] = Informer(kind, namespace, self._list_call_of(kind), self._lock, store)
                    started.append(inf)
            informers = [self._informers[(k, namespace)] for k in CACHED_KINDS]
        for inf in started:
            inf.start()
        return informers

    def wait_synced(self, namespace: str, timeout: float = SYNC_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for inf in self._ensure(namespace):
            if not inf.synced.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"the {inf.kind} cache of namespace {namespace} did not sync in {timeout:.0f}s")

    def objects(self, kind: str, namespace: str, experiment: str) -> list[Any]:
        """The cached children of one kind (ObservedPod for pods, dicts otherwise)."""
        with self._lock:
            store = self._stores.get((kind, namespace))
            objs = store.by_experiment.get(experiment, {}) if store is not None else {}
            return [e.value for e in objs.values()]

    # ---- write-through: what this operator just did ------------------------------------------

    def created(self, obj: dict[str, Any]) -> None:
        """The API server accepted `obj` (its response): known from now on, unless the watch
        already brought a newer version."""
        meta = obj.get("metadata") or {}
        kind, namespace = obj.get("kind", ""), meta.get("namespace", "")
        experiment = (meta.get("labels") or {}).get(naming.LABEL_EXPERIMENT)
        if not experiment:
            return
        value = observe_pod(obj) if kind == "Pod" else obj
        with self._lock:
            store = self._stores.get((kind, namespace))
            if store is None:
                return
            version = meta.get("resourceVersion")
            if store.deleted_since(meta["name"], version):
                return
            current = store.by_experiment.get(experiment, {}).get(meta["name"])
            if current is None or _newer(version, current.version):
                store.put(experiment, meta["name"], _Entry(value, meta.get("resourceVersion")))

    def deleting(self, kind: str, namespace: str, experiment: str, name: str, gone: bool) -> None:
        """A delete was accepted (`gone`: the object no longer exists, or never did)."""
        with self._lock:
            store = self._stores.get((kind, namespace))
            if store is None:
                return
            current = store.by_experiment.get(experiment, {}).get(name)
            if current is None:
                return
            if isinstance(current.value, ObservedPod) and not gone:
                current.value = replace(current.value, deleting=True)  # graceful: it goes when the kubelet is done
            else:
                store.pop(experiment, name)
