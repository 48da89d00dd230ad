"""Workers' Prometheus metrics and the Grafana dashboard generated from the same table."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from srl_runtime.metrics import MetricsExporter, grafana_dashboard

pytestmark = pytest.mark.unit
DASHBOARD = Path(__file__).parents[2] / "docs/grafana/srl-dashboard.json"


def test_progress_becomes_metrics_served_over_http() -> None:
    exporter = MetricsExporter("cartpole", "actor", 3, port=0, host="127.0.0.1")
    exporter.update({"env_frames": 1234, "policy_version": 7, "recent_returns": [[0, 1.0, 10.0], [1, 2.0, 20.0]], "dropped": 2})
    body = urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5).read().decode()
    for line in (
        'srl_env_frames{experiment="cartpole",index="3",role="actor"} 1234.0',
        'srl_policy_version{experiment="cartpole",index="3",role="actor"} 7.0',
        'srl_episode_return{experiment="cartpole",index="3",role="actor"} 15.0',
        'srl_dropped_messages{experiment="cartpole",index="3",role="actor"} 2.0',
    ):
        assert line in body, f"missing {line!r} in:\n{body}"


def test_committed_dashboard_matches_the_metrics() -> None:
    committed = json.loads(DASHBOARD.read_text())
    assert committed == grafana_dashboard(), (
        "docs/grafana/srl-dashboard.json is stale: python -m srl_runtime.metrics > docs/grafana/srl-dashboard.json"
    )


def test_bad_data_counts_become_metrics() -> None:
    exporter = MetricsExporter("cartpole", "trainer", 0, port=None)
    exporter.update({"dropped": 20_000, "non_finite_samples": 2, "skipped_updates": 1, "rejected_checkpoints": 3})
    actor = MetricsExporter("cartpole", "actor", 0, port=None)
    actor.update({"non_finite_env_values": 1})
    from prometheus_client import generate_latest

    body = generate_latest(exporter.registry).decode() + generate_latest(actor.registry).decode()
    for line in (
        'srl_dropped_messages{experiment="cartpole",index="0",role="trainer"} 20000.0',
        'srl_non_finite_samples{experiment="cartpole",index="0",role="trainer"} 2.0',
        'srl_skipped_updates{experiment="cartpole",index="0",role="trainer"} 1.0',
        'srl_rejected_checkpoints{experiment="cartpole",index="0",role="trainer"} 3.0',
        'srl_non_finite_env_values{experiment="cartpole",index="0",role="actor"} 1.0',
    ):
        assert line in body, f"missing {line!r} in:\n{body}"
