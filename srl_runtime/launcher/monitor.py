"""Experiment monitor: reads every worker's progress from the name records, aggregates it, decides when
the experiment stops, and writes the experiment summary other parties read (the operator's status).

Counters are accumulated from per-worker deltas so that a restarted worker (whose counters start at
zero again) never makes totals go backwards.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srl_runtime.config.experiment import StopSpec
from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameEntryNotFound, NameRecords

log = logging.getLogger(__name__)

# Per-worker counters (progress key -> summary field) summed over workers and across their restarts.
COUNTERS: dict[str, str] = {
    "env_frames": "env_frames",
    "dropped": "dropped_messages",
    "non_finite_env_values": "non_finite_env_values",
    "non_finite_samples": "non_finite_samples",
    "skipped_updates": "skipped_updates",
    "rejected_checkpoints": "rejected_checkpoints",
    "trained_rows": "trained_rows",
    "dropped_stale_rows": "dropped_stale_rows",
}
# Summary fields whose per-second rate the monitor keeps (over about the last 10 ticks).
RATES: dict[str, str] = {
    "env_frames": "frames_per_second",
    "trained_rows": "trained_rows_per_second",
    "dropped_stale_rows": "dropped_stale_rows_per_second",
    "dropped_messages": "dropped_messages_per_second",
}
STOP_RETRY_SECONDS = 0.5  # first wait between attempts to write the stop flag (doubling, up to 5 s)


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
    dropped_messages: int = 0  # stream messages any receiver dropped (wire format or contents)
    drop_reasons: dict[str, int] = field(default_factory=dict)  # those by reason (see streams/schema.py)
    non_finite_env_values: int = 0  # env steps whose obs/reward held NaN/inf (actors)
    non_finite_samples: int = 0  # samples trainers skipped for NaN/inf (also in dropped_messages)
    skipped_updates: int = 0  # optimizer steps skipped for a non-finite loss or gradient
    rejected_checkpoints: int = 0  # parameter-DB files refused as unreadable or unsafe
    trained_rows: int = 0  # trajectory rows the trainers trained on
    dropped_stale_rows: int = 0  # trajectory rows the trainers dropped for staleness
    trained_rows_per_second: float = 0.0  # rates of the counters above (see RATES)
    dropped_stale_rows_per_second: float = 0.0
    dropped_messages_per_second: float = 0.0
    learner: dict[str, float] = field(default_factory=dict)  # trainer 0's statistics of its last train step
    policy_lag: float | None = None  # trainer 0's mean version lag of its last batch
    restarts: int = 0  # worker restarts by the launcher
    pids: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    failure: dict[str, Any] | None = None  # why the run failed: worker, exit code, its last log lines

    def public(self) -> dict[str, Any]:
        """The summary JSON `srl run --summary-json` writes."""
        out = {
            "env_frames": self.env_frames,
            "train_steps": self.train_steps,
            "policy_version": self.policy_version,
            "wall_seconds": round(self.wall_seconds, 3),
            "mean_return": self.mean_return,
            "stop_reason": self.stop_reason,
            "episodes": self.episodes,
            "restarts": self.restarts,
            **{name: getattr(self, name) for name in COUNTERS.values() if name != "env_frames"},
            "drop_reasons": dict(self.drop_reasons),
        }
        if self.failure is not None:
            out["failure"] = self.failure
        return out


class _Totals:
    """Sums counters that start from zero again when a worker restarts (a new pid)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], tuple[int, dict[str, int]]] = {}
        self.totals: collections.Counter[str] = collections.Counter()

    def add(self, role: str, index: int, pid: int, counters: dict[str, int]) -> None:
        last = self._last.get((role, index))
        prev: dict[str, int] = {}
        if last is not None and last[0] == pid:
            prev = last[1]
            if any(counters.get(k, 0) < v for k, v in prev.items()):
                return  # an older value read late: keep the newer one
        for k, v in counters.items():
            self.totals[k] += v - prev.get(k, 0)
        self._last[(role, index)] = (pid, dict(counters))


def _counters(p: dict[str, Any]) -> dict[str, int]:
    out = {k: int(p.get(k) or 0) for k in COUNTERS}
    for reason, n in (p.get("drop_reasons") or {}).items():
        out[f"drop:{reason}"] = int(n)
    return out


class ExperimentMonitor:
    """Aggregates progress and evaluates the stop condition; call `tick` about once a second.

    The stop flag is durable: once a stop is decided, every tick retries writing the flag until the
    name records take it (`stop_written`), so a name-record outage delays the end of a run but can
    never cancel it. A stop flag written by someone else (a worker failing the run) ends it too.
    """

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
        self._totals = _Totals()
        self._rate: collections.deque[tuple[float, dict[str, int]]] = collections.deque(maxlen=10)  # rates over ~10 ticks
        # (actor index, pid, episode number) -> (end time, return): every episode counted once
        self._episodes: dict[tuple[int, int, int], tuple[float, float]] = {}
        self.stop_written = False
        self.progress: dict[tuple[str, int], dict[str, Any]] = {}  # each worker's newest progress

    def tick(self) -> Summary:
        """Read progress, update the summary, set the stop flag when a condition holds."""
        s = self.summary
        if s.stop_reason is not None and not self.stop_written:
            self._write_stop()
        else:
            self._adopt_stop_flag()
        workers: dict[str, int] = collections.Counter()
        train_steps = s.train_steps
        version = s.policy_version
        episodes = 0
        for raw in self.nr.get_subtree(keys.progress_root(self.root)):
            try:
                p = json.loads(raw)
                role, index, pid = str(p.get("role", "?")), int(p.get("index", 0)), int(p.get("pid", 0))
                counters = _counters(p)
            except (ValueError, TypeError, AttributeError):
                continue
            if p.get("running"):
                workers[role] += 1
                s.pids[f"{role}/{index}"] = pid
            self._totals.add(role, index, pid, counters)
            self.progress[(role, index)] = p
            version = max(version, int(p.get("policy_version", 0)))
            if role == "trainer" and index == 0:
                train_steps = max(train_steps, int(p.get("train_steps", 0)))
                self._read_learner(p)
            if role == "actor":
                episodes += int(p.get("episodes", 0))
                self._add_episodes(index, pid, p.get("recent_returns") or [])
        self._trim_episodes()
        now = time.monotonic()
        totals = self._totals.totals
        s.env_frames = self._frames_base + totals["env_frames"]
        for key, name in COUNTERS.items():
            if key != "env_frames":
                setattr(s, name, totals[key])
        s.drop_reasons = {k.split(":", 1)[1]: v for k, v in sorted(totals.items()) if k.startswith("drop:") and v}
        s.train_steps = train_steps
        s.policy_version = version
        s.wall_seconds = self._wall_base + now - self._started
        s.workers = dict(workers)
        s.episodes = max(s.episodes, episodes)
        self._rate.append((now, {name: getattr(s, name) for name in RATES}))
        (t0, first), (t1, last) = self._rate[0], self._rate[-1]
        if t1 > t0:
            for name, rate in RATES.items():
                setattr(s, rate, (last[name] - first[name]) / (t1 - t0))
        window = [r for _, r in sorted(self._episodes.values())][-self.stop.return_window :]
        if s.stop_reason is None:  # after a stop, keep the return the decision was made on
            s.mean_return = float(sum(window) / len(window)) if window else None
        if s.stop_reason is None:
            reason = self._stop_reason(window)
            if reason is not None:
                self.request_stop(reason)
        self._publish()
        return s

    def _read_learner(self, p: dict[str, Any]) -> None:
        """Trainer 0's learner statistics and policy lag (kept until it trains again)."""
        stats = p.get("stats")
        if isinstance(stats, dict) and stats:
            learner = {}
            for k, v in stats.items():
                try:
                    learner[str(k)] = float(v)
                except (TypeError, ValueError):
                    continue
            self.summary.learner = learner
        lag, steps = p.get("staleness"), p.get("train_steps")
        if isinstance(lag, int | float) and isinstance(steps, int) and steps > 0:
            self.summary.policy_lag = float(lag)

    def request_stop(self, reason: str) -> None:
        """Decide the stop (the first reason wins) and set the stop flag every worker watches.

        If the name records are unreachable the flag is written by a later tick (or `ensure_stopped`).
        """
        if self.summary.stop_reason is None:
            self.summary.stop_reason = reason
        self._write_stop()

    def ensure_stopped(self, timeout: float) -> bool:
        """Retry writing the stop flag until it is written or `timeout` s passed; True once written."""
        deadline = time.monotonic() + timeout
        delay = STOP_RETRY_SECONDS
        while not self._write_stop():
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        return True

    def _write_stop(self) -> bool:
        reason = self.summary.stop_reason
        if reason is None:
            return False
        try:
            self.nr.add(keys.stop_flag(self.root), reason, replace=True, delete_on_exit=False)
        except Exception as err:  # noqa: BLE001 - retried until written
            log.warning("monitor: could not write the stop flag (%s): %s; retrying", reason, err)
            self.stop_written = False
            return False
        self.stop_written = True
        return True

    def _adopt_stop_flag(self) -> None:
        """A flag set by someone else (e.g. a worker failing the run on non-finite data) ends the run too."""
        if self.summary.stop_reason is not None:
            return
        try:
            flag = self.nr.get(keys.stop_flag(self.root))
        except NameEntryNotFound:
            return
        except Exception as err:  # noqa: BLE001 - read again next tick
            log.debug("monitor: stop flag unreadable: %s", err)
            return
        self.summary.stop_reason = flag
        self.stop_written = True

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

    def _add_episodes(self, index: int, pid: int, recent: list[Any]) -> None:
        """recent_returns entries are [episode number, end time, return] (see the actor's progress)."""
        for entry in recent:
            try:
                number, end, ret = int(entry[0]), float(entry[1]), float(entry[2])
            except (TypeError, ValueError, IndexError):
                continue
            self._episodes[(index, pid, number)] = (end, ret)

    def _trim_episodes(self) -> None:
        keep = max(200, 2 * self.stop.return_window)
        if len(self._episodes) > keep:
            for k in sorted(self._episodes, key=self._episodes.__getitem__)[: len(self._episodes) - keep]:
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
