"""Local launcher: every worker as its own process on this machine, supervised.

A worker that dies is restarted (a trainer resumes from the `checkpoint` tag); the run ends when the
monitor sees a stop condition or on Ctrl-C, after which workers exit on the stop flag and the trainer
writes a final checkpoint, so `srl run --resume` continues from there.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from srl_runtime.config.experiment import RLExperiment
from srl_runtime.launcher.monitor import ExperimentMonitor, Summary
from srl_runtime.launcher.reporting import ProgressReporter
from srl_runtime.name_records import keys
from srl_runtime.name_records.factory import make_name_records
from srl_runtime.workers import worker_counts

log = logging.getLogger(__name__)

MAX_RESTARTS = 20


def run_dir_for(experiment: RLExperiment, base: Path | None) -> Path:
    """runs/<name> under the current directory unless given."""
    return base if base is not None else Path("runs") / experiment.metadata.name


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    """A fresh run clears what a previous one left; --resume keeps it."""
    if not resume:
        for sub in ("params", "name_records", "tensorboard"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        for f in ("metrics.csv", "state.json"):
            (run_dir / f).unlink(missing_ok=True)
    else:
        # Workers must not see the last run's stop flag or stale progress.
        shutil.rmtree(run_dir / "name_records", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)


@dataclass
class _Proc:
    role: str
    index: int
    process: mp.process.BaseProcess
    restarts: int = 0


def _worker_main(role: str, index: int, doc: dict, run_dir: str, log_level: int) -> None:
    """Entry point of a worker process (spawned: no torch state inherited)."""
    import sys

    from srl_runtime.config.load import parse_experiment
    from srl_runtime.workers import WorkerContext, make_worker

    logging.basicConfig(level=log_level, format=f"%(asctime)s {role}[{index}] %(levelname)s %(message)s")
    # The launcher handles Ctrl-C through the stop flag, so the checkpoint is written calmly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    experiment = parse_experiment(doc)
    nr = make_name_records(experiment.spec.name_records, Path(run_dir))
    # No resume flag: a trainer always continues from the `checkpoint` tag if the run dir has one.
    worker = make_worker(WorkerContext(experiment, role, index, nr, Path(run_dir)))
    try:
        worker.run()
    finally:
        nr.close()
    sys.exit(0 if (worker.exit_reason or "").startswith("stop") else 1)


class LocalLauncher:
    """Starts, supervises and stops the workers of one experiment."""

    def __init__(self, experiment: RLExperiment, run_dir: Path, *, resume: bool = False, quiet: bool = False, log_level: int = logging.WARNING) -> None:
        self.experiment = experiment
        self.run_dir = run_dir
        self.resume = resume
        self.quiet = quiet
        self.log_level = log_level
        self.ctx = mp.get_context("spawn")
        self.procs: list[_Proc] = []
        self.restarts = 0

    def _spawn(self, role: str, index: int) -> mp.process.BaseProcess:
        # Not exclude_none: an explicit null (e.g. valueClip: null) differs from the default.
        doc = self.experiment.model_dump(mode="json", by_alias=True)
        p = self.ctx.Process(
            target=_worker_main,
            args=(role, index, doc, str(self.run_dir), self.log_level),
            name=f"srl-{role}-{index}",
            daemon=False,
        )
        p.start()
        return p

    def run(self) -> Summary:
        """Run to a stop condition; returns the final summary."""
        prepare_run_dir(self.run_dir, self.resume)
        spec = self.experiment.spec
        nr = make_name_records(spec.name_records, self.run_dir)
        root = keys.experiment_root(self.experiment.metadata.name, self.experiment.metadata.namespace)
        monitor = ExperimentMonitor(nr, root, spec.stop, state_file=self.run_dir / "state.json", resume=self.resume)
        reporter = ProgressReporter(self.run_dir, quiet=self.quiet)
        # Trainers first: they publish version 1 and the sample stream addresses actors wait for.
        for role in ("trainer", "policy", "eval", "actor"):
            for i in range(worker_counts(spec)[role]):
                self.procs.append(_Proc(role, i, self._spawn(role, i)))
        try:
            while monitor.summary.stop_reason is None:
                time.sleep(0.5)
                self._supervise(monitor)
                reporter.report(monitor.tick())
        except KeyboardInterrupt:
            monitor.request_stop("interrupted")
        finally:
            if monitor.summary.stop_reason is None:
                monitor.request_stop("failed")
            self._shutdown()
            monitor.tick()
            reporter.report(monitor.summary)
            reporter.close()
            nr.close()
        return monitor.summary

    def _supervise(self, monitor: ExperimentMonitor) -> None:
        for proc in self.procs:
            if proc.process.is_alive():
                continue
            code = proc.process.exitcode
            proc.process.join()
            if proc.restarts >= MAX_RESTARTS:
                monitor.request_stop(f"failed: {proc.role} {proc.index} died {proc.restarts + 1} times")
                return
            log.warning("%s %d exited with %s; restarting", proc.role, proc.index, code)
            if not self.quiet:
                print(f"worker {proc.role}[{proc.index}] exited with code {code}; restarting", flush=True)
            proc.restarts += 1
            self.restarts += 1
            # A restarted trainer resumes from the checkpoint tag.
            proc.process = self._spawn(proc.role, proc.index)

    def _shutdown(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.process.join(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.process.is_alive():
                log.warning("%s %d did not exit; terminating", proc.role, proc.index)
                proc.process.terminate()
                proc.process.join(timeout=5)
            if proc.process.is_alive():
                proc.process.kill()
                proc.process.join()
