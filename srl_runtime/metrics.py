"""Prometheus metrics for every worker, served over HTTP by prometheus-client.

Workers already publish a progress dict each second; the exporter turns that dict into gauges, so a
metric is defined once here and never threaded through the hot loops.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, start_http_server

log = logging.getLogger(__name__)

# metric name -> (help, how to read it from a worker's progress dict)
_GAUGES: dict[str, tuple[str, Any]] = {
    "srl_env_frames": ("Environment frames stepped by this actor.", lambda p: p.get("env_frames")),
    "srl_frames_per_second": ("Environment frames per second of this actor.", lambda p: p.get("frames_per_second")),
    "srl_episodes": ("Episodes finished by this actor.", lambda p: p.get("episodes")),
    "srl_episode_return": ("Mean raw return of this actor's recent episodes.", lambda p: _mean_return(p)),
    "srl_inference_batch_size": ("Mean observations per forward pass (policy worker).", lambda p: p.get("mean_batch")),
    "srl_inference_latency_ms": ("Forward-pass latency of the last batch in ms (policy worker).", lambda p: p.get("latency_ms")),
    "srl_queue_depth": ("Trajectory columns waiting in the trainer buffer.", lambda p: p.get("buffer_columns")),
    "srl_sample_staleness": ("Mean policy-version lag of trained samples (trainer).", lambda p: p.get("staleness")),
    "srl_train_steps": ("Training steps done (trainer).", lambda p: p.get("train_steps")),
    "srl_policy_version": ("Policy version this worker uses or produced.", lambda p: p.get("policy_version")),
    "srl_dropped_messages": ("Stream messages dropped (malformed, or contents not matching the schema).", lambda p: p.get("dropped")),
    "srl_non_finite_env_values": ("Env steps with NaN/inf observations or rewards (actor).", lambda p: p.get("non_finite_env_values")),
    "srl_non_finite_samples": ("Samples dropped for NaN/inf (trainer).", lambda p: p.get("non_finite_samples")),
    "srl_skipped_updates": ("Optimizer steps skipped for a non-finite loss or gradient (trainer).", lambda p: p.get("skipped_updates")),
    "srl_rejected_checkpoints": ("Parameter-DB files refused as unreadable or unsafe.", lambda p: p.get("rejected_checkpoints")),
    "srl_dropped_stale_samples": ("Trajectories dropped for staleness (trainer).", lambda p: p.get("dropped_stale")),
    "srl_samples": ("Samples processed (env steps, inferences or trained rows).", lambda p: p.get("samples")),
}


def _mean_return(progress: dict[str, Any]) -> float | None:
    recent = progress.get("recent_returns") or []  # [episode number, end time, return]
    return sum(r[-1] for r in recent) / len(recent) if recent else None


class MetricsExporter:
    """Gauges labelled by experiment, role and index, updated from progress dicts."""

    def __init__(self, experiment: str, role: str, index: int, port: int | None, host: str = "0.0.0.0") -> None:
        self.registry = CollectorRegistry()
        self.labels = {"experiment": experiment, "role": role, "index": str(index)}
        self.gauges = {
            name: Gauge(name, help_text, list(self.labels), registry=self.registry)
            for name, (help_text, _) in _GAUGES.items()
        }
        self.port = None
        if port is not None:
            # port 0 picks a free port (tests); a pod uses the fixed port its spec declares
            server, _ = start_http_server(port, addr=host, registry=self.registry)
            self.port = server.server_port
            log.info("metrics on http://%s:%d/metrics", host, self.port)

    def update(self, progress: dict[str, Any]) -> None:
        """Set every gauge the progress dict has a value for."""
        for name, (_, read) in _GAUGES.items():
            value = read(progress)
            if value is not None:
                self.gauges[name].labels(**self.labels).set(float(value))


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard with one panel per metric, generated from the same table as the gauges."""
    panels = []
    for i, (name, (help_text, _)) in enumerate(_GAUGES.items()):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": help_text.rstrip("."),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "targets": [
                    {
                        "expr": f'{name}{{experiment=~"$experiment"}}',
                        "legendFormat": "{{role}} {{index}}",
                        "refId": "A",
                    }
                ],
            }
        )
    return {
        "title": "SRL experiments",
        "uid": "srl-experiments",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "10s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "experiment",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(srl_policy_version, experiment)",
                    "includeAll": True,
                    "multi": True,
                },
            ]
        },
        "panels": panels,
    }


if __name__ == "__main__":
    import json
    import sys

    json.dump(grafana_dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
