"""What a worker does about NaN/inf data: count it by field, then warn or fail the run.

`spec.failurePolicy.nonFinite` decides: `warn` (the default) logs a warning (at most once a minute
per worker, with the running count) and the data is dropped where it would do harm; `fail` ends the
run at the first occurrence, with a stop reason naming what was seen. Counts go into the worker's
progress (and from there the summary and the Prometheus metrics).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

WARN_INTERVAL = 60.0  # seconds between warnings of one worker


class NonFiniteGuard:
    """Counts non-finite data one worker saw and applies the run's policy to it."""

    def __init__(self, who: str, policy: str, fail_run: Callable[[str], None]) -> None:
        self.who = who
        self.policy = policy
        self._fail_run = fail_run
        self.total = 0
        self.by_field: collections.Counter[str] = collections.Counter()
        self.last: str | None = None
        self._next_warn = 0.0
        self._failed = False

    def report(self, what: str, detail: str, count: int = 1) -> None:
        """`count` occurrences of non-finite `what` (a field, e.g. reward); `detail` says where."""
        if count <= 0:
            return
        self.total += count
        self.by_field[what] += count
        self.last = f"{what} {detail}"
        if self.policy == "fail":
            if not self._failed:  # once: the run is ending
                self._failed = True
                self._fail_run(f"failed: non-finite {what} {detail} ({self.who}; failurePolicy.nonFinite: fail)")
            return
        now = time.monotonic()
        if now >= self._next_warn:
            self._next_warn = now + WARN_INTERVAL
            log.warning("%s: non-finite %s %s (%d so far); dropped, continuing", self.who, what, detail, self.total)

    def progress(self) -> dict[str, object]:
        """Fields for the worker's progress."""
        return {"non_finite_fields": dict(self.by_field), "non_finite_last": self.last}
