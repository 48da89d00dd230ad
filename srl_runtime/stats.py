"""The one table of what an experiment reports: for each statistic its TensorBoard tag, its
metrics.csv column, its Prometheus metric, and where its value comes from.

Two views read the table:
- experiment-wide: the monitor's `Summary` (`summary` path) goes to metrics.csv and TensorBoard,
  written by the process that runs the monitor (`srl run`; trainer 0 in a cluster);
- per worker: each worker's progress dict (`progress` path) goes to its own /metrics.

TensorBoard tags use CleanRL's namespaces: losses/ (learner statistics), charts/ (returns, learning
rate, policy lag, versions), throughput/ (rates), health/ (dropped or non-finite data). Prometheus
names follow its conventions: monotonically growing figures are counters named *_total (rates come
from PromQL's rate(), so the per-second figures exist in TensorBoard and the CSV only), durations are
histograms in seconds, names are snake_case with base units.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["gauge", "counter", "histogram"]
Reader = str | Callable[[Mapping[str, Any]], Any] | None


@dataclass(frozen=True)
class Stat:
    """One statistic and every place it is reported."""

    name: str  # its id: the metrics.csv column, and the key `scalars` returns it under
    help: str  # one line: the Prometheus HELP text and the Grafana panel title
    tb: str | None = None  # TensorBoard tag (None: not in TensorBoard)
    csv: bool = False  # a metrics.csv column
    metric: str | None = None  # Prometheus metric name (None: not on /metrics)
    kind: Kind = "gauge"  # Prometheus type
    progress: Reader = None  # where a worker's progress dict holds it ("a.b": nested key), for /metrics
    summary: str | None = None  # where the monitor's Summary holds it ("learner.lr": a dict key); default: name


def _mean_return(progress: Mapping[str, Any]) -> float | None:
    recent = progress.get("recent_returns") or []  # [episode number, end time, return]
    return sum(r[-1] for r in recent) / len(recent) if recent else None


STATS: tuple[Stat, ...] = (
    # ---- experiment progress
    Stat("wall_seconds", "Seconds since the run started.", csv=True),
    Stat("env_frames", "Environment frames stepped (actors).", csv=True,
         metric="srl_env_frames_total", kind="counter", progress="env_frames"),
    Stat("frames_per_second", "Environment frames per second.", tb="throughput/env_frames_per_second", csv=True),
    Stat("train_steps", "Training steps done (trainer).", tb="charts/train_steps", csv=True,
         metric="srl_train_steps_total", kind="counter", progress="train_steps"),
    Stat("policy_version", "Policy version this worker uses or produced.", tb="charts/policy_version", csv=True,
         metric="srl_policy_version", progress="policy_version"),
    Stat("mean_return", "Mean raw return of recent episodes.", tb="charts/episodic_return", csv=True,
         metric="srl_episode_return", progress=_mean_return),
    Stat("episodes", "Episodes finished (actors).", tb="charts/episodes", csv=True,
         metric="srl_episodes_total", kind="counter", progress="episodes"),
    # ---- learner statistics of the last train step (trainer 0's in TensorBoard and the CSV)
    Stat("policy_loss", "Policy loss of the last train step.", tb="losses/policy_loss", csv=True,
         metric="srl_policy_loss", progress="stats.policy_loss", summary="learner.policy_loss"),
    Stat("value_loss", "Value loss of the last train step.", tb="losses/value_loss", csv=True,
         metric="srl_value_loss", progress="stats.value_loss", summary="learner.value_loss"),
    Stat("entropy", "Mean policy entropy of the last train step.", tb="losses/entropy", csv=True,
         metric="srl_policy_entropy", progress="stats.entropy", summary="learner.entropy"),
    Stat("approx_kl", "Approximate KL divergence between the acting and the trained policy.", tb="losses/approx_kl",
         csv=True, metric="srl_approx_kl", progress="stats.approx_kl", summary="learner.approx_kl"),
    Stat("clipfrac", "Fraction of samples whose probability ratio was clipped.", tb="losses/clipfrac", csv=True,
         metric="srl_clip_fraction", progress="stats.clip_frac", summary="learner.clip_frac"),
    Stat("explained_variance", "Explained variance of the value targets by the old values.",
         tb="losses/explained_variance", csv=True, metric="srl_explained_variance",
         progress="stats.explained_variance", summary="learner.explained_variance"),
    Stat("grad_norm", "Gradient norm before clipping.", tb="losses/grad_norm", csv=True,
         metric="srl_grad_norm", progress="stats.grad_norm", summary="learner.grad_norm"),
    Stat("learning_rate", "Learning rate of the last train step.", tb="charts/learning_rate", csv=True,
         metric="srl_learning_rate", progress="stats.lr", summary="learner.lr"),
    Stat("policy_lag", "Mean policy versions between acting and training on the last batch.", tb="charts/policy_lag",
         csv=True, metric="srl_policy_lag", progress="staleness"),
    # ---- throughput of the trainers
    Stat("trained_rows", "Trajectory rows trained on (trainer).", csv=True,
         metric="srl_trained_rows_total", kind="counter", progress="trained_rows"),
    Stat("trained_rows_per_second", "Trajectory rows trained on per second.", tb="throughput/trained_rows_per_second",
         csv=True),
    Stat("dropped_stale_rows", "Trajectory rows dropped for staleness (trainer).", csv=True,
         metric="srl_dropped_stale_rows_total", kind="counter", progress="dropped_stale_rows"),
    Stat("dropped_stale_rows_per_second", "Trajectory rows dropped for staleness per second.",
         tb="throughput/dropped_stale_rows_per_second", csv=True),
    Stat("dropped_messages_per_second", "Stream messages dropped (malformed or off-schema) per second.",
         tb="throughput/dropped_messages_per_second", csv=True),
    # ---- health
    Stat("dropped_messages", "Stream messages dropped (malformed, or contents not matching the schema).",
         tb="health/dropped_messages", csv=True, metric="srl_dropped_messages_total", kind="counter", progress="dropped"),
    Stat("non_finite_env_values", "Env steps with NaN/inf observations or rewards (actor).",
         tb="health/non_finite_env_values", csv=True, metric="srl_non_finite_env_values_total", kind="counter",
         progress="non_finite_env_values"),
    Stat("non_finite_samples", "Samples dropped for NaN/inf (trainer).", tb="health/non_finite_samples", csv=True,
         metric="srl_non_finite_samples_total", kind="counter", progress="non_finite_samples"),
    Stat("skipped_updates", "Optimizer steps skipped for a non-finite loss or gradient (trainer).",
         tb="health/skipped_updates", csv=True, metric="srl_skipped_updates_total", kind="counter",
         progress="skipped_updates"),
    Stat("rejected_checkpoints", "Parameter-DB files refused as unreadable or unsafe.",
         tb="health/rejected_checkpoints", csv=True, metric="srl_rejected_checkpoints_total", kind="counter",
         progress="rejected_checkpoints"),
    # ---- per worker only
    Stat("samples", "Samples processed (env steps, inferences or trained rows).",
         metric="srl_samples_total", kind="counter", progress="samples"),
    Stat("inference_batch_size", "Mean observations per forward pass (policy worker).",
         metric="srl_inference_batch_size", progress="mean_batch"),
    Stat("inference_latency", "Seconds per forward pass of a batch (policy worker).",
         metric="srl_inference_latency_seconds", kind="histogram", progress="inference_latency_seconds"),
    Stat("train_step_duration", "Seconds per train step (trainer).",
         metric="srl_train_step_duration_seconds", kind="histogram", progress="train_step_seconds"),
    Stat("buffer_columns", "Trajectory columns waiting in the trainer buffer.",
         metric="srl_buffer_columns", progress="buffer_columns"),
)  # fmt: skip

BY_NAME: dict[str, Stat] = {s.name: s for s in STATS}
CSV_COLUMNS: tuple[str, ...] = tuple(s.name for s in STATS if s.csv)
# The learner keys the table names; others a learner returns go to TensorBoard as losses/<key>.
LEARNER_KEYS: frozenset[str] = frozenset(
    s.summary.split(".", 1)[1] for s in STATS if s.summary and s.summary.startswith("learner.")
)


def lookup(source: Mapping[str, Any] | object, path: str) -> Any:
    """The value at a dotted path ("stats.lr") of a dict or an object's attributes; None if absent."""
    value: Any = source
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        else:
            value = getattr(value, part, None)
        if value is None:
            return None
    return value


def from_progress(stat: Stat, progress: Mapping[str, Any]) -> Any:
    """The stat's value in a worker's progress dict (None: this worker has none)."""
    if stat.progress is None:
        return None
    return stat.progress(progress) if callable(stat.progress) else lookup(progress, stat.progress)


def scalars(summary: object) -> dict[str, float | None]:
    """Every TensorBoard/CSV stat's value in the monitor's summary, by name (None: no value yet)."""
    out: dict[str, float | None] = {}
    for s in STATS:
        if s.tb is None and not s.csv:
            continue
        value = lookup(summary, s.summary or s.name)
        out[s.name] = None if value is None else float(value)
    return out


# Bucket bounds (seconds) of duration histograms: sub-millisecond forward passes to slow train steps.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class DurationHistogram:
    """Durations in seconds counted into fixed buckets, cheap enough for every poll.

    A worker publishes `snapshot()` in its progress; the exporter turns it into a Prometheus
    histogram (counts per `le` bound, cumulative, plus sum and count).
    """

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        """{"le": bounds, "counts": per-bucket counts (not cumulative), "sum": s, "count": n}."""
        return {"le": list(self.bounds), "counts": list(self.counts), "sum": self.sum, "count": self.count}
