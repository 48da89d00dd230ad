"""Finding stream peers in the name records, re-resolving as workers come and go."""

from __future__ import annotations

import logging
import time

from srl_runtime.name_records.base import NameRecords

log = logging.getLogger(__name__)


class PeerDirectory:
    """Addresses registered under one name-record subtree, re-read at most every `refresh_interval` s."""

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
        self._last_log = -float("inf")

    def addresses(self, force: bool = False) -> list[str]:
        """Distinct live addresses, in name order; logs while there are none."""
        now = time.monotonic()
        if force or now - self._last_refresh >= self._refresh_interval:
            self._last_refresh = now
            try:
                values = self._records.get_subtree(self._subtree)
            except Exception as e:  # noqa: BLE001 - a name-record outage: keep the peers we know
                log.warning("cannot read %s from name records: %s", self._subtree, e)
                values = self._addresses
            self._addresses = list(dict.fromkeys(values))
            if not self._addresses and now - self._last_log >= self._log_interval:
                self._last_log = now
                log.info("waiting for %s to register under %s", self._what, self._subtree)
        return self._addresses
