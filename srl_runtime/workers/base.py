"""The one worker lifecycle: configure, start, exit, and a poll loop with per-poll stats.

A worker is driven either by its own loop (`run`, one process per worker) or by a serial runner that
calls `poll_once` on several workers in turn (tests, single-process runs). Control goes through the
name records, so the same worker obeys a local launcher and a Kubernetes operator alike: the stop
flag ends every worker. What a worker sends to the name records, per `progress_interval` (1 s):
one round trip that writes its progress and reads the stop flag (`add_and_get`; on Redis one
pipeline: SET with the keep-alive TTL, ZADD to the name index, GET of the stop flag). Stream
clients also re-read their peers (discovery.py). bench/nrload/worker_commands.json lists this per
role for the load generator; tests/integration/test_name_records_redis.py checks it against a worker.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from srl_runtime import timeline
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.ports import ListenPorts
from srl_runtime.config.roles import Role, seed_offset
from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords

log = logging.getLogger(__name__)


class Closeable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)


@dataclass
class WorkerContext:
    """Everything a worker needs to know about where it runs."""

    experiment: RLExperiment
    role: Role
    index: int
    name_records: NameRecords
    run_dir: Path
    host: str = "127.0.0.1"
    ports: ListenPorts = field(default_factory=ListenPorts)  # TCP ports to bind on `host` (0: any)
    advertise_host: str | None = None  # the name peers connect to instead of `host` (a pod's DNS name)
    distributed: bool = False  # workers on separate hosts (`srl worker`, pods): streams over TCP by default
    blocking_waits: bool = True  # False in serial mode: one thread polls every worker, so none may wait on another

    def tcp_endpoint(self, port: int) -> dict[str, Any]:
        """Keyword arguments of a TCP stream server: the port to bind and the host to advertise."""
        return {"port": port, "advertise": self.advertise_host}

    @property
    def root(self) -> str:
        """Name-record root of this experiment."""
        return keys.experiment_root(self.experiment.metadata.name, self.experiment.metadata.namespace)

    @property
    def seed(self) -> int:
        """A per-worker seed derived from the experiment seed."""
        return self.experiment.spec.seed * 100_003 + seed_offset(self.role) + self.index


@dataclass
class PollResult:
    """What one poll did: samples are env steps / inferences / trained rows; batches are messages."""

    sample_count: int = 0
    batch_count: int = 0


@dataclass
class WorkerStats:
    """Running totals a worker publishes as progress."""

    polls: int = 0
    samples: int = 0
    batches: int = 0
    idle_polls: int = 0
    started: float = field(default_factory=time.monotonic)
    extra: dict[str, Any] = field(default_factory=dict)


class Worker(abc.ABC):
    """Base of actor, policy, trainer and evaluation workers."""

    role: str = "worker"
    progress_interval = 1.0  # seconds between progress publications and stop-flag checks

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.stats = WorkerStats()
        self._configured = False
        self._running = False
        self._exiting = False
        self._next_progress = 0.0
        self.exit_reason: str | None = None
        self._stop_reason: str | None = None  # set when the stop flag is seen; exit happens at the top
        self.metrics: Any = None  # a MetricsExporter when the worker serves Prometheus metrics
        self._owned: list[Closeable] = []  # what configure opened; closed in reverse order on exit

    # ---- lifecycle
    def configure(self) -> None:
        """Build environments, networks and streams; heavy set-up happens here, once."""
        if not self._configured:
            self._configure()
            self._configured = True

    def start(self) -> None:
        """Begin polling."""
        self.configure()
        self._running = True

    def exit(self, reason: str = "exit") -> None:
        """Release resources; the loop returns."""
        if self._exiting:
            return
        self._exiting = True
        self.exit_reason = reason
        try:
            self._on_exit()
            self._close_owned()
        finally:
            self._publish_progress(final=True)

    def _own(self, resource: C) -> C:
        """Close `resource` on exit (after `_on_exit`, in the reverse order of `_own` calls); returns it."""
        self._owned.append(resource)
        return resource

    def _close_owned(self) -> None:
        while self._owned:
            resource = self._owned.pop()
            try:
                resource.close()
            except Exception as err:  # noqa: BLE001 - closing on the way out; close the rest
                log.warning("%s %d: closing %s failed: %s", self.role, self.ctx.index, type(resource).__name__, err)

    @property
    def exiting(self) -> bool:
        """True once exit was called."""
        return self._exiting

    def request_exit(self, reason: str) -> None:
        """Ask the worker to exit at the top of its next poll (safe from a signal handler: it only
        notes the reason; resources are released by `exit`, never under a poll in progress)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_requested(self) -> bool:
        """True once the experiment's stop flag was seen (code deep in a poll should return)."""
        return self._stop_reason is not None or self._exiting

    # ---- subclass hooks
    @abc.abstractmethod
    def _configure(self) -> None: ...

    @abc.abstractmethod
    def _poll(self) -> PollResult: ...

    def _on_exit(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Flush and close; subclasses extend."""

    def progress(self) -> dict[str, Any]:
        """Role-specific progress fields; subclasses extend."""
        return {}

    # ---- driving
    def poll_once(self) -> PollResult:
        """One poll plus bookkeeping; returns what the poll did."""
        now = time.monotonic()
        if now >= self._next_progress:
            self._next_progress = now + self.progress_interval
            self._publish_progress(check_stop=True)
        if self._stop_reason is not None and not self._exiting:
            self.exit(self._stop_reason)
        if self._exiting or not self._running:
            return PollResult()
        result = self._poll()
        self.stats.polls += 1
        if result.sample_count and not self.stats.samples:
            timeline.mark("first_samples")
            # Report the first samples at the next poll rather than a progress interval later: the
            # monitor's first frames, and an actor's first episodes in its log, show up at once.
            self._next_progress = now
        self.stats.samples += result.sample_count
        self.stats.batches += result.batch_count
        if result.sample_count == 0 and result.batch_count == 0:
            self.stats.idle_polls += 1
        return result

    def run(self) -> None:
        """Poll until the experiment stops or exit is requested (own-process mode)."""
        self.start()
        timeline.mark("configured")
        try:
            while not self._exiting:
                if not self._running:
                    time.sleep(0.1)
                self.poll_once()
        except KeyboardInterrupt:
            self.exit("interrupted")
            raise
        finally:
            if not self._exiting:
                self.exit("error")

    # ---- the stop flag and progress through name records
    def _check_stop_flag(self) -> None:
        """One GET of the stop flag, for a worker blocked inside a poll (waiting on a peer); the
        poll loop reads it along with the progress write instead (`_publish_progress`)."""
        try:
            stop = _get_or_none(self.ctx.name_records, keys.stop_flag(self.ctx.root))
        except Exception as err:  # noqa: BLE001 - a name-record outage must not kill a worker
            log.warning("%s %d: name records unreachable (%s); continuing", self.role, self.ctx.index, err)
            return
        self._note_stop_flag(stop)

    def _note_stop_flag(self, stop: str | None) -> None:
        if stop is not None and self._stop_reason is None:
            # Only note it: exit closes resources, which must not happen under a poll in progress.
            log.info("%s %d: stop flag set (%s)", self.role, self.ctx.index, stop)
            self._stop_reason = f"stop: {stop}"

    def fail_run(self, reason: str, timeout: float = 30.0) -> None:
        """End the whole run with `reason` (e.g. 'failed: ...'): set the stop flag unless one is set.

        Retried until written or `timeout` s passed (the monitor adopts the flag as the stop reason).
        """
        nr, flag = self.ctx.name_records, keys.stop_flag(self.ctx.root)
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            try:
                if _get_or_none(nr, flag) is None:
                    nr.add(flag, reason, replace=True, delete_on_exit=False)
                break
            except Exception as err:  # noqa: BLE001 - retried
                if time.monotonic() + delay > deadline:
                    log.error("%s %d: could not fail the run (%s): %s", self.role, self.ctx.index, reason, err)
                    break
                time.sleep(delay)
                delay = min(2 * delay, 2.0)
        log.error("%s %d: %s", self.role, self.ctx.index, reason)
        if self._stop_reason is None:
            self._stop_reason = f"stop: {reason}"

    def _publish_progress(self, final: bool = False, check_stop: bool = False) -> None:
        """Write this worker's progress; with check_stop, read the stop flag in the same round trip."""
        body = {
            "role": self.role,
            "index": self.ctx.index,
            "pid": os.getpid(),
            "time": time.time(),
            "uptime": time.monotonic() - self.stats.started,
            "polls": self.stats.polls,
            "samples": self.stats.samples,
            "batches": self.stats.batches,
            "running": self._running and not final and not self._exiting,
            **self.progress(),
        }
        if self.metrics is not None:
            self.metrics.update(body)
        nr, name = self.ctx.name_records, keys.worker_progress(self.ctx.root, self.role, self.ctx.index)
        ttl = self.ctx.experiment.spec.name_records.keepalive_ttl
        # The last progress outlives the worker (delete_on_exit=False) so the launcher can read final totals.
        try:
            if check_stop:
                stop = nr.add_and_get(
                    name, json.dumps(body), read=keys.stop_flag(self.ctx.root), keepalive_ttl=ttl,
                    replace=True, delete_on_exit=False,
                )  # fmt: skip
                self._note_stop_flag(stop)
            else:
                nr.add(name, json.dumps(body), keepalive_ttl=ttl, replace=True, delete_on_exit=False)
        except Exception as err:  # noqa: BLE001 - a name-record outage must not kill a worker
            log.warning("%s %d: name records unreachable (%s); continuing", self.role, self.ctx.index, err)


def _get_or_none(nr: NameRecords, name: str) -> str | None:
    from srl_runtime.name_records.base import NameEntryNotFound

    try:
        return nr.get(name)
    except NameEntryNotFound:
        return None
