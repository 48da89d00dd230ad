"""Finding stream peers in the name records, re-resolving as workers come and go."""

from __future__ import annotations

import logging
import random
import time

from srl_runtime.name_records.base import NameRecords

log = logging.getLogger(__name__)


SETTLED_FACTOR = 10  # once peers are known, re-read every SETTLED_FACTOR * refresh_interval s


class PeerDirectory:
    """Addresses registered under one name-record subtree.

    Re-read every `refresh_interval` s while none are known (start-up), then every
    SETTLED_FACTOR times that, jittered by +-20% so thousands of actors do not read in lockstep: at
    the default 0.5 s, an actor's two directories cost the name records 0.4 subtree reads per second
    instead of 4, and a peer that comes or goes is followed within ~5 s (a dead one is gone from the
    subtree once its keep-alive TTL lapses). Callers that see a peer fail may pass force=True.
    """

    def __init__(
        self,
        name_records: NameRecords,
        subtree: str,
        *,
        what: str,
        refresh_interval: float = 0.5,
        log_interval: float = 10.0,
    ) -> None:
        self._records = name_records
        self._subtree = subtree
        self._what = what
        self._refresh_interval = refresh_interval
        self._log_interval = log_interval
        self._addresses: list[str] = []
        self._last_refresh = -float("inf")
        self._next_interval = refresh_interval
        self._last_log = -float("inf")

    def addresses(self, force: bool = False) -> list[str]:
        """Distinct live addresses, in name order; logs while there are none."""
        now = time.monotonic()
        if force or now - self._last_refresh >= self._next_interval:
            self._last_refresh = now
            try:
                values = self._records.get_subtree(self._subtree)
            except Exception as e:  # noqa: BLE001 - a name-record outage: keep the peers we know
                log.warning("cannot read %s from name records: %s", self._subtree, e)
                values = self._addresses
            self._addresses = list(dict.fromkeys(values))
            self._next_interval = (
                self._refresh_interval * SETTLED_FACTOR * random.uniform(0.8, 1.2)
                if self._addresses
                else self._refresh_interval
            )
            if not self._addresses and now - self._last_log >= self._log_interval:
                self._last_log = now
                log.info("waiting for %s to register under %s", self._what, self._subtree)
        return self._addresses
