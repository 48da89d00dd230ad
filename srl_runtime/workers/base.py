"""The one worker lifecycle: configure, start, pause, exit, and a poll loop with per-poll stats.

A worker is driven either by its own loop (`run`, one process per worker) or by a serial runner that
calls `poll_once` on several workers in turn (tests, single-process runs). Control goes through the
name records, so the same worker obeys a local launcher and a Kubernetes operator alike: the stop
flag ends every worker; a per-worker command key can pause and resume it.
"""

from __future__ import annotations

import abc
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.ports import ListenPorts
from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """Everything a worker needs to know about where it runs."""

    experiment: RLExperiment
    role: str
    index: int
    name_records: NameRecords
    run_dir: Path
    host: str = "127.0.0.1"
    ports: ListenPorts = field(default_factory=ListenPorts)  # TCP ports to bind on `host` (0: any)
    advertise_host: str | None = None  # the name peers connect to instead of `host` (a pod's DNS name)

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
        offsets = {"actor": 0, "policy": 10_000, "trainer": 20_000, "eval": 30_000}
        return self.experiment.spec.seed * 100_003 + offsets.get(self.role, 40_000) + self.index


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
    progress_interval = 1.0  # seconds between progress publications and control checks

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

    # ---- lifecycle
    def configure(self) -> None:
        """Build environments, networks and streams; heavy set-up happens here, once."""
        if not self._configured:
            self._configure()
            self._configured = True

    def start(self) -> None:
        """Begin (or resume) polling."""
        self.configure()
        self._running = True

    def pause(self) -> None:
        """Stop polling but keep every resource."""
        self._running = False

    def exit(self, reason: str = "exit") -> None:
        """Release resources; the loop returns."""
        if self._exiting:
            return
        self._exiting = True
        self.exit_reason = reason
        try:
            self._on_exit()
        finally:
            self._publish_progress(final=True)

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
            self._check_control()
            if self._stop_reason is None:
                self._publish_progress()
        if self._stop_reason is not None and not self._exiting:
            self.exit(self._stop_reason)
        if self._exiting or not self._running:
            return PollResult()
        result = self._poll()
        self.stats.polls += 1
        self.stats.samples += result.sample_count
        self.stats.batches += result.batch_count
        if result.sample_count == 0 and result.batch_count == 0:
            self.stats.idle_polls += 1
        return result

    def run(self) -> None:
        """Poll until the experiment stops or exit is requested (own-process mode)."""
        self.start()
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

    # ---- control and progress through name records
    def _check_control(self) -> None:
        nr, root = self.ctx.name_records, self.ctx.root
        try:
            stop = _get_or_none(nr, keys.stop_flag(root))
            command = _get_or_none(nr, keys.worker_command(root, self.role, self.ctx.index))
        except Exception as err:  # noqa: BLE001 - a name-record outage must not kill a worker
            log.warning("%s %d: name records unreachable (%s); continuing", self.role, self.ctx.index, err)
            return
        if stop is not None and self._stop_reason is None:
            # Only note it: exit closes resources, which must not happen under a poll in progress.
            log.info("%s %d: stop flag set (%s)", self.role, self.ctx.index, stop)
            self._stop_reason = f"stop: {stop}"
        elif command == "pause" and self._running:
            self.pause()
        elif command == "start" and not self._running:
            self.start()

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

    def _publish_progress(self, final: bool = False) -> None:
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
        try:
            self.ctx.name_records.add(
                keys.worker_progress(self.ctx.root, self.role, self.ctx.index),
                json.dumps(body),
                keepalive_ttl=self.ctx.experiment.spec.name_records.keepalive_ttl,
                replace=True,
                # The last progress outlives the worker so the launcher can read final totals.
                delete_on_exit=False,
            )
        except Exception as err:  # noqa: BLE001 - progress is best effort
            log.debug("progress publish failed: %s", err)


def _get_or_none(nr: NameRecords, name: str) -> str | None:
    from srl_runtime.name_records.base import NameEntryNotFound

    try:
        return nr.get(name)
    except NameEntryNotFound:
        return None
