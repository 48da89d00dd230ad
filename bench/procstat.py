"""CPU-seconds and process / thread counts of a run's whole process tree, read from /proc.

A sampler thread reads /proc/<pid>/stat of every process in the run: those in the run's session (the
harness starts each run in a new session) and every descendant of the leader (a system may start
helpers in sessions of their own: Ray's raylet). Per process it keeps the last utime+stime seen; the
peaks of process and thread counts are kept over the samples. At the end the rusage of the reaped
leader (leader + every descendant it, or its children, waited for; RUSAGE_CHILDREN's increase over
the run) is combined with that: the CPU
total is the larger of the two, since sampling misses up to one interval of a process that exited
and wait4 misses processes nobody waited for.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    session: int
    cpu_seconds: float  # utime + stime of this process itself
    threads: int
    start_ticks: int  # start time: (pid, start) names one process even if the pid is reused


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line (the command name may hold spaces and parentheses)."""
    pid_part, rest = text.split(" (", 1)
    fields = rest.rsplit(") ", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); proc(5) field k is fields[k - 3].
    return ProcStat(
        pid=int(pid_part), ppid=int(fields[1]), session=int(fields[3]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        threads=int(fields[17]), start_ticks=int(fields[19]),
    )


def snapshot() -> list[ProcStat]:
    """Every process readable now (one that exits while being read is skipped)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                out.append(parse_stat(f.read()))
        except (OSError, ValueError, IndexError):
            continue
    return out


def members(procs: list[ProcStat], leader: int) -> list[ProcStat]:
    """The leader's session plus all of the leader's descendants."""
    children: dict[int, list[ProcStat]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    chosen = {p.pid: p for p in procs if p.session == leader}
    stack = [leader]
    while stack:
        for c in children.get(stack.pop(), []):
            chosen[c.pid] = c
            stack.append(c.pid)
    return list(chosen.values())


@dataclass
class GroupUsage:
    """What the sampler saw of one run."""

    cpu_by_process: dict[tuple[int, int], float] = field(default_factory=dict)
    peak_processes: int = 0
    peak_threads: int = 0
    samples: int = 0
    rusage_cpu: float | None = None  # the leader's wait4 rusage (self + waited-for descendants)

    def add(self, procs: list[ProcStat]) -> None:
        for p in procs:
            key = (p.pid, p.start_ticks)
            self.cpu_by_process[key] = max(self.cpu_by_process.get(key, 0.0), p.cpu_seconds)
        self.peak_processes = max(self.peak_processes, len(procs))
        self.peak_threads = max(self.peak_threads, sum(p.threads for p in procs))
        self.samples += 1

    @property
    def sampled_cpu(self) -> float:
        return sum(self.cpu_by_process.values())

    @property
    def cpu_seconds(self) -> float:
        return max(self.sampled_cpu, self.rusage_cpu or 0.0)

    def record(self) -> dict:
        return {"cpu_seconds": round(self.cpu_seconds, 2), "sampled_cpu_seconds": round(self.sampled_cpu, 2),
                "rusage_cpu_seconds": None if self.rusage_cpu is None else round(self.rusage_cpu, 2),
                "processes_seen": len(self.cpu_by_process), "peak_processes": self.peak_processes,
                "peak_threads": self.peak_threads, "samples": self.samples}


class Sampler:
    """Samples the run of `leader` every `interval` seconds on a daemon thread until `stop()`."""

    def __init__(self, leader: int, interval: float = 0.5) -> None:
        self.leader = leader
        self.interval = interval
        self.usage = GroupUsage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        got = members(snapshot(), self.leader)
        if got:
            self.usage.add(got)

    def stop(self) -> GroupUsage:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.usage
