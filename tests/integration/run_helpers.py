"""Launching `srl run` as a real subprocess and watching its run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def experiment_file(tmp_path: Path, source: str | Path, **spec_overrides: Any) -> Path:
    """A copy of an experiment with some top-level spec blocks replaced (e.g. a tiny stop)."""
    doc = yaml.safe_load(Path(source).read_text()) if not isinstance(source, str) or source.endswith(".yaml") else None
    if doc is None:
        raise ValueError(source)
    for key, value in spec_overrides.items():
        if isinstance(value, dict) and isinstance(doc["spec"].get(key), dict):
            doc["spec"][key].update(value)
        else:
            doc["spec"][key] = value
    path = tmp_path / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class SrlRun:
    """`srl run FILE` in a subprocess, its output in a log file, its summary in JSON."""

    def __init__(
        self, tmp_path: Path, experiment: Path, *extra: str, test_envs: bool = False, sigint_ignored: bool = False
    ) -> None:
        """test_envs: the run can import tests/bad_envs.py (entryPoint: bad_envs:<Class>);
        sigint_ignored: started with SIGINT ignored, as `cmd &` in a script starts it."""
        self.run_dir = tmp_path / "run"
        self.summary_path = tmp_path / "summary.json"
        self.log_path = tmp_path / "srl.log"
        cmd = [sys.executable, "-m", "srl_runtime.cli", "run", str(experiment), "--run-dir", str(self.run_dir),
               "--summary-json", str(self.summary_path), *extra]
        if sigint_ignored:
            cmd = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *cmd]
        env = dict(os.environ)
        if test_envs:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "tests"), env.get("PYTHONPATH")) if p)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True, env=env
        )

    def state(self) -> dict[str, Any]:
        """The monitor's latest state.json ({} before the first write)."""
        try:
            return json.loads((self.run_dir / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def wait_for(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        """Poll state.json until predicate(state) holds; fail with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if state and predicate(state):
                return state
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last state {self.state()}\n--- log ---\n{self.log()}")

    def wait(self, timeout: float) -> dict[str, Any]:
        """Wait for the run to end; returns the summary JSON."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"srl run did not finish within {timeout}s\n--- log ---\n{self.log()}") from None
        finally:
            self._log.close()
        assert self.summary_path.exists(), f"no summary (exit {self.proc.returncode})\n--- log ---\n{self.log()}"
        return json.loads(self.summary_path.read_text())

    def log(self, tail: int | None = 4000) -> str:
        """The run's output (its last `tail` characters; None: all)."""
        text = self.log_path.read_text()
        return text if tail is None else text[-tail:]

    def stop(self) -> None:
        """Kill the whole run (its process group) — cleanup after a failure."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
