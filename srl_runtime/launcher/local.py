"""Local launcher: every worker as its own process on this machine, supervised.

A worker that dies is restarted (a trainer resumes from the `checkpoint` tag); the run ends when the
monitor sees a stop condition or on Ctrl-C, after which workers exit on the stop flag and the trainer
writes a final checkpoint, so `srl run --resume` continues from there.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from srl_runtime import timeline
from srl_runtime.config.experiment import RLExperiment
from srl_runtime.config.roles import START_ORDER, Role, restart_limit, worker_counts
from srl_runtime.launcher.forkserver import worker_context
from srl_runtime.launcher.monitor import ExperimentMonitor, Summary
from srl_runtime.launcher.reporting import ProgressReporter
from srl_runtime.metrics import MetricsExporter
from srl_runtime.name_records import keys
from srl_runtime.name_records.factory import make_name_records
from srl_runtime.workers.episode_log import EPISODES_DIR

if TYPE_CHECKING:
    from srl_runtime.workers.base import Worker

log = logging.getLogger(__name__)

STOP_WRITE_TIMEOUT = 60.0  # seconds to keep retrying the stop flag before terminating workers


def run_dir_for(experiment: RLExperiment, base: Path | None) -> Path:
    """runs/<name> under the current directory unless given."""
    return base if base is not None else Path("runs") / experiment.metadata.name


# What a run leaves in its run directory (a fresh run without --overwrite refuses to delete these).
RUN_OUTPUTS = ("params", "name_records", "tensorboard", "logs", EPISODES_DIR, "metrics.csv", "state.json")


class RunDirInUse(ValueError):
    """The run directory holds a previous run and neither resume nor overwrite was asked for."""


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """RunDirInUse if starting afresh would silently delete a previous run's outputs."""
    if resume or overwrite:
        return
    found = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
    if found:
        raise RunDirInUse(
            f"{run_dir} holds a previous run ({', '.join(found)}): "
            "pass --resume to continue it or --overwrite to start afresh (deletes it)"
        )


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool = False) -> None:
    """A fresh run clears what a previous one left (only with overwrite); resume keeps it."""
    check_run_dir(run_dir, resume, overwrite)
    if not resume:
        for sub in ("params", "name_records", "tensorboard", "logs", EPISODES_DIR):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        for f in ("metrics.csv", "state.json"):
            (run_dir / f).unlink(missing_ok=True)
    else:
        # Workers must not see the last run's stop flag or stale progress.
        shutil.rmtree(run_dir / "name_records", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)


@dataclass
class _Proc:
    role: Role
    index: int
    process: mp.process.BaseProcess
    restarts: int = 0
    restart_at: float | None = None  # monotonic time of a scheduled restart (backing off)
    finished: bool = False  # exited 0: it saw the stop flag and is not restarted


LOG_TAIL_LINES = 20

def worker_log_path(run_dir: Path, role: str, index: int) -> Path:
    """Where a worker process of a local run writes its log (with tracebacks)."""
    return Path(run_dir) / "logs" / f"{role}-{index}.log"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log file ([] if there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


LAUNCHER_GONE = "launcher gone"  # a local worker's exit reason when the launcher died without stopping it


def _exit_when_launcher_dies(worker: Worker, launcher_pid: int) -> None:
    """Have `worker` exit once the launcher process is gone (SIGKILL, the OOM killer): nobody would
    stop it otherwise; it is the fork server's child, not the launcher's. A pidfd becomes readable
    when the process exits, so a daemon thread blocks on it: nothing polls, and a reused pid
    cannot fool it."""
    try:
        pidfd = os.pidfd_open(launcher_pid)
    except ProcessLookupError:
        worker.request_exit(LAUNCHER_GONE)
        return
    except OSError as err:  # no pidfd (kernel < 5.3): the worker stops with the run as before
        log.info("not watching the launcher (pidfd_open: %s)", err)
        return

    def watch() -> None:
        select.select([pidfd], [], [])
        log.warning("the launcher (pid %d) is gone; exiting", launcher_pid)
        worker.request_exit(LAUNCHER_GONE)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def _worker_main(role: Role, index: int, doc: dict, run_dir: str, log_level: int, launcher_pid: int) -> None:
    """Entry point of a worker process (forked by the fork server or spawned: no torch state inherited)."""
    import faulthandler
    import sys
    import traceback

    from srl_runtime.config.load import parse_experiment
    from srl_runtime.workers import WorkerContext, make_worker

    timeline.set_label(f"{role}-{index}")
    timeline.mark("worker_main")
    path = worker_log_path(Path(run_dir), role, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    faulthandler.enable(log_file)  # a native crash still leaves a trace where the launcher looks
    fmt = logging.Formatter(f"%(asctime)s {role}[{index}] %(levelname)s %(message)s")
    console, to_file = logging.StreamHandler(sys.stderr), logging.StreamHandler(log_file)
    console.setLevel(log_level)
    to_file.setLevel(logging.INFO)
    for h in (console, to_file):
        h.setFormatter(fmt)
    logging.basicConfig(level=min(log_level, logging.INFO), handlers=[console, to_file], force=True)
    # The launcher handles Ctrl-C through the stop flag, so the checkpoint is written calmly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = None
    try:
        experiment = parse_experiment(doc)
        nr = make_name_records(experiment.spec.name_records, Path(run_dir))
        timeline.mark("name_records_opened")
        # No resume flag: a trainer always continues from the `checkpoint` tag if the run dir has one.
        worker = make_worker(WorkerContext(experiment, role, index, nr, Path(run_dir)))
        _exit_when_launcher_dies(worker, launcher_pid)
        try:
            worker.run()
        finally:
            nr.close()
    except Exception as err:  # noqa: BLE001 - the traceback goes to the log file, one line to the terminal
        traceback.print_exc(file=log_file)
        logging.getLogger(__name__).error("%s[%d] crashed: %s: %s", role, index, type(err).__name__, err)
        sys.exit(1)
    sys.exit(0 if worker is not None and (worker.exit_reason or "").startswith("stop") else 1)


STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}  # signal -> the run's stop reason


class _StopSignal(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the launcher: stop the run cleanly (stop flag, checkpoint) with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _stop_on_signals() -> Callable[[], None]:
    """Make SIGINT (Ctrl-C) and SIGTERM stop the run cleanly; returns what restores the previous handlers.

    Explicit handlers, not Python's default KeyboardInterrupt: a process started with SIGINT ignored
    (anything launched with `cmd &` from a script, and everything it starts) keeps it ignored, and
    then Ctrl-C or `kill -INT` would not stop the run at all. SIGTERM (what `kill`, systemd and
    timeouts send) gets the same clean stop. Outside the main thread (a run started in-process by a
    library) signal handlers cannot be set; the defaults stay.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, _frame: object) -> None:
        raise _StopSignal(STOP_SIGNALS[signal.Signals(signum)])

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))  # an inherited block would hold them back

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


class LocalLauncher:
    """Starts, supervises and stops the workers of one experiment.

    A worker that crashes is restarted after a back-off (failurePolicy.backoffSeconds, doubling per
    restart of that worker, at most maxBackoffSeconds); once a worker used up its role's
    restartLimit the run fails, with that worker's last log lines in the summary.
    """

    def __init__(
        self,
        experiment: RLExperiment,
        run_dir: Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        quiet: bool = False,
        log_level: int = logging.WARNING,
        metrics_port: int | None = None,
    ) -> None:
        """metrics_port: serve every worker's Prometheus metrics on this port (0: any free one; None: off)."""
        self.experiment = experiment
        self.metrics_port = metrics_port
        self.metrics: MetricsExporter | None = None
        self.run_dir = run_dir
        self.resume = resume
        self.overwrite = overwrite
        self.quiet = quiet
        self.log_level = log_level
        self.ctx = worker_context()
        self.procs: list[_Proc] = []
        self.restarts = 0

    def _spawn(self, role: str, index: int) -> mp.process.BaseProcess:
        # Not exclude_none: an explicit null (e.g. valueClip: null) differs from the default.
        doc = self.experiment.model_dump(mode="json", by_alias=True)
        p = self.ctx.Process(
            target=_worker_main,
            args=(role, index, doc, str(self.run_dir), self.log_level, os.getpid()),
            name=f"srl-{role}-{index}",
            daemon=False,
        )
        p.start()
        timeline.mark(f"spawned:{role}-{index}")
        return p

    def run(self) -> Summary:
        """Run to a stop condition; returns the final summary."""
        prepare_run_dir(self.run_dir, self.resume, self.overwrite)
        timeline.mark("run_dir_prepared")
        spec = self.experiment.spec
        nr = make_name_records(spec.name_records, self.run_dir)
        root = keys.experiment_root(self.experiment.metadata.name, self.experiment.metadata.namespace)
        monitor = ExperimentMonitor(nr, root, spec.stop, state_file=self.run_dir / "state.json", resume=self.resume)
        reporter = ProgressReporter(self.run_dir, quiet=self.quiet)
        if self.metrics_port is not None:
            # A local run serves on loopback only.
            self.metrics = MetricsExporter(self.experiment.metadata.name, None, None, self.metrics_port, host="127.0.0.1")
        timeline.mark("monitor_ready")
        for role in START_ORDER:
            for i in range(worker_counts(spec)[role]):
                self.procs.append(_Proc(role, i, self._spawn(role, i)))
        restore_signals = _stop_on_signals()
        try:
            while monitor.summary.stop_reason is None:
                time.sleep(0.5)
                self._supervise(monitor)
                try:
                    reporter.report(monitor.tick())
                    self._export(monitor)
                except Exception as err:  # noqa: BLE001 - a name-record hiccup delays the monitor, no more
                    log.warning("monitor: %s", err)
        except _StopSignal as stop:
            monitor.request_stop(stop.reason)
        finally:
            restore_signals()
            if monitor.summary.stop_reason is None:
                monitor.request_stop("failed")
            if not monitor.ensure_stopped(timeout=STOP_WRITE_TIMEOUT):
                log.warning("the stop flag could not be written; terminating the workers")
            self._shutdown()
            try:
                monitor.tick()
            except Exception as err:  # noqa: BLE001 - the summary so far is still returned
                log.warning("monitor: %s", err)
            monitor.summary.restarts = self.restarts
            reporter.report(monitor.summary)
            reporter.close()
            if self.metrics is not None:
                self.metrics.close()
            nr.close()
        return monitor.summary

    def _export(self, monitor: ExperimentMonitor) -> None:
        """Every worker's newest progress onto the launcher's /metrics."""
        if self.metrics is not None:
            for (role, index), progress in monitor.progress.items():
                self.metrics.update_worker(role, index, progress)

    def _supervise(self, monitor: ExperimentMonitor) -> None:
        now = time.monotonic()
        policy = self.experiment.spec.failure_policy
        for proc in self.procs:
            if proc.finished:
                continue
            if proc.restart_at is not None:
                if now >= proc.restart_at:
                    proc.restart_at = None
                    # A restarted trainer resumes from the checkpoint tag.
                    proc.process = self._spawn(proc.role, proc.index)
                continue
            if proc.process.is_alive():
                continue
            code = proc.process.exitcode
            proc.process.join()
            if code == 0:  # it saw the stop flag (e.g. a worker failed the run); the monitor follows
                proc.finished = True
                continue
            limit = restart_limit(self.experiment.spec, proc.role)
            name = f"{proc.role}[{proc.index}]"
            if proc.restarts >= limit:
                path = worker_log_path(self.run_dir, proc.role, proc.index)
                monitor.summary.failure = {
                    "worker": f"{proc.role}/{proc.index}", "exit_code": code, "restarts": proc.restarts,
                    "log": str(path), "log_tail": log_tail(path),
                }  # fmt: skip
                monitor.request_stop(
                    f"failed: {name} exited with code {code} after {proc.restarts} restarts (restartLimit {limit})"
                )
                return
            delay = policy.backoff(proc.restarts)
            proc.restarts += 1
            self.restarts += 1
            monitor.summary.restarts = self.restarts
            log.warning("%s exited with %s; restarting in %.1fs", name, code, delay)
            if not self.quiet:
                print(
                    f"worker {name} exited with code {code}; restarting in {delay:.0f}s "
                    f"(restart {proc.restarts} of {limit})",
                    flush=True,
                )
            proc.restart_at = now + delay

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
