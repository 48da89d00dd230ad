"""Where progress goes: the terminal, TensorBoard event files and a CSV in the run directory.

What is written, under which tag and column, is the table in `srl_runtime.stats`.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from srl_runtime.launcher.monitor import Summary
from srl_runtime.stats import CSV_COLUMNS, LEARNER_KEYS, STATS, scalars

TENSORBOARD_DIR = "tensorboard"
CSV_FILE = "metrics.csv"
FLUSH_SECONDS = 10  # TensorBoard event files are flushed at least this often (and on close)


class ProgressReporter:
    """Prints a progress line every `interval` seconds and logs scalars every tick.

    The first tick with frames also prints at once, whatever the interval: it is the line that says
    the run has started (bench/harness.py times start-up by it).
    """

    def __init__(self, run_dir: Path, *, interval: float = 2.0, stream: TextIO = sys.stdout, quiet: bool = False) -> None:
        self.interval = interval
        self.stream = stream
        self.quiet = quiet
        self._last_print = -1e9
        self._printed_frames = False  # a line with frames > 0 was printed
        path = run_dir / CSV_FILE
        # A resumed run appends under the header already there (an older run's columns included).
        header = _header(path)
        self._csv_file = open(path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.DictWriter(self._csv_file, fieldnames=header or list(CSV_COLUMNS), extrasaction="ignore")
        if not header:
            self._csv.writeheader()
        self._tb: Any = None
        try:
            self._tb = summary_writer_class()(str(run_dir / TENSORBOARD_DIR), flush_secs=FLUSH_SECONDS)
        except ImportError:  # TensorBoard output is optional; the CSV always exists
            self._tb = None

    def report(self, s: Summary) -> None:
        """Record one tick; print if the interval passed."""
        values = scalars(s)
        self._csv.writerow({k: _cell(v) for k, v in values.items()})
        self._csv_file.flush()
        if self._tb is not None:
            step = s.env_frames
            for stat in STATS:
                value = values.get(stat.name)
                if stat.tb is not None and value is not None:
                    self._tb.add_scalar(stat.tb, value, step)
            for key, value in s.learner.items():
                if key not in LEARNER_KEYS:  # what a learner adds beyond the table (PPG, IMPALA)
                    self._tb.add_scalar(f"losses/{key}", value, step)
        first_frames = s.env_frames > 0 and not self._printed_frames
        if not self.quiet and (first_frames or s.wall_seconds - self._last_print >= self.interval):
            self._last_print = s.wall_seconds
            self._printed_frames = self._printed_frames or s.env_frames > 0
            self.stream.write(format_line(s) + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Flush files."""
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def summary_writer_class() -> Any:
    """tensorboardX's SummaryWriter, imported without torch unless torch is loaded already.

    Why: tensorboardX.writer imports torch when it can (only to name tensor types in its annotations),
    over a second of CPU in the launcher while its workers start on the same cores; the launcher
    writes float scalars only. A None in sys.modules makes that optional import fail at once; the
    entry is removed again, so a later `import torch` in this process works as usual.
    """
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import SummaryWriter
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    return SummaryWriter


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="") as f:
            return next(csv.reader(f), [])
    except FileNotFoundError:
        return []


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return f"{value:.8g}"


def format_line(s: Summary) -> str:
    """One human line: time, frames, frames/s, version, mean return."""
    ret = "   n/a" if s.mean_return is None else f"{s.mean_return:6.1f}"
    workers = " ".join(f"{k}={v}" for k, v in sorted(s.workers.items()))
    return (
        f"[{s.wall_seconds:7.1f}s] frames {s.env_frames:>11,} ({s.frames_per_second:>8,.0f}/s)  "
        f"train {s.train_steps:>6}  version {s.policy_version:>6}  return {ret} ({s.episodes} ep)  {workers}"
    )
