"""Per-episode logs: read them, merge every process's episodes by end time, and compute the one
window the bench uses for every system (the mean return of the last 100 finished episodes).

Files (interface fixed for the bench): CSV with header `end_time,return,length`: end_time in unix
seconds when the episode ended, return the raw undiscounted return, length its agent steps.
Ours writes `<run_dir>/episodes/actor-<i>.csv`; the peers' recorder (bench/episode_recorder.py, loaded
by a .pth hook in each peer venv) writes `$SRL_BENCH_EPISODE_DIR/episodes-<pid>.csv`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HEADER = "end_time,return,length"
WINDOW = 100


@dataclass(frozen=True)
class Episode:
    end_time: float  # unix seconds
    ret: float  # raw undiscounted return
    length: int  # agent steps


@dataclass
class EpisodeLog:
    """All episodes of a run, merged in end-time order, and how many rows could not be read."""

    episodes: list[Episode]
    dropped_rows: int = 0
    files: int = 0


def parse_rows(lines: Iterable[str]) -> tuple[list[Episode], int]:
    """Rows of one file (header skipped); a malformed row (e.g. a last line still being written) is
    counted as dropped, never guessed at."""
    out: list[Episode] = []
    dropped = 0
    for line in lines:
        line = line.strip()
        if not line or line == HEADER:
            continue
        parts = line.split(",")
        try:
            if len(parts) != 3:
                raise ValueError(line)
            ep = Episode(float(parts[0]), float(parts[1]), int(float(parts[2])))
            if not (math.isfinite(ep.end_time) and math.isfinite(ep.ret)) or ep.length < 0:
                raise ValueError(line)
        except ValueError:
            dropped += 1
            continue
        out.append(ep)
    return out, dropped


def read_logs(files: Sequence[Path]) -> EpisodeLog:
    """Every file's episodes merged by end time."""
    episodes: list[Episode] = []
    dropped = 0
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        eps, d = parse_rows(text.splitlines())
        episodes.extend(eps)
        dropped += d
    episodes.sort(key=lambda e: e.end_time)
    return EpisodeLog(episodes, dropped, len(files))


def log_files(directory: Path, pattern: str) -> list[Path]:
    """The episode files under `directory` (ours: 'actor-*.csv'; the peers: 'episodes-*.csv')."""
    return sorted(directory.glob(pattern)) if directory.is_dir() else []


@dataclass(frozen=True)
class Solve:
    """The first episode end at which the window's mean reached the target."""

    seconds: float  # since launch
    steps: int  # agent steps of all episodes finished by then (in-progress episodes not counted)
    episodes: int


def first_solve(episodes: Sequence[Episode], launch_time: float, target: float, window: int = WINDOW) -> Solve | None:
    """Solve time = first episode end at which the last `window` episodes (all processes' episodes
    merged by end time) have mean >= target, minus launch time; None if never."""
    recent: deque[float] = deque(maxlen=window)
    total = 0.0
    steps = 0
    for i, e in enumerate(episodes):
        if len(recent) == window:
            total -= recent[0]
        recent.append(e.ret)
        total += e.ret
        steps += e.length
        if len(recent) == window and total / window >= target:
            return Solve(e.end_time - launch_time, steps, i + 1)
    return None


def window_mean(episodes: Sequence[Episode], window: int = WINDOW) -> float | None:
    """Mean return of the last `window` episodes (None before there are that many)."""
    if len(episodes) < window:
        return None
    return sum(e.ret for e in episodes[-window:]) / window


def curve(episodes: Sequence[Episode], window: int = WINDOW) -> list[tuple[int, float]]:
    """(cumulative agent steps of finished episodes, mean return of the last <= `window` episodes) at
    every episode end."""
    out: list[tuple[int, float]] = []
    recent: deque[float] = deque(maxlen=window)
    steps = 0
    for e in episodes:
        recent.append(e.ret)
        steps += e.length
        out.append((steps, sum(recent) / len(recent)))
    return out


def normalised_auc(points: Sequence[tuple[int, float]], budget: int, low: float, high: float) -> dict:
    """Area under the return-vs-steps step curve over [0, budget], normalised to [0, 1] by the return
    range [low, high] and the budget: 1.0 means the best return from the first step on.

    Before the first episode the curve is at `low`; past the run's last episode it keeps the last value
    (a run stopped when solved keeps its solved level). `covered` is the share of the budget the run's
    own episodes reached, so a run that ended early is visible as such.
    """
    if budget <= 0 or high <= low:
        raise ValueError("budget and return range must be positive")
    area = 0.0
    x_prev, y_prev = 0, low
    for x, y in points:
        if x >= budget:
            break
        area += (x - x_prev) * (y_prev - low)
        x_prev, y_prev = x, y
    area += (budget - x_prev) * (y_prev - low)
    covered = min(1.0, points[-1][0] / budget) if points else 0.0
    return {"auc": area / (budget * (high - low)), "covered": covered}
