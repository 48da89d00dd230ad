"""`srl worker`: one worker, in its own process on its own host — what a pod runs.

It binds on its host's address, registers in the name records (Redis in a cluster), finds its peers
there, and exits 0 once the experiment's stop condition is reached. Trainer 0 also runs the experiment
monitor (aggregates progress, decides the stop, writes the summary the operator shows in status).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.ports import ListenPorts
from srl_runtime.config.roles import Role
from srl_runtime.config.worker_env import WorkerEnv
from srl_runtime.launcher.monitor import ExperimentMonitor
from srl_runtime.launcher.reporting import ProgressReporter
from srl_runtime.metrics import MetricsExporter
from srl_runtime.name_records.factory import make_name_records
from srl_runtime.workers import WorkerContext, make_worker

log = logging.getLogger(__name__)

PREEMPTED = "preempted: SIGTERM"  # the exit reason of a worker asked to leave by its pod's deletion
# 128 + SIGTERM, as a shell reports it: not 0, so a deleted trainer never reads as a finished one.
EXIT_PREEMPTED = 128 + signal.SIGTERM


@dataclass
class WorkerOptions:
    """Where and as what this process runs (flags, else environment variables)."""

    role: Role
    index: int
    host: str
    run_dir: Path
    metrics_port: int | None
    ports: ListenPorts = field(default_factory=ListenPorts)  # stream ports to bind (pods: declared ones)
    advertise_host: str | None = None  # what peers connect to, if not `host` (pods: the Service DNS name)


def default_host(env: WorkerEnv) -> str:
    """This host's address: the pod IP if given, else what the hostname resolves to."""
    if env.pod_ip:
        return env.pod_ip
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def apply_environment(experiment: RLExperiment, env: WorkerEnv) -> RLExperiment:
    """Fold the pod's environment (namespace, Redis, shared paths) into the experiment."""
    doc = experiment.model_copy(deep=True)
    if env.namespace:
        doc.metadata.namespace = env.namespace
    if env.name_records_redis:
        doc.spec.name_records.backend = "redis"
        doc.spec.name_records.redis_address = env.name_records_redis
    if env.param_db_path:
        doc.spec.parameter_db.path = env.param_db_path
    return doc


def run_worker(experiment: RLExperiment, opts: WorkerOptions, env: WorkerEnv) -> int:
    """Run one worker to the end of the experiment; returns the process exit code."""
    experiment = apply_environment(experiment, env)
    opts.run_dir.mkdir(parents=True, exist_ok=True)
    nr = make_name_records(experiment.spec.name_records, opts.run_dir)
    ctx = WorkerContext(experiment, opts.role, opts.index, nr, opts.run_dir, host=opts.host, ports=opts.ports,
                        advertise_host=opts.advertise_host, distributed=True)
    worker = make_worker(ctx)
    if opts.metrics_port is not None:
        worker.metrics = MetricsExporter(experiment.metadata.name, opts.role, opts.index, opts.metrics_port)
    monitor_thread = None
    stop_monitor = threading.Event()
    if opts.role == "trainer" and opts.index == 0:
        monitor = ExperimentMonitor(nr, ctx.root, experiment.spec.stop, state_file=opts.run_dir / "state.json", resume=True)
        monitor_thread = threading.Thread(
            target=_monitor_loop, args=(monitor, stop_monitor, opts.run_dir), name="monitor", daemon=True
        )
        monitor_thread.start()
    log.info("%s %d: binding on %s, name records %s", opts.role, opts.index, opts.host, type(nr).__name__)

    def on_sigterm(signum: int, _frame: object) -> None:
        # Pod deletion, node drain, preemption: leave like a stop (a trainer writes its checkpoint).
        log.info("%s %d: SIGTERM, exiting after the current poll", opts.role, opts.index)
        worker.request_exit(PREEMPTED)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        worker.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_monitor.set()
        if monitor_thread is not None:
            monitor_thread.join(timeout=5)
        nr.close()
    reason = worker.exit_reason or ""
    log.info("%s %d: exit (%s)", opts.role, opts.index, reason)
    if reason == PREEMPTED:
        return EXIT_PREEMPTED
    return 0 if reason.startswith("stop") and "failed" not in reason else 1


def _monitor_loop(monitor: ExperimentMonitor, stop: threading.Event, run_dir: Path) -> None:
    """Tick the monitor each second; its summary also goes to metrics.csv and TensorBoard in the run dir
    (in a pod: the parameter-DB volume, so they outlive the pod)."""
    reporter = ProgressReporter(run_dir, quiet=True)
    try:
        while not stop.wait(1.0):
            try:
                s = monitor.tick()
            except Exception as err:  # noqa: BLE001 - a name-record outage delays the monitor, no more
                log.warning("monitor: %s", err)
                continue
            reporter.report(s)
            if s.stop_reason is not None and monitor.stop_written:  # not before: the flag is what ends the run
                log.info("monitor: stop (%s): %s frames, %s train steps", s.stop_reason, s.env_frames, s.train_steps)
                return
    finally:
        reporter.close()

