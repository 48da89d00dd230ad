"""bench/episodes.py (the one window for every system), bench/procstat.py's /proc parsing, and the
peers' episode recorder (bench/episode_recorder.py) on a gymnasium env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import episodes  # noqa: E402
import procstat  # noqa: E402

pytestmark = pytest.mark.unit


def _write(path: Path, rows: list[tuple[float, float, int]], partial: str = "") -> None:
    path.write_text(episodes.HEADER + "\n" + "".join(f"{t},{r},{n}\n" for t, r, n in rows) + partial)


def test_logs_of_several_processes_merge_by_end_time_and_bad_rows_count(tmp_path: Path) -> None:
    _write(tmp_path / "episodes-1.csv", [(3.0, 30, 30), (1.0, 10, 10)])
    _write(tmp_path / "episodes-2.csv", [(2.0, 20, 20)], partial="4.0,40")  # last line still being written
    log = episodes.read_logs(episodes.log_files(tmp_path, "episodes-*.csv"))
    assert [e.end_time for e in log.episodes] == [1.0, 2.0, 3.0]
    assert log.dropped_rows == 1 and log.files == 2


def test_solve_is_the_first_episode_end_where_the_last_100_reach_the_target() -> None:
    launch = 1000.0
    eps = [episodes.Episode(launch + i, 100.0, 100) for i in range(150)]
    eps += [episodes.Episode(launch + 150 + i, 500.0, 500) for i in range(100)]
    solve = episodes.first_solve(eps, launch, 475.0)
    assert solve is not None
    # Needs k episodes of 500 with (100 - k) of 100 averaging >= 475: k >= 93.75, so the 94th.
    assert solve.episodes == 150 + 94
    assert solve.seconds == pytest.approx(150 + 93)
    assert solve.steps == 150 * 100 + 94 * 500
    assert episodes.first_solve(eps[:150], launch, 475.0) is None


def test_fewer_than_100_episodes_never_solve() -> None:
    eps = [episodes.Episode(float(i), 500.0, 500) for i in range(99)]
    assert episodes.first_solve(eps, 0.0, 475.0) is None
    assert episodes.window_mean(eps) is None


def test_auc_is_one_for_best_from_the_start_and_grows_with_earlier_learning() -> None:
    best = episodes.curve([episodes.Episode(float(i), 500.0, 1) for i in range(10)])
    assert episodes.normalised_auc(best, 10, 0.0, 500.0)["auc"] == pytest.approx(0.9)  # the first step is before any episode
    slow = episodes.curve([episodes.Episode(float(i), 0.0, 10) for i in range(5)] + [episodes.Episode(9.0, 500.0, 50)])
    fast = episodes.curve([episodes.Episode(0.0, 500.0, 100)])
    a_slow = episodes.normalised_auc(slow, 200, 0.0, 500.0)
    a_fast = episodes.normalised_auc(fast, 200, 0.0, 500.0)
    assert a_fast["auc"] > a_slow["auc"] > 0
    assert a_fast["covered"] == 0.5  # the run's own episodes reached half the budget


def test_proc_stat_parsing_handles_odd_command_names() -> None:
    line = "123 (a (weird) name) S 1 123 123 0 -1 4194560 10 0 0 0 250 150 7 3 20 0 9 0 555 0 0"
    p = procstat.parse_stat(line)
    assert (p.pid, p.ppid, p.session, p.threads, p.start_ticks) == (123, 1, 123, 9, 555)
    assert p.cpu_seconds == pytest.approx(400 / procstat.CLOCK_TICKS)


def test_sampler_sees_a_child_process_tree_and_its_cpu(tmp_path: Path) -> None:
    code = "import subprocess, sys, time\n" \
           "c = subprocess.Popen([sys.executable, '-c', 'import time\\nt=time.process_time()\\nwhile time.process_time()-t<0.6: pass'])\n" \
           "c.wait()\n"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    sampler = procstat.Sampler(proc.pid, interval=0.1).start()
    proc.wait(timeout=60)
    usage = sampler.stop()
    assert usage.peak_processes >= 2  # the leader and its child were both seen
    assert usage.sampled_cpu >= 0.3


def test_recorder_writes_every_episode_of_a_gymnasium_env(tmp_path: Path) -> None:
    pytest.importorskip("gymnasium")
    (tmp_path / "srl_bench_episode_recorder.py").write_text((BENCH / "episode_recorder.py").read_text())
    code = (
        "import srl_bench_episode_recorder\n"
        "import gymnasium as gym\n"
        "env = gym.make('CartPole-v1'); env.reset(seed=0); env.action_space.seed(0); n = 0\n"
        "for _ in range(3000):\n"
        "    _, _, term, trunc, _ = env.step(env.action_space.sample())\n"
        "    if term or trunc:\n"
        "        n += 1; env.reset()\n"
        "print(n)\n"
    )
    out_dir = tmp_path / "episodes"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "SRL_BENCH_EPISODE_DIR": str(out_dir)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    counted = int(r.stdout.strip())
    log = episodes.read_logs(episodes.log_files(out_dir, "episodes-*.csv"))
    assert len(log.episodes) == counted > 0
    assert sum(e.length for e in log.episodes) <= 3000 and log.dropped_rows == 0
    assert all(e.ret == e.length for e in log.episodes)  # CartPole: raw reward 1 per step
