"""bench/harness.py and bench/systems.py: progress parsing of each system's real line formats, the
steady rate, censoring of unsolved runs into the ratios, and the quick budget."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import systems  # noqa: E402


def _load_harness() -> ModuleType:
    # By file, under its own name: tests/e2e/harness.py is a module `harness` too, and in a full
    # test run it is imported first.
    spec = importlib.util.spec_from_file_location("bench_harness", BENCH / "harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_harness"] = module
    spec.loader.exec_module(module)
    return module


harness = _load_harness()

pytestmark = pytest.mark.unit

SF_LINE = ("[2026-12-03 18:39:20,516][12939] Fps is (10 sec: 4096.0, 60 sec: 3900.2, 300 sec: 3900.2). "
           "Total num frames: 204800. Throughput: 0: 1010.3. Samples: 53248. Policy #0 lag: (min: 0.0, avg: 0.4, max: 1.0)")


def test_sample_factory_line_gives_trained_and_generated_frames(tmp_path: Path) -> None:
    pong = systems.sf_pong("python", tmp_path, 11, "best", 2)
    prog, done = pong.parser(1.0, SF_LINE)
    assert prog == systems.Progress(generated=53248 * 4, trained=204800) and not done
    cart = systems.sf_cartpole("python", tmp_path, 11, "matched", 2)
    assert cart.parser(1.0, SF_LINE)[0] == systems.Progress(generated=53248, trained=204800)
    assert cart.env["SRL_BENCH_EPISODE_DIR"] == str(tmp_path / "episodes")
    assert "--async_rl=False" in cart.cmd and "--async_rl=True" in pong.cmd


def test_other_systems_lines(tmp_path: Path) -> None:
    ours = systems.ours("srl", tmp_path / "x.yaml", tmp_path)
    line = "[   20.0s] frames     143,392 (  12,709/s)  train    135  version    138  return  462.2 (802 ep)"
    assert ours.parser(0.0, line)[0] == systems.Progress(143392)
    assert ours.episodes_dir == tmp_path / "run" / "episodes" and ours.episodes_glob == "actor-*.csv"
    clean = systems.cleanrl_cartpole("python", tmp_path, 11)
    assert clean.parser(0.0, "global_step=13952, episode_reward=145.0")[0] == systems.Progress(13952)
    assert clean.trained_equals_generated
    rl = systems.rllib_cartpole("python", tmp_path / "d.py", tmp_path, 11, "best", 60)
    assert rl.parser(0.0, '{"env_steps": 4000, "trained_steps": 70000, "mean_return": 20.0}')[0] == systems.Progress(4000)
    assert rl.trained_equals_generated
    assert rl.parser(0.0, "Token authentication is enabled")[0] is None


def test_steady_rate_leaves_the_warmup_out() -> None:
    pts = [(1.0, 10), (2.0, 1000), (4.0, 3000), (6.0, 5000), (8.0, 7000)]
    assert harness.steady_rate(pts, warmup=2.0) == pytest.approx(1000.0)  # from t=4 on
    assert harness.steady_rate(pts[:1], warmup=0.0) is None


def test_steady_rate_of_a_short_run_uses_every_report() -> None:
    # A run that solved within seconds: after the warm-up only two reports, with the same trained
    # count (the last row is written at the stop); that is not a rate of 0 but too few reports.
    pts = [(4.0, 2000), (6.0, 50000), (8.0, 90000), (8.5, 90000)]
    assert harness.steady_rate(pts, warmup=3.0) == pytest.approx(88000 / 4.5)


def _run(system: str, solved: bool, t: float, cap: float = 40.0) -> dict:
    return {"system": system, "config": "c", "solved": solved, "solve_s": t if solved else None, "cap_s": cap,
            "steps_to_threshold": 1000 if solved else None, "steps_seen": 5000, "trained_fps": 100.0}


def test_unsolved_runs_are_censored_at_the_cap_in_the_ratio() -> None:
    runs = [_run("ours", True, 10.0), _run("ours", True, 12.0), _run("ours", True, 11.0),
            _run("cleanrl", False, 0), _run("cleanrl", False, 0), _run("cleanrl", True, 30.0)]
    r = harness.ratios(runs, "cartpole")["solve_s"]
    vs = r["vs"]["cleanrl"]
    assert vs["ratio"] == pytest.approx(11.0 / 40.0)
    assert vs["bound"] == "upper"  # CleanRL's median is only ">= 40 s": ours / it is at most this
    summary = harness.system_summary([x for x in runs if x["system"] == "cleanrl"], "cartpole", None)
    assert summary["fraction_solved"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["solve_s"]["censored"] == 2 and summary["solve_s"]["n"] == 3


def test_quick_budget_is_planned_and_caps_scale_under_the_deadline(tmp_path: Path) -> None:
    b = harness.Bench("quick", tmp_path, None, tmp_path, None)
    b.gaps.clear()  # plan as if every system were there
    plan = b.plan(list(harness.CASES), {"ceiling", "bound", "architecture", "train"})
    assert set(harness.CASES) <= set(plan) and plan["total"] == sum(v for k, v in plan.items() if k != "total")
    assert plan["total"] > harness.MODES["quick"]["deadline"] / 2
    b.train_plan_left = 100.0
    assert b._cap(40.0) == 40.0  # time enough for the rest
    b.train_plan_left = 1000.0
    b.started -= harness.MODES["quick"]["deadline"] - 500.0  # half the remaining worst case left
    assert b._cap(40.0) == pytest.approx((40.0 + harness.STOP_OVERHEAD) * 0.5 - harness.STOP_OVERHEAD, rel=0.01)
    assert all(len(harness.MODES[m]["seeds"]) >= n for m, n in (("quick", 3), ("full", 10)))
    assert len(harness.MODES["full"]["pong_seeds"]) >= 5 and min(harness.MODES["quick"]["seeds"]) >= 11
