"""Pieces every builder shares: metadata and the non-root security settings."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from srl_runtime.config.experiment import RLExperiment

# Label and annotation keys an experiment's metadata does not pass on to its children: the operator's
# own (srl.dev/: hashes, restart counts, kopf's progress and last-handled state under our prefix),
# kopf's defaults, kubectl's last-applied-configuration, and the ownership marks of the tool that
# applied the experiment (Helm, Argo CD), which would claim the children for it.
RESERVED_PREFIXES = ("srl.dev/", "kopf.zalando.org/", "kubectl.kubernetes.io/", "meta.helm.sh/", "argocd.argoproj.io/")


def metadata(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def pod_security_context(uid: int) -> dict[str, Any]:
    """Non-root pod: the runtime never needs root, and restricted Pod Security admits it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,  # the parameter-DB volume must be writable by that user
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def template_hash(obj: dict[str, Any]) -> str:
    """Short stable hash of a manifest: a pod whose hash differs from the desired one is replaced."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def without_reserved(items: dict[str, str]) -> dict[str, str]:
    """`items` without keys under RESERVED_PREFIXES."""
    return {k: v for k, v in items.items() if not k.startswith(RESERVED_PREFIXES)}


def _merge_under(meta: dict[str, Any], key: str, inherited: dict[str, str]) -> None:
    """Put `inherited` into meta[key]; keys already there (the operator's) win."""
    if inherited:
        meta[key] = {**inherited, **(meta.get(key) or {})}


def with_experiment_metadata(obj: dict[str, Any], exp: RLExperiment) -> dict[str, Any]:
    """`obj` with the experiment's own labels and annotations (minus reserved keys) added to its
    metadata, and to its pod template's for a Deployment; the operator's labels win on conflict.

    Builders call it after computing a template hash, so editing the experiment's labels reaches
    children created from then on without replacing running ones.
    """
    labels = without_reserved(exp.metadata.labels)
    annotations = without_reserved(exp.metadata.annotations)
    metas = [obj["metadata"]]
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict):
        metas.append(template.setdefault("metadata", {}))
    for meta in metas:
        _merge_under(meta, "labels", labels)
        _merge_under(meta, "annotations", annotations)
    return obj
