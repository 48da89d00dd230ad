"""The Secret holding the password of an experiment's own Redis (name records).

The reconciler creates it once, with a random password, and never rewrites it: the Redis pod and
every worker read it through `secretKeyRef`, so a new password would lock out running workers. The
password is an argument: builders stay pure (the reconciler draws it with `new_password`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from srl_operator import naming
from srl_operator.builders.common import metadata, with_experiment_metadata
from srl_runtime.config.experiment import RLExperiment

REDIS_PASSWORD_KEY = "password"  # key of the password in the Secret
PASSWORD_BYTES = 32  # random bytes per password (43 URL-safe characters)


def new_password() -> str:
    """A fresh random password: URL-safe characters only (no quoting needed in args or URLs)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def redis_auth_secret(exp: RLExperiment, password: str) -> dict[str, Any]:
    name = exp.metadata.name
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(
            naming.redis_auth_name(name), exp.metadata.namespace, naming.component_labels(name, "redis-auth")
        ),
        "type": "Opaque",
        "data": {REDIS_PASSWORD_KEY: base64.b64encode(password.encode()).decode()},
    }
    return with_experiment_metadata(secret, exp)


def password_of(secret: dict[str, Any]) -> str | None:
    """The password stored in a Secret as listed from the API server; None when absent or unreadable."""
    raw = (secret.get("data") or {}).get(REDIS_PASSWORD_KEY)
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode() or None
    except (binascii.Error, UnicodeDecodeError):
        return None
