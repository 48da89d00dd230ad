"""Run one training command and watch its output: every line is stamped with the wall-clock seconds
since launch as it arrives, handed to a parser, and the run is ended when a watcher (the harness's own
episode window) or the parser says so, when the process exits, or at a wall-clock cap. The run's whole
process tree is sampled for CPU time and process / thread counts meanwhile (procstat).

Why stamp lines here rather than trust each system's own clock: the systems count time from
different points (after start-up, per iteration, ...). Stamping on arrival measures all of them
from the same moment, launch, with the same clock.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import procstat


@dataclass
class Run:
    """What one run produced: progress samples, the solve time if any, and how it ended."""

    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds since launch, generated env frames)
    trained: list[tuple[float, int]] = field(default_factory=list)  # (seconds since launch, trained env frames)
    solved_at: float | None = None  # seconds since launch when the watcher / parser first said solved
    launch_time: float = 0.0  # unix seconds at launch (episode logs carry unix end times)
    usage: dict = field(default_factory=dict)  # procstat's record of the process tree
    wall: float = 0.0
    exit_code: int | None = None
    ended_by: str = ""  # "solved", "cap", "exit"
    log: str = ""

    def first_frame(self) -> float | None:
        """Seconds from launch to the first progress report with frames > 0."""
        return next((t for t, f in self.progress if f > 0), None)

    def rate(self, skip_first: float = 0.0, trained: bool = False) -> float | None:
        """Env frames per second (generated, or trained) between the first sample after `skip_first`
        seconds of progress (start-up and warm-up excluded) and the last sample."""
        pts = [p for p in (self.trained if trained else self.progress) if p[1] > 0]
        if len(pts) < 2:
            return None
        t_start = pts[0][0] + skip_first
        window = [p for p in pts if p[0] >= t_start]
        if len(window) < 2:
            window = pts[-2:]
        (t0, f0), (t1, f1) = window[0], window[-1]
        return (f1 - f0) / (t1 - t0) if t1 > t0 else None


@dataclass(frozen=True)
class Progress:
    """Counters a progress line reports: generated env frames, and trained ones where it says."""

    generated: int
    trained: int | None = None


# A parser takes (seconds since launch, line) and returns (Progress or None, solved: bool).
Parser = Callable[[float, str], tuple[Progress | None, bool]]
# A watcher is called about once a second with seconds since launch; True ends the run as solved.
Watcher = Callable[[float], bool]


def run(cmd: list[str], parser: Parser, *, cap: float, log_path: Path, cwd: Path | None = None,
        env: dict[str, str] | None = None, stop_when_solved: bool = True, grace: float = 15.0,
        watcher: Watcher | None = None, min_window: float = 0.0, hard_cap: float | None = None) -> Run:
    """Start `cmd` in its own session (so all of its children can be signalled together), watch it.

    The run ends when the parser or `watcher` says solved, when the process exits, or at `cap`; but a
    run that has not yet shown `min_window` seconds of progress after its first frame by then goes on
    until it has (or until `hard_cap`), so a system that starts slowly still gets its throughput
    measured. Whatever happens after `cap` does not count as a solve within the cap (the harness
    censors at `cap`)."""
    result = Run(log=str(log_path))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # One OpenMP thread per process for every system: each runs several processes on few cores, and
    # torch's default (a thread per core, spin-waiting) then stalls small ops whenever another process
    # holds a core. Seen here: CleanRL's ppo.py ran at ~1/10 of its speed without this. Sample Factory
    # and ours already set one thread per worker themselves.
    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    full_env = {**os.environ, **threads, "PYTHONUNBUFFERED": "1", **(env or {})}
    t0 = time.monotonic()
    result.launch_time = time.time()
    cpu_before = children_cpu()
    with open(log_path, "w", buffering=1) as log:  # line-buffered: a run can be watched live
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=full_env,
                                start_new_session=True, text=True, errors="replace", bufsize=1)
        done = threading.Event()
        sampler = procstat.Sampler(proc.pid).start()

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                now = time.monotonic() - t0
                log.write(f"[{now:9.3f}] {line}")
                if done.is_set():
                    continue  # past the cap or the solve: logged, no longer measured
                try:
                    prog, solved = parser(now, line)
                except Exception:  # noqa: BLE001 - an odd line must not end the measurement
                    continue
                if prog is not None:
                    result.progress.append((now, prog.generated))
                    if prog.trained is not None:
                        result.trained.append((now, prog.trained))
                if solved and result.solved_at is None:
                    result.solved_at = now
                    if stop_when_solved:
                        done.set()
            done.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        limit = max(cap, hard_cap if hard_cap is not None else cap)
        while not done.is_set():
            now = time.monotonic() - t0
            if now >= cap:
                first = result.first_frame()
                if now >= limit or min_window <= 0 or (first is not None and now - first >= min_window):
                    break
            if watcher is not None and watcher(now):
                if result.solved_at is None:
                    result.solved_at = now
                if stop_when_solved:
                    break
            done.wait(timeout=min(1.0, max(0.05, limit - now)))
        done.set()
        result.wall = time.monotonic() - t0
        if proc.poll() is None:
            result.ended_by = "solved" if result.solved_at is not None else "cap"
            stop_group(proc, grace)
        else:
            result.ended_by = "solved" if result.solved_at is not None else "exit"
        thread.join(timeout=5)
        try:
            proc.wait(timeout=5)  # reaped: its rusage (and its waited-for descendants') is now ours
        except subprocess.TimeoutExpired:
            pass
        usage = sampler.stop()
        # The harness runs one command at a time, so the increase over the run is this run's tree.
        usage.rusage_cpu = children_cpu() - cpu_before
        result.usage = usage.record()
        result.exit_code = proc.returncode
    return result


def children_cpu() -> float:
    """CPU seconds of every child this process has reaped so far (self's RUSAGE_CHILDREN)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGINT first (every system here shuts down cleanly on it), then SIGTERM, then SIGKILL — all
    to the run's own process group only, so nothing else on the machine is touched. Each signal gets
    its time for the whole group (leader and the workers it started) to go away."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or its zombie keeps the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
