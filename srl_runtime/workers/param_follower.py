"""Keeping a policy on the newest version in the parameter DB, checked at most every `interval` s."""

from __future__ import annotations

import logging
import time

from srl_runtime.param_db import ParameterDB
from srl_runtime.policies import Policy

log = logging.getLogger(__name__)


class ParameterFollower:
    """Loads `latest` into a policy when it is newer than what the policy has (actors, policy workers)."""

    def __init__(self, param_db: ParameterDB, policy: Policy, interval: float) -> None:
        self.param_db = param_db
        self.policy = policy
        self.interval = interval
        self._next = 0.0

    @property
    def version(self) -> int:
        """The version the policy holds (its own: `Policy.version`)."""
        return self.policy.version

    def maybe_pull(self) -> None:
        """Pull if the interval passed and a newer version exists (a cheap tag read otherwise)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        self.pull()

    def pull(self, latest: int | None = None) -> None:
        """Load the newest version now if it is newer (`latest`: the DB's latest version, if just read)."""
        if latest is None:
            latest = self.param_db.latest_version()
        if latest is None or latest <= self.version:
            return
        try:
            ckpt = self.param_db.get(tag="latest")
        except Exception as err:  # noqa: BLE001 - a racing GC or a partial store: try next time
            log.debug("param pull failed: %s", err)
            return
        self.policy.load_state(ckpt.state["policy"], ckpt.version)
