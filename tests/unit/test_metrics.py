"""Workers' Prometheus metrics, their naming conventions, and the Grafana dashboard generated from
the same table."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from srl_runtime.metrics import MetricsExporter, grafana_dashboard
from srl_runtime.stats import STATS, DurationHistogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prom_lint import problems, promtool_problems  # noqa: E402

pytestmark = pytest.mark.unit
DASHBOARD = Path(__file__).parents[2] / "docs/grafana/srl-dashboard.json"


def _every_stat_progress() -> dict[str, object]:
    """A progress dict holding a value for every metric of the table."""
    hist = DurationHistogram()
    for seconds in (0.0004, 0.003, 0.003, 0.2, 99.0):
        hist.observe(seconds)
    return {
        "env_frames": 1234, "train_steps": 5, "policy_version": 7, "recent_returns": [[0, 1.0, 10.0], [1, 2.0, 20.0]],
        "episodes": 2, "stats": {"policy_loss": -0.1, "value_loss": 0.5, "entropy": 0.6, "approx_kl": 0.01,
        "clip_frac": 0.2, "explained_variance": float("nan"), "grad_norm": 1.5, "lr": 3e-4}, "staleness": 1.25,
        "trained_rows": 512, "dropped_stale_rows": 32, "dropped": 2, "non_finite_env_values": 1,
        "non_finite_samples": 1, "skipped_updates": 1, "rejected_checkpoints": 1, "samples": 99, "mean_batch": 8.0,
        "inference_latency_seconds": hist.snapshot(), "train_step_seconds": hist.snapshot(), "buffer_columns": 4,
    }  # fmt: skip


def test_progress_becomes_metrics_served_over_http() -> None:
    exporter = MetricsExporter("cartpole", "actor", 3, port=0, host="127.0.0.1")
    exporter.update({"env_frames": 1234, "policy_version": 7, "recent_returns": [[0, 1.0, 10.0], [1, 2.0, 20.0]], "dropped": 2})
    body = urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5).read().decode()
    for line in (
        "# TYPE srl_env_frames_total counter",
        'srl_env_frames_total{experiment="cartpole",index="3",role="actor"} 1234.0',
        "# TYPE srl_policy_version gauge",
        'srl_policy_version{experiment="cartpole",index="3",role="actor"} 7.0',
        'srl_episode_return{experiment="cartpole",index="3",role="actor"} 15.0',
        'srl_dropped_messages_total{experiment="cartpole",index="3",role="actor"} 2.0',
    ):
        assert line in body, f"missing {line!r} in:\n{body}"
    assert "srl_policy_loss" not in body, "an actor serves no learner statistics"


def test_learner_statistics_and_durations_become_metrics() -> None:
    exporter = MetricsExporter("cartpole", "trainer", 0, port=None)
    exporter.update(_every_stat_progress())
    body = generate_latest(exporter.registry).decode()
    labels = '{experiment="cartpole",index="0",role="trainer"}'
    for line in (
        f"srl_policy_loss{labels} -0.1", f"srl_value_loss{labels} 0.5", f"srl_policy_entropy{labels} 0.6",
        f"srl_approx_kl{labels} 0.01", f"srl_clip_fraction{labels} 0.2", f"srl_explained_variance{labels} NaN",
        f"srl_grad_norm{labels} 1.5", f"srl_learning_rate{labels} 0.0003", f"srl_policy_lag{labels} 1.25",
        f"srl_trained_rows_total{labels} 512.0", f"srl_dropped_stale_rows_total{labels} 32.0",
        "# TYPE srl_train_step_duration_seconds histogram",
        'srl_train_step_duration_seconds_bucket{experiment="cartpole",index="0",le="0.0005",role="trainer"} 1.0',
        'srl_train_step_duration_seconds_bucket{experiment="cartpole",index="0",le="0.005",role="trainer"} 3.0',
        'srl_train_step_duration_seconds_bucket{experiment="cartpole",index="0",le="30.0",role="trainer"} 4.0',
        'srl_train_step_duration_seconds_bucket{experiment="cartpole",index="0",le="+Inf",role="trainer"} 5.0',
        f"srl_train_step_duration_seconds_count{labels} 5.0",
    ):  # fmt: skip
        assert line in body, f"missing {line!r} in:\n{body}"


def test_bad_data_counts_become_counters() -> None:
    exporter = MetricsExporter("cartpole", "trainer", 0, port=None)
    exporter.update({"dropped": 20_000, "non_finite_samples": 2, "skipped_updates": 1, "rejected_checkpoints": 3})
    actor = MetricsExporter("cartpole", "actor", 0, port=None)
    actor.update({"non_finite_env_values": 1})
    body = generate_latest(exporter.registry).decode() + generate_latest(actor.registry).decode()
    for line in (
        'srl_dropped_messages_total{experiment="cartpole",index="0",role="trainer"} 20000.0',
        'srl_non_finite_samples_total{experiment="cartpole",index="0",role="trainer"} 2.0',
        'srl_skipped_updates_total{experiment="cartpole",index="0",role="trainer"} 1.0',
        'srl_rejected_checkpoints_total{experiment="cartpole",index="0",role="trainer"} 3.0',
        'srl_non_finite_env_values_total{experiment="cartpole",index="0",role="actor"} 1.0',
    ):
        assert line in body, f"missing {line!r} in:\n{body}"


def test_every_metric_follows_the_prometheus_conventions() -> None:
    exporter = MetricsExporter("cartpole", "trainer", 0, port=None)
    exporter.update(_every_stat_progress())
    body = generate_latest(exporter.registry).decode()
    served = {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE")}
    assert served == {s.metric for s in STATS if s.metric}, "every metric of the table is served"
    assert problems(body) == []
    assert promtool_problems(body) in (None, [])


def test_the_convention_check_finds_violations() -> None:
    bad = "\n".join([
        "# HELP app_requests Requests.", "# TYPE app_requests counter", "app_requests 1",
        "# HELP app_queue_total Depth.", "# TYPE app_queue_total gauge", "app_queue_total 1",
        "# HELP app_latency_ms Latency.", "# TYPE app_latency_ms gauge", "app_latency_ms 3",
        "# HELP app_wait_milliseconds Wait.", "# TYPE app_wait_milliseconds gauge", "app_wait_milliseconds 3",
        "# TYPE app_nohelp gauge", "app_nohelp 1",
        "# HELP appCamel Camel.", "# TYPE appCamel gauge", "appCamel 1",
        "# HELP app_labels Labels.", "# TYPE app_labels gauge", 'app_labels{workerIndex="1"} 1',
        "# HELP app_step_seconds D.", "# TYPE app_step_seconds histogram",
        'app_step_seconds_bucket{le="1.0"} 3', 'app_step_seconds_bucket{le="2.0"} 2', 'app_step_seconds_bucket{le="+Inf"} 4',
        "app_step_seconds_count 5", "app_step_seconds_sum 1",
    ]) + "\n"  # fmt: skip
    found = "\n".join(problems(bad))
    for expected in (
        'app_requests: counter metrics should have "_total" suffix',
        'app_queue_total: non-counter metrics should not have "_total" suffix',
        "app_latency_ms: metric names should not contain abbreviated units",
        'app_wait_milliseconds: use base unit "seconds" instead of "milliseconds"',
        "app_nohelp: no help text",
        "appCamel: metric names should be written in 'snake_case'",
        "app_labels: label names should be written in 'snake_case' not 'workerIndex'",
        "app_step_seconds: {}: bucket counts not cumulative",
        "app_step_seconds: {}: _count 5 != +Inf bucket 4",
    ):
        assert expected in found, f"{expected!r} not in:\n{found}"


def test_committed_dashboard_matches_the_metrics() -> None:
    committed = json.loads(DASHBOARD.read_text())
    assert committed == grafana_dashboard(), (
        "docs/grafana/srl-dashboard.json is stale: python -m srl_runtime.metrics > docs/grafana/srl-dashboard.json"
    )
    exprs = [t["expr"] for p in committed["panels"] for t in p["targets"]]
    for stat in STATS:
        if stat.metric is None:
            continue
        name = f"{stat.metric}_bucket" if stat.kind == "histogram" else stat.metric
        (expr, *_) = [e for e in exprs if f"{name}{{" in e]
        assert ("rate(" in expr) == (stat.kind != "gauge"), f"{stat.metric}: counters and histograms are shown as rates"
