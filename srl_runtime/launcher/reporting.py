"""Where progress goes: the terminal, TensorBoard event files and a CSV in the run directory."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from srl_runtime.launcher.monitor import Summary


class ProgressReporter:
    """Prints a progress line every `interval` seconds and logs scalars every tick."""

    def __init__(self, run_dir: Path, *, interval: float = 2.0, stream: TextIO = sys.stdout, quiet: bool = False) -> None:
        self.interval = interval
        self.stream = stream
        self.quiet = quiet
        self._last_print = -1e9
        self._csv_file = open(run_dir / "metrics.csv", "a", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._csv_file)
        if self._csv_file.tell() == 0:
            self._csv.writerow(
                ["wall_seconds", "env_frames", "frames_per_second", "train_steps", "policy_version", "mean_return", "episodes",
                 "dropped_messages", "non_finite_env_values", "non_finite_samples", "skipped_updates"]  # fmt: skip
            )
        self._tb: Any = None
        try:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:  # TensorBoard output is optional; the CSV always exists
            self._tb = None

    def report(self, s: Summary, trainer_stats: dict[str, float] | None = None) -> None:
        """Record one tick; print if the interval passed."""
        self._csv.writerow(
            [f"{s.wall_seconds:.2f}", s.env_frames, f"{s.frames_per_second:.1f}", s.train_steps, s.policy_version,
             "" if s.mean_return is None else f"{s.mean_return:.2f}", s.episodes, s.dropped_messages,
             s.non_finite_env_values, s.non_finite_samples, s.skipped_updates]
        )
        self._csv_file.flush()
        if self._tb is not None:
            step = s.env_frames
            self._tb.add_scalar("env/frames_per_second", s.frames_per_second, step)
            self._tb.add_scalar("train/steps", s.train_steps, step)
            self._tb.add_scalar("train/policy_version", s.policy_version, step)
            if s.mean_return is not None:
                self._tb.add_scalar("env/mean_return", s.mean_return, step)
            self._tb.add_scalar("health/dropped_messages", s.dropped_messages, step)
            self._tb.add_scalar("health/non_finite_env_values", s.non_finite_env_values, step)
            self._tb.add_scalar("health/non_finite_samples", s.non_finite_samples, step)
            self._tb.add_scalar("health/skipped_updates", s.skipped_updates, step)
            for k, v in (trainer_stats or {}).items():
                self._tb.add_scalar(f"train/{k}", v, step)
        if not self.quiet and s.wall_seconds - self._last_print >= self.interval:
            self._last_print = s.wall_seconds
            self.stream.write(format_line(s) + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Flush files."""
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def format_line(s: Summary) -> str:
    """One human line: time, frames, frames/s, version, mean return."""
    ret = "   n/a" if s.mean_return is None else f"{s.mean_return:6.1f}"
    workers = " ".join(f"{k}={v}" for k, v in sorted(s.workers.items()))
    return (
        f"[{s.wall_seconds:7.1f}s] frames {s.env_frames:>11,} ({s.frames_per_second:>8,.0f}/s)  "
        f"train {s.train_steps:>6}  version {s.policy_version:>6}  return {ret} ({s.episodes} ep)  {workers}"
    )
