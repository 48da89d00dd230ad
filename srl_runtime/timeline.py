"""Start-up timeline marks: `mark("event")` appends one line to the file named by $SRL_STARTUP_TRACE.

Why: `srl run`'s start-up spans several processes (the CLI, the fork server, each worker), so no
single profiler sees it; bench/startup.py sets the variable, launches a run and reads these lines back
into a per-phase breakdown. Each line is `<time.monotonic()> <pid> <label> <event>` separated by tabs
(CLOCK_MONOTONIC is one clock for every process of the machine, so marks of different processes
compare). Without the variable a mark costs one comparison; marks are only placed on the start path
and on one-off firsts (a worker's first samples, an actor's first finished episode).
"""

from __future__ import annotations

import os
import time

TRACE_ENV = "SRL_STARTUP_TRACE"

_path = os.environ.get(TRACE_ENV) or None
_label = "srl"


def set_label(label: str) -> None:
    """Name this process in later marks (a worker: `actor-0`; the fork server: `forkserver`)."""
    global _label
    _label = label


def enabled() -> bool:
    """True when marks are written (tests and one-off checks may skip work that only feeds marks)."""
    return _path is not None


def mark(event: str) -> None:
    """Append `event` with the time and this process's pid and label (a no-op without $SRL_STARTUP_TRACE).

    One O_APPEND write per line: lines of concurrent processes never interleave.
    """
    if _path is None:
        return
    line = f"{time.monotonic():.6f}\t{os.getpid()}\t{_label}\t{event}\n".encode()
    try:
        fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return  # a trace is diagnostic: never fail a run over it
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
