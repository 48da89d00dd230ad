"""Pieces every builder shares: metadata and the non-root security settings."""

from __future__ import annotations

import hashlib
import json
from typing import Any


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
