"""`srl run` start-up: the fork server starts first thing and preloads while the CLI works; the CLI and
the launcher's TensorBoard writer import no torch (it is the workers' cost, paid once in the server);
the first samples are reported, and the first line with frames printed, without waiting out an
interval; timeline marks go where $SRL_STARTUP_TRACE says (bench/startup.py reads them)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from srl_runtime import cli, timeline
from srl_runtime.config.load import InvalidExperiment, parse_experiment
from srl_runtime.launcher import forkserver
from srl_runtime.launcher.monitor import Summary
from srl_runtime.launcher.reporting import ProgressReporter
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.workers.base import PollResult, Worker, WorkerContext

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _python(code: str, tmp_path: Path, **env: str) -> str:
    """Run `code` in a fresh interpreter with this checkout on the path; its stdout."""
    path = os.pathsep.join(p for p in (str(REPO), str(REPO / "operator"), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": path, **env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_cli_imports_neither_torch_nor_the_experiment_models(tmp_path: Path) -> None:
    """What runs before the fork server starts stays light (pydantic's models alone are ~0.15 s)."""
    out = _python(
        """
        import sys
        import srl_runtime.cli
        print(sorted(m for m in ("torch", "pydantic", "srl_runtime.config.experiment") if m in sys.modules))
        """,
        tmp_path,
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize("serial", [False, True])
def test_run_starts_the_fork_server_before_loading_the_experiment(
    serial: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def load(path: str) -> None:
        calls.append("load")
        raise InvalidExperiment(["stop here"])

    monkeypatch.setattr(forkserver, "start_worker_server", lambda: calls.append("server"))
    monkeypatch.setattr(cli, "_load_checked", load)
    code = cli.main(["run", str(tmp_path / "x.yaml"), "--quiet", *(["--serial"] if serial else [])])
    assert code == cli.EXIT_INVALID
    assert calls == (["load"] if serial else ["server", "load"])  # --serial forks no workers


def test_the_fork_server_preloads_without_waiting_for_a_worker(tmp_path: Path) -> None:
    """start_worker_server returns at once; the server preloads on its own (no worker asked for)."""
    trace = tmp_path / "trace.tsv"
    out = _python(
        """
        import os, time
        from srl_runtime.launcher.forkserver import start_worker_server
        start_worker_server()
        print(time.monotonic())
        deadline = time.monotonic() + 150
        while not (os.path.exists("trace.tsv") and "preloaded" in open("trace.tsv").read()):
            assert time.monotonic() < deadline, "the fork server never finished its preload"
            time.sleep(0.05)
        """,
        tmp_path, SRL_STARTUP_TRACE=str(trace), SRL_WORKER_START="forkserver",
    )  # fmt: skip
    returned = float(out.split()[0])
    preloaded = [line.split("\t") for line in trace.read_text().splitlines() if line.endswith("\tpreloaded")]
    assert preloaded and preloaded[0][2] == "forkserver"
    assert returned < float(preloaded[0][0]), "start_worker_server waited for the preload"


def test_a_run_that_does_not_start_stops_the_fork_server_at_once(tmp_path: Path) -> None:
    """An invalid experiment: the server (maybe still importing torch, holding the caller's stdout and
    stderr open) is killed and reaped before `srl run` returns, so a pipe reader is not kept waiting."""
    out = _python(
        """
        import multiprocessing.forkserver as mpf, os
        from srl_runtime import cli
        from srl_runtime.launcher.forkserver import start_worker_server
        start_worker_server()  # what cli.main does first; recorded here to see the pid
        pid = mpf._forkserver._forkserver_pid
        assert pid is not None
        assert cli.main(["run", "missing.yaml", "--quiet"]) == cli.EXIT_INVALID
        try:
            os.kill(pid, 0)
            print("alive")
        except ProcessLookupError:
            print("gone")
        """,
        tmp_path, SRL_WORKER_START="forkserver",
    )  # fmt: skip
    assert out.split()[-1] == "gone", out


def test_the_launchers_tensorboard_writer_leaves_torch_unimported(tmp_path: Path) -> None:
    out = _python(
        """
        import sys
        from srl_runtime.launcher.reporting import summary_writer_class
        writer = summary_writer_class()("tb")
        writer.add_scalar("a/b", 1.5, 3)
        writer.close()
        print("torch" in sys.modules)
        import torch  # still importable afterwards
        print(torch.tensor([1.0]).item())
        """,
        tmp_path,
    )
    assert out.split() == ["False", "1.0"]
    assert [p.stat().st_size > 0 for p in (tmp_path / "tb").iterdir()] == [True]


def test_timeline_marks_go_to_the_trace_file_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = tmp_path / "trace.tsv"
    monkeypatch.setattr(timeline, "_path", None)
    timeline.mark("nothing")
    assert not trace.exists() and not timeline.enabled()
    monkeypatch.setattr(timeline, "_path", str(trace))
    monkeypatch.setattr(timeline, "_label", "srl")
    timeline.set_label("actor-0")
    timeline.mark("configured")
    t, pid, label, event = trace.read_text().rstrip("\n").split("\t")
    assert (int(pid), label, event) == (os.getpid(), "actor-0", "configured") and float(t) > 0


class _SlowReporter(Worker):
    """Samples from its second poll on; progress once an hour (so only the first-samples rule reports)."""

    role = "actor"
    progress_interval = 3600.0

    def _configure(self) -> None:
        pass

    def _poll(self) -> PollResult:
        return PollResult(sample_count=1 if self.stats.polls else 0)


def test_a_worker_reports_its_first_samples_at_the_next_poll(tmp_path: Path) -> None:
    exp = parse_experiment({"metadata": {"name": "first"}, "spec": {"environment": {"id": "CartPole-v1"}, "stop": {"envFrames": 10}}})
    nr = MemoryNameRecords()
    worker = _SlowReporter(WorkerContext(exp, "actor", 0, nr, tmp_path))
    worker.start()

    def samples() -> int:
        return int(json.loads(nr.get(keys.worker_progress(worker.ctx.root, "actor", 0)))["samples"])

    worker.poll_once()  # publishes (nothing yet), polls: no samples
    worker.poll_once()  # first sample
    assert samples() == 0
    worker.poll_once()  # reports it, not an hour later
    assert samples() == 1
    worker.poll_once()
    assert samples() == 1  # then the interval rules again


def test_the_first_line_with_frames_is_printed_at_once(tmp_path: Path) -> None:
    out = io.StringIO()
    reporter = ProgressReporter(tmp_path, interval=100.0, stream=out)
    for wall, frames in [(0.0, 0), (0.5, 0), (1.0, 16), (1.5, 32), (101.5, 48)]:
        reporter.report(Summary(wall_seconds=wall, env_frames=frames))
    reporter.close()
    assert [line.split("frames")[1].split()[0] for line in out.getvalue().splitlines()] == ["0", "16", "48"]


def _blas_threads_in_worker(queue: Any) -> None:
    import numpy as np

    a = np.ones((512, 64), np.float32)
    for _ in range(10):
        a @ np.ones((64, 64), np.float32)  # a matmul big enough for OpenBLAS to use its pool
    queue.put((os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task"))))


def test_local_workers_run_numpy_blas_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Worker processes already share the cores; a BLAS pool in each (numpy starts one thread per core)
    # made the policy worker's batched forward pass fight the actors.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "")  # records the original, so teardown restores it
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv("SRL_WORKER_START", "spawn")  # a fresh interpreter: numpy loads after the setting
    ctx = forkserver.worker_context()
    queue = ctx.Queue()
    proc = ctx.Process(target=_blas_threads_in_worker, args=(queue,))
    proc.start()
    try:
        setting, threads = queue.get(timeout=120)
    finally:
        proc.join(30)
    assert setting == "1" and threads == 1, (setting, threads)
