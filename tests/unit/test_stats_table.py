"""Learner statistics reach every place a user looks: the monitor's summary, metrics.csv and
TensorBoard (CleanRL-style tags), all named by the one table in srl_runtime.stats."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import pytest

from srl_runtime.config.experiment import StopSpec
from srl_runtime.launcher.monitor import ExperimentMonitor
from srl_runtime.launcher.reporting import ProgressReporter
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.stats import CSV_COLUMNS, STATS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tb_events import scalars  # noqa: E402

pytestmark = pytest.mark.unit
ROOT = keys.experiment_root("m")
PPO_STATS = {"policy_loss": -0.02, "value_loss": 0.7, "entropy": 0.69, "approx_kl": 0.004, "clip_frac": 0.12,
             "grad_norm": 0.9, "lr": 2.5e-4, "explained_variance": 0.3}  # fmt: skip


def _trainer(nr: MemoryNameRecords, pid: int, steps: int, rows: int, stale_rows: int, dropped: int, **extra: object) -> None:
    body = {"role": "trainer", "index": 0, "pid": pid, "running": True, "train_steps": steps, "trained_rows": rows,
            "dropped_stale_rows": stale_rows, "dropped": dropped, "staleness": 1.5, "stats": {**PPO_STATS, **extra}}  # fmt: skip
    nr.add(keys.worker_progress(ROOT, "trainer", 0), json.dumps(body), replace=True)


def test_monitor_carries_trainer_zero_statistics_and_rates() -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(envFrames=10**9))
    _trainer(nr, 5, 1, 1000, 0, 0)
    mon.tick()
    time.sleep(0.2)
    _trainer(nr, 5, 3, 3000, 400, 10)
    s = mon.tick()
    assert s.learner == PPO_STATS and s.policy_lag == 1.5
    assert (s.trained_rows, s.dropped_stale_rows) == (3000, 400)
    # 2000 rows, 400 stale rows and 10 messages in ~0.2 s
    assert 2000 / 0.6 < s.trained_rows_per_second <= 2000 / 0.2, s.trained_rows_per_second
    assert s.dropped_stale_rows_per_second == pytest.approx(s.trained_rows_per_second / 5)
    assert s.dropped_messages_per_second == pytest.approx(s.trained_rows_per_second / 200)


def test_reporter_writes_learner_statistics_to_csv_and_tensorboard(tmp_path: Path) -> None:
    nr = MemoryNameRecords()
    mon = ExperimentMonitor(nr, ROOT, StopSpec(envFrames=10**9))
    reporter = ProgressReporter(tmp_path, stream=io.StringIO(), quiet=True)
    _trainer(nr, 5, 1, 1000, 0, 0, aux_value_loss=0.25)  # a key beyond the table (PPG)
    reporter.report(mon.tick())
    time.sleep(0.05)
    _trainer(nr, 5, 2, 2000, 0, 0, aux_value_loss=0.25)
    reporter.report(mon.tick())
    reporter.close()

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    last = rows[-1]
    assert float(last["policy_loss"]) == pytest.approx(-0.02) and float(last["clipfrac"]) == pytest.approx(0.12)
    assert float(last["learning_rate"]) == pytest.approx(2.5e-4) and float(last["policy_lag"]) == 1.5
    assert int(last["trained_rows"]) == 2000 and float(last["trained_rows_per_second"]) > 0

    tags = scalars(tmp_path / "tensorboard")
    want = {"losses/policy_loss": -0.02, "losses/value_loss": 0.7, "losses/entropy": 0.69, "losses/approx_kl": 0.004,
            "losses/clipfrac": 0.12, "losses/explained_variance": 0.3, "losses/grad_norm": 0.9,
            "charts/learning_rate": 2.5e-4, "charts/policy_lag": 1.5, "losses/aux_value_loss": 0.25}  # fmt: skip
    for tag, value in want.items():
        assert tag in tags, f"{tag} missing from {sorted(tags)}"
        assert tags[tag][-1][1] == pytest.approx(value, rel=1e-6), tag
    assert tags["throughput/trained_rows_per_second"][-1][1] > 0
    assert "throughput/env_frames_per_second" in tags and "throughput/dropped_stale_rows_per_second" in tags


def test_resumed_run_appends_under_the_existing_header(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("wall_seconds,env_frames\n1,10\n")
    reporter = ProgressReporter(tmp_path, stream=io.StringIO(), quiet=True)
    mon = ExperimentMonitor(MemoryNameRecords(), ROOT, StopSpec(envFrames=10**9))
    reporter.report(mon.tick())
    reporter.close()
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))
    assert rows[0] == ["wall_seconds", "env_frames"] and len(rows) == 3 and len(rows[2]) == 2


def test_table_is_consistent() -> None:
    names = [s.name for s in STATS]
    assert len(names) == len(set(names))
    tags = [s.tb for s in STATS if s.tb]
    assert len(tags) == len(set(tags)) and all(t.split("/")[0] in ("losses", "charts", "throughput", "health") for t in tags)
    metrics = [s.metric for s in STATS if s.metric]
    assert len(metrics) == len(set(metrics))
    for s in STATS:
        assert s.metric is None or s.progress is not None, f"{s.name}: a metric needs a progress source"
        assert (s.kind == "counter") == bool(s.metric and s.metric.endswith("_total")), s.name
        assert (s.kind == "histogram") == bool(s.metric and s.metric.endswith("_seconds")), s.name
