"""Prometheus metrics for every worker, served over HTTP by prometheus-client.

Workers already publish a progress dict each second; the exporter keeps the newest one and turns it
into metric families at scrape time, following the one table in `srl_runtime.stats`, so a metric is
defined once there and never threaded through the hot loops. A family appears once the worker's
progress holds a value for it (an actor serves no learner losses).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from srl_runtime.stats import STATS, Stat, from_progress

log = logging.getLogger(__name__)

LABELS = ("experiment", "role", "index")


class _ProgressCollector(Collector):
    """Metric families from the newest progress dict of each worker (one in a worker, all in `srl run`)."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self.progress: dict[tuple[str, str], dict[str, Any]] = {}  # (role, index) -> progress

    def collect(self) -> Iterator[Metric]:
        workers = sorted(self.progress.items())  # each dict is replaced whole by update(): consistent snapshots
        for stat in STATS:
            if stat.metric is None:
                continue
            family = _family(stat)
            for (role, index), progress in workers:
                value = from_progress(stat, progress)
                if value is not None:
                    _add(family, stat, [self.experiment, role, index], value)
            if family.samples:
                yield family


def _family(stat: Stat) -> Metric:
    assert stat.metric is not None
    kinds = {"counter": CounterMetricFamily, "histogram": HistogramMetricFamily, "gauge": GaugeMetricFamily}
    return kinds[stat.kind](stat.metric, stat.help, labels=LABELS)


def _add(family: Any, stat: Stat, labels: list[str], value: Any) -> None:
    if stat.kind != "histogram":
        family.add_metric(labels, float(value))
        return
    try:
        bounds, counts = value["le"], value["counts"]
        total, count = float(value["sum"]), int(value["count"])
    except (TypeError, KeyError, ValueError):
        return
    cumulative, buckets = 0, []
    for bound, n in zip(bounds, counts, strict=False):
        cumulative += int(n)
        buckets.append((_bound(bound), cumulative))
    buckets.append(("+Inf", count))
    family.add_metric(labels, buckets, total)


def _bound(b: float) -> str:
    return repr(float(b))


class MetricsExporter:
    """Metrics labelled by experiment, role and index, read from workers' progress dicts.

    A worker process exports its own (`update`); `srl run` exports every worker's from the progress
    the monitor reads (`update_worker`), so a local run has one scrape target.
    """

    def __init__(
        self, experiment: str, role: str | None, index: int | None, port: int | None, host: str = "0.0.0.0"
    ) -> None:
        self.registry = CollectorRegistry()
        self.role, self.index = role, index
        self._collector = _ProgressCollector(experiment)
        self.registry.register(self._collector)
        self.port = None
        self._server: Any = None
        if port is not None:
            # port 0 picks a free port (tests); a pod uses the fixed port its spec declares
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
            self.port = self._server.server_port
            log.info("metrics on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def update(self, progress: dict[str, Any]) -> None:
        """Serve this worker's progress dict from now on."""
        assert self.role is not None and self.index is not None, "an exporter of one worker"
        self.update_worker(self.role, self.index, progress)

    def update_worker(self, role: str, index: int, progress: dict[str, Any]) -> None:
        """Serve this progress dict as worker `role` `index`'s from now on."""
        # Copy on write: a scrape in another thread iterates over the dict it read.
        self._collector.progress = {**self._collector.progress, (role, str(index)): dict(progress)}


def _panel_targets(stat: Stat) -> tuple[str, list[dict[str, str]]]:
    """A panel's title and PromQL targets: gauges as they are, counters as rates, histograms as quantiles."""
    sel = '{experiment=~"$experiment"}'
    legend = "{{role}} {{index}}"
    if stat.kind == "counter":
        expr = f"rate({stat.metric}{sel}[$__rate_interval])"
        return f"{stat.help.rstrip('.')} per second", [{"expr": expr, "legendFormat": legend, "refId": "A"}]
    if stat.kind == "histogram":
        targets = []
        for ref, q in (("A", "0.5"), ("B", "0.99")):
            expr = f"histogram_quantile({q}, sum by (le, role, index) (rate({stat.metric}_bucket{sel}[$__rate_interval])))"
            targets.append({"expr": expr, "legendFormat": f"p{q[2:]} {legend}", "refId": ref})
        return stat.help.rstrip("."), targets
    return stat.help.rstrip("."), [{"expr": f"{stat.metric}{sel}", "legendFormat": legend, "refId": "A"}]


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard with one panel per metric, generated from the same table as the metrics."""
    panels = []
    for i, stat in enumerate(s for s in STATS if s.metric is not None):
        title, targets = _panel_targets(stat)
        panel: dict[str, Any] = {
            "id": i + 1,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "targets": targets,
        }
        if stat.kind == "histogram":
            panel["fieldConfig"] = {"defaults": {"unit": "s"}, "overrides": []}
        panels.append(panel)
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
