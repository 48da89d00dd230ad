"""Learner statistics where a user looks, read back: TensorBoard event files, metrics.csv and /metrics.

- `srl run --metrics-port`: the local launcher writes TensorBoard and the CSV in the run dir and
  serves every worker's metrics on one port.
- Cluster mode: trainer, policy worker and actor as separate `srl worker` processes (what pods run)
  with Redis name records and a shared parameter-DB directory; trainer 0 writes TensorBoard and the
  CSV under its run dir (in a pod: the parameter-DB volume) and each worker serves its /metrics.

Every scraped text passes the Prometheus naming conventions (tests/prom_lint.py; promtool too where
installed).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prom_lint import problems, promtool_problems  # noqa: E402
from run_helpers import REPO, SrlRun, experiment_file  # noqa: E402
from servers import RedisServer, free_port  # noqa: E402
from tb_events import scalars  # noqa: E402

pytestmark = pytest.mark.integration

TRAIN_STEPS = 12
LEARNER_TAGS = ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac",
                "losses/explained_variance", "losses/grad_norm", "charts/learning_rate", "charts/policy_lag",
                "charts/episodic_return", "throughput/trained_rows_per_second",
                "throughput/dropped_stale_rows_per_second", "throughput/dropped_messages_per_second")  # fmt: skip
LEARNER_METRICS = ("srl_policy_loss", "srl_value_loss", "srl_policy_entropy", "srl_approx_kl", "srl_clip_fraction",
                   "srl_explained_variance", "srl_grad_norm", "srl_learning_rate", "srl_policy_lag",
                   "srl_trained_rows_total", "srl_dropped_stale_rows_total", "srl_train_steps_total")  # fmt: skip


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def scrape_with(port: int, name: str, role: str) -> str | None:
    """The worker's metrics text once it holds `name` for `role`, else None."""
    text = scrape(port)
    return text if series(text, name, role) else None


def series(text: str, name: str, role: str) -> list[float]:
    """Values of metric `name` for workers of `role` in a scraped text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("role") == role:
                out.append(s.value)
    return out


def eventually(fn: Callable[[], Any], timeout: float, what: str, tail: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except OSError as err:  # not listening yet
            last = err
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out ({timeout}s) waiting for {what}: {last}\n{tail()}")


def assert_conventions(text: str) -> None:
    assert problems(text) == [], "\n".join(problems(text))
    assert promtool_problems(text) in (None, []), promtool_problems(text)


def assert_learner_stats_written(run_dir: Path) -> None:
    """TensorBoard tags and CSV columns of the learner statistics, with values from training."""
    tags = scalars(run_dir / "tensorboard")
    missing = [t for t in LEARNER_TAGS if t not in tags]
    assert not missing, f"TensorBoard tags missing: {missing}; present: {sorted(tags)}"
    assert tags["charts/learning_rate"][-1][1] > 0 and tags["losses/entropy"][-1][1] > 0
    assert max(v for _, v in tags["throughput/trained_rows_per_second"]) > 0
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    trained = [r for r in rows if r["policy_loss"]]
    assert trained, f"no CSV row with learner statistics: {rows[-1]}"
    assert float(trained[-1]["learning_rate"]) > 0 and float(trained[-1]["grad_norm"]) >= 0
    assert int(rows[-1]["trained_rows"]) > 0


def assert_trainer_metrics(text: str) -> None:
    for name in LEARNER_METRICS:
        assert series(text, name, "trainer"), f"{name} missing from the trainer's metrics:\n{text}"
    assert series(text, "srl_learning_rate", "trainer")[0] > 0
    assert series(text, "srl_trained_rows_total", "trainer")[0] > 0
    assert series(text, "srl_train_step_duration_seconds_count", "trainer")[0] > 0


def test_local_run_reports_learner_statistics(tmp_path: Path) -> None:
    path = experiment_file(tmp_path, REPO / "examples/cartpole.yaml",
                           stop={"trainSteps": TRAIN_STEPS, "wallSeconds": 240, "targetMeanReturn": None})  # fmt: skip
    port = free_port()
    run = SrlRun(tmp_path, path, "--metrics-port", str(port))
    try:
        text = eventually(
            lambda: scrape_with(port, "srl_policy_loss", "trainer"), 240,
            "learner statistics on /metrics", run.log,
        )  # fmt: skip
        assert_trainer_metrics(text)
        assert series(text, "srl_env_frames_total", "actor")[0] > 0, "the launcher serves every worker's metrics"
        assert_conventions(text)
        summary = run.wait(timeout=300)
    finally:
        run.stop()
    assert summary["stop_reason"] == "train_steps", f"{summary}\n{run.log()}"
    assert summary["trained_rows"] > 0
    assert_learner_stats_written(run.run_dir)


# --------------------------------------------------------------------------- cluster mode

WORKERS = (("trainer", 0), ("policy", 0), ("actor", 0))


def test_worker_processes_report_learner_statistics(tmp_path: Path, redis_server: RedisServer) -> None:
    doc = yaml.safe_load((REPO / "examples/cartpole.yaml").read_text())
    doc["metadata"]["name"] = "cartpole-stats"
    doc["spec"]["policyWorkers"] = {"replicas": 1, "batchSize": 16, "maxWaitMs": 1.0}
    doc["spec"]["stop"] = {"trainSteps": TRAIN_STEPS, "wallSeconds": 240}
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_dump(doc))
    ports = {w: free_port() for w in WORKERS}
    procs: dict[tuple[str, int], subprocess.Popen] = {}
    logs = tmp_path / "logs"
    logs.mkdir()

    def run_dir(role: str, index: int) -> Path:
        return tmp_path / "hosts" / f"{role}-{index}"

    def tails() -> str:
        return "\n".join(f"--- {r}/{i} ---\n" + (logs / f"{r}-{i}.log").read_text()[-3000:] for r, i in WORKERS)

    env = {**os.environ, "SRL_NAME_RECORDS_REDIS": redis_server.address, "SRL_PARAM_DB_PATH": str(tmp_path / "shared-params"),
           "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    try:
        for role, index in WORKERS:
            argv = [sys.executable, "-m", "srl_runtime.cli", "worker", "--role", role, "--index", str(index),
                    "--experiment", str(experiment), "--host", "127.0.0.1", "--metrics-port", str(ports[(role, index)])]  # fmt: skip
            with open(logs / f"{role}-{index}.log", "w") as log:
                procs[(role, index)] = subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, env={**env, "SRL_RUN_DIR": str(run_dir(role, index))}
                )
        text = eventually(
            lambda: scrape_with(ports[("trainer", 0)], "srl_policy_loss", "trainer"), 240,
            "learner statistics on the trainer's /metrics", tails,
        )  # fmt: skip
        assert_trainer_metrics(text)
        assert_conventions(text)
        for worker, metric in ((("actor", 0), "srl_env_frames_total"), (("policy", 0), "srl_inference_latency_seconds_count")):
            other = eventually(
                lambda w=worker, m=metric: scrape_with(ports[w], m, w[0]), 60,
                f"{metric} on {worker}'s /metrics", tails,
            )  # fmt: skip
            assert_conventions(other)
        codes = {}
        for (role, index), proc in procs.items():
            codes[f"{role}/{index}"] = proc.wait(240)
        assert codes == {"trainer/0": 0, "policy/0": 0, "actor/0": 0}, f"{codes}\n{tails()}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    state = json.loads((run_dir("trainer", 0) / "state.json").read_text())
    assert state["stop_reason"] == "train_steps", state
    # Trainer 0 runs the monitor: TensorBoard and the CSV live in its run dir, no other worker writes them.
    assert_learner_stats_written(run_dir("trainer", 0))
    assert not (run_dir("actor", 0) / "tensorboard").exists()
