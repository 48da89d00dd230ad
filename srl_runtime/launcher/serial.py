"""Serial mode: every worker of an experiment in this one process, polled in turn.

For tests and debugging: no processes, in-memory name records, the same worker code and streams.
"""

from __future__ import annotations

import time
from pathlib import Path

from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.roles import START_ORDER, worker_counts
from srl_runtime.launcher.local import prepare_run_dir
from srl_runtime.launcher.monitor import ExperimentMonitor, Summary
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.workers import Worker, WorkerContext, make_worker

SERIAL_SAMPLE_QUEUE = 256


def run_serial(
    experiment: RLExperiment, run_dir: Path, *, resume: bool = False, overwrite: bool = False, tick_seconds: float = 0.5
) -> Summary:
    """Run all workers round-robin in this process until a stop condition."""
    prepare_run_dir(run_dir, resume, overwrite)
    # One thread polls everyone: an actor must never block on back-pressure only this thread relieves.
    experiment = experiment.model_copy(deep=True)
    experiment.spec.streams.sample_queue = max(experiment.spec.streams.sample_queue, SERIAL_SAMPLE_QUEUE)
    nr = MemoryNameRecords()
    root = keys.experiment_root(experiment.metadata.name, experiment.metadata.namespace)
    monitor = ExperimentMonitor(nr, root, experiment.spec.stop, state_file=run_dir / "state.json", resume=resume)
    workers: list[Worker] = []
    for role in START_ORDER:
        for i in range(worker_counts(experiment.spec)[role]):
            w = make_worker(WorkerContext(experiment, role, i, nr, run_dir, blocking_waits=False))
            w.start()
            workers.append(w)
    next_tick = 0.0
    try:
        while monitor.summary.stop_reason is None:
            for w in workers:
                w.poll_once()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + tick_seconds
                for w in workers:
                    w._publish_progress()
                monitor.tick()
    finally:
        if monitor.summary.stop_reason is None:
            monitor.request_stop("failed")
        for w in workers:
            w.exit("stop")
        monitor.tick()
        nr.close()
    return monitor.summary
