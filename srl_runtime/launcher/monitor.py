"""Experiment monitor: reads every worker's progress from the name records, aggregates it, decides when
the experiment stops, and writes the experiment summary other parties read (the operator's status).

Counters are accumulated from per-worker deltas so that a restarted worker (whose counters start at
zero again) never makes totals go backwards.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srl_runtime.config.experiment import StopSpec
from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords


@dataclass
class Summary:
    """The aggregate view of a running experiment."""

    env_frames: int = 0
    train_steps: int = 0
    policy_version: int = 0
    wall_seconds: float = 0.0
    mean_return: float | None = None
    episodes: int = 0
    frames_per_second: float = 0.0
    workers: dict[str, int] = field(default_factory=dict)
    dropped_messages: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None

    def public(self) -> dict[str, Any]:
        """The summary JSON `srl run --summary-json` writes."""
        return {
            "env_frames": self.env_frames,
            "train_steps": self.train_steps,
            "policy_version": self.policy_version,
            "wall_seconds": round(self.wall_seconds, 3),
            "mean_return": self.mean_return,
            "stop_reason": self.stop_reason,
        }


class ExperimentMonitor:
    """Aggregates progress and evaluates the stop condition; call `tick` about once a second."""

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        stop: StopSpec,
        *,
        state_file: Path | None = None,
        resume: bool = False,
    ) -> None:
        self.nr = name_records
        self.root = root
        self.stop = stop
        self.state_file = state_file
        self.summary = Summary()
        self._frames_base = 0
        self._wall_base = 0.0
        if resume and state_file is not None and state_file.exists():
            saved = json.loads(state_file.read_text())
            self._frames_base = int(saved.get("env_frames", 0))
            self._wall_base = float(saved.get("wall_seconds", 0.0))
        self._started = time.monotonic()
        self._last: dict[tuple[str, int], tuple[int, int]] = {}  # (role, index) -> (pid, frames)
        self._frames_acc = 0
        self._rate = collections.deque(maxlen=10)  # (time, frames) for frames/s over ~10 ticks
        self._episodes: dict[tuple[int, float], float] = {}  # (actor, end time) -> return

    def tick(self) -> Summary:
        """Read progress, update the summary, set the stop flag when a condition holds."""
        s = self.summary
        workers: dict[str, int] = collections.Counter()
        train_steps = s.train_steps
        version = s.policy_version
        dropped = 0
        episodes = 0
        for raw in self.nr.get_subtree(keys.progress_root(self.root)):
            try:
                p = json.loads(raw)
            except ValueError:
                continue
            role, index = p.get("role", "?"), int(p.get("index", 0))
            if p.get("running"):
                workers[role] += 1
                s.pids[f"{role}/{index}"] = int(p.get("pid", 0))
            dropped += int(p.get("dropped", 0))
            version = max(version, int(p.get("policy_version", 0)))
            if role == "trainer" and index == 0:
                train_steps = max(train_steps, int(p.get("train_steps", 0)))
            if role == "actor":
                self._count_frames(index, int(p.get("pid", 0)), int(p.get("env_frames", 0)))
                episodes += int(p.get("episodes", 0))
                for end, ret in p.get("recent_returns", []):
                    self._episodes[(index, end)] = ret
        self._trim_episodes()
        now = time.monotonic()
        s.env_frames = self._frames_base + self._frames_acc
        s.train_steps = train_steps
        s.policy_version = version
        s.wall_seconds = self._wall_base + now - self._started
        s.workers = dict(workers)
        s.dropped_messages = dropped
        s.episodes = max(s.episodes, episodes)
        self._rate.append((now, s.env_frames))
        if len(self._rate) >= 2 and self._rate[-1][0] > self._rate[0][0]:
            s.frames_per_second = (self._rate[-1][1] - self._rate[0][1]) / (self._rate[-1][0] - self._rate[0][0])
        window = [r for _, r in sorted(self._episodes.items(), key=lambda kv: kv[0][1])][-self.stop.return_window :]
        if s.stop_reason is None:  # after a stop, keep the return the decision was made on
            s.mean_return = float(sum(window) / len(window)) if window else None
        if s.stop_reason is None:
            s.stop_reason = self._stop_reason(window)
            if s.stop_reason is not None:
                self.request_stop(s.stop_reason)
        self._publish()
        return s

    def request_stop(self, reason: str) -> None:
        """Set the stop flag every worker watches."""
        if self.summary.stop_reason is None:
            self.summary.stop_reason = reason
        self.nr.add(keys.stop_flag(self.root), reason, replace=True, delete_on_exit=False)

    def _stop_reason(self, window: list[float]) -> str | None:
        s, stop = self.summary, self.stop
        if stop.target_mean_return is not None and len(window) >= stop.return_window and s.mean_return is not None and s.mean_return >= stop.target_mean_return:
            return "target_mean_return"
        if stop.env_frames is not None and s.env_frames >= stop.env_frames:
            return "env_frames"
        if stop.train_steps is not None and s.train_steps >= stop.train_steps:
            return "train_steps"
        if stop.wall_seconds is not None and s.wall_seconds >= stop.wall_seconds:
            return "wall_seconds"
        return None

    def _count_frames(self, index: int, pid: int, frames: int) -> None:
        last = self._last.get(("actor", index))
        if last is None or pid != last[0]:
            self._frames_acc += frames  # a new (or restarted) actor: all its frames are new
        elif frames >= last[1]:
            self._frames_acc += frames - last[1]
        else:
            return  # an older value read late: keep the newer one
        self._last[("actor", index)] = (pid, frames)

    def _trim_episodes(self) -> None:
        keep = max(200, 2 * self.stop.return_window)
        if len(self._episodes) > keep:
            for k in sorted(self._episodes, key=lambda k: k[1])[: len(self._episodes) - keep]:
                del self._episodes[k]

    def _publish(self) -> None:
        body = {**asdict(self.summary)}
        try:
            self.nr.add(keys.experiment_state(self.root), json.dumps(body), replace=True, delete_on_exit=False)
        except Exception:  # noqa: BLE001 - the summary is informational
            pass
        if self.state_file is not None:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(body))
            tmp.replace(self.state_file)
