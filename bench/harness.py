"""The bench: runs ours and the peers side by side, alternating (A B A B ...), and reports medians
and ratios ours / best peer. Started by bench/run, which sets up the venvs first.

Cases
  1. cartpole_throughput    env steps/s while training CartPole-v1 (2x64 MLP)
  2. cartpole_time_to_solve wall seconds from launch until the mean of the last 100 returns >= 475
     (1 and 2 come from the same runs: each training run is timed to the solve and its step rate is
     read between its first and last progress report, which leaves start-up out)
  3. pong_throughput        env frames/s (frame skip 4, Nature CNN) while training Pong
  4. ceiling                raw env steps/s with random actions, one process per core
The last line printed is the JSON summary; the full record goes to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import runproc
import systems
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = ("sample_factory", "cleanrl", "rllib")
MODES = {
    # --quick: one seed and one round per case, so the whole run stays near 10 minutes on 2 cores.
    "quick": {"seeds": [1], "solve_cap": 150.0, "pong_seconds": 30.0, "pong_rounds": 1, "ceiling_seconds": 4.0, "ceiling_rounds": 1},
    "full": {"seeds": [1, 2, 3], "solve_cap": 300.0, "pong_seconds": 90.0, "pong_rounds": 3, "ceiling_seconds": 10.0, "ceiling_rounds": 3},
}
START_ALLOWANCE = 120.0  # seconds a system may take to start before its measurement window opens


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, mode: str, cache: Path, srl: str | None, work: Path) -> None:
        self.mode = mode
        self.cfg = MODES[mode]
        self.work = work
        self.srl = srl
        self.py = {
            "sample_factory": cache / "venvs/sf/bin/python",
            "cleanrl": cache / "venvs/cleanrl/bin/python",
            "rllib": cache / "venvs/rllib/bin/python",
        }
        # Ours' interpreter is the one next to its `srl` script (the project venv).
        self.py["ours"] = Path(srl).parent / "python" if srl else None
        self.gaps: dict[str, str] = {}
        if not srl:
            self.gaps["ours"] = "srl command not found (set SRL_BIN or run scripts/bootstrap.sh)"
        for peer in PEERS:
            if not self.py[peer].exists():
                self.gaps[peer] = f"venv missing: {self.py[peer]}"
        self.runs: dict[str, list[dict]] = {}

    def available(self, name: str) -> bool:
        return name not in self.gaps

    def _record(self, case: str, name: str, run: runproc.Run, **extra: object) -> dict:
        entry = {"system": name, "wall": round(run.wall, 2), "ended_by": run.ended_by, "exit_code": run.exit_code,
                 "solved_at": None if run.solved_at is None else round(run.solved_at, 2), "log": run.log, **extra}
        self.runs.setdefault(case, []).append(entry)
        return entry

    def _ours_experiment(self, name: str, seed: int, wall_seconds: float, run_dir: Path) -> Path:
        """A copy of bench/experiments/<name>.yaml with this run's seed and wall-clock stop."""
        doc = yaml.safe_load((BENCH / "experiments" / f"{name}.yaml").read_text())
        doc["spec"]["seed"] = seed
        doc["spec"].setdefault("stop", {})["wallSeconds"] = wall_seconds
        path = run_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    # ---- cases 1 and 2 --------------------------------------------------------------------------
    def cartpole(self) -> None:
        cap = self.cfg["solve_cap"]
        for seed in self.cfg["seeds"]:
            for name in ("ours", *PEERS):
                if not self.available(name):
                    continue
                run_dir = self.work / "cartpole" / f"{name}-seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                if name == "ours":
                    launch = systems.ours(self.srl, self._ours_experiment("cartpole", seed, cap, run_dir), run_dir)
                elif name == "sample_factory":
                    launch = systems.sf_cartpole(str(self.py[name]), run_dir, seed)
                elif name == "cleanrl":
                    launch = systems.cleanrl_cartpole(str(self.py[name]), run_dir, seed)
                else:
                    launch = systems.rllib_cartpole(str(self.py[name]), BENCH / "drivers/rllib_ppo.py", run_dir, seed, cap)
                log(f"cartpole seed {seed}: {name} (cap {cap:.0f}s)")
                run = runproc.run(launch.cmd, launch.parser, cap=cap, log_path=run_dir / "output.log", cwd=launch.cwd, env=launch.env)
                rate = run.rate()
                e = self._record("cartpole", name, run, seed=seed, steps_per_s=None if rate is None else round(rate, 1))
                log(f"  -> {e['steps_per_s']} steps/s, solved at {e['solved_at']} s ({run.ended_by})")

    # ---- case 3 ---------------------------------------------------------------------------------
    def pong(self) -> None:
        seconds = self.cfg["pong_seconds"]
        for rnd in range(self.cfg["pong_rounds"]):
            for name in ("ours", "sample_factory"):
                if not self.available(name):
                    continue
                run_dir = self.work / "pong" / f"{name}-round{rnd}"
                run_dir.mkdir(parents=True, exist_ok=True)
                if name == "ours":
                    # The experiment's own stop is only a backstop; the harness ends the run.
                    launch = systems.ours(self.srl, self._ours_experiment("pong", rnd + 1, seconds + START_ALLOWANCE, run_dir), run_dir)
                else:
                    launch = systems.sf_pong(str(self.py[name]), run_dir, os.cpu_count() or 1)
                log(f"pong round {rnd}: {name} ({seconds:.0f}s of training)")
                run = runproc.run(launch.cmd, measure_for(launch.parser, seconds), cap=seconds + START_ALLOWANCE,
                                  log_path=run_dir / "output.log", cwd=launch.cwd, env=launch.env)
                rate = run.rate(skip_first=5.0)  # the first seconds after the first frame are warm-up
                e = self._record("pong", name, run, round=rnd, frames_per_s=None if rate is None else round(rate, 1))
                log(f"  -> {e['frames_per_s']} frames/s")

    # ---- case 4 ---------------------------------------------------------------------------------
    def ceiling(self) -> None:
        for env in ("cartpole", "pong"):
            for rnd in range(self.cfg["ceiling_rounds"]):
                # Pong's ceiling only for the systems that run Pong here.
                names = ("ours", *PEERS) if env == "cartpole" else ("ours", "sample_factory")
                for name in names:
                    if not self.available(name):
                        continue
                    cmd = [str(self.py[name]), str(BENCH / "ceiling.py"), "--env", env, "--seconds", str(self.cfg["ceiling_seconds"])]
                    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                    if not lines:
                        log(f"ceiling {env} {name} failed: {out.stderr.strip()[-300:]}")
                        continue
                    d = json.loads(lines[-1])
                    self.runs.setdefault(f"ceiling_{env}", []).append({"system": name, "round": rnd, **d})
                    log(f"ceiling {env} round {rnd}: {name} {d['frames_per_s']} frames/s ({d['library']})")

    # ---- summary --------------------------------------------------------------------------------
    def summary(self) -> dict:
        cases: dict[str, dict] = {}
        cases["cartpole_throughput"] = self._case("cartpole", "steps_per_s", "env steps/s", higher=True)
        cases["cartpole_time_to_solve"] = self._solve_case()
        cases["pong_throughput"] = self._case("pong", "frames_per_s", "env frames/s (frame skip 4)", higher=True,
                                              missing={"cleanrl": "not run on Pong here", "rllib": "not run on Pong here"})
        cases["ceiling"] = {
            env: self._case(f"ceiling_{env}", "frames_per_s", "env frames/s, random actions, one process per core",
                            higher=True, missing={} if env == "cartpole" else {"cleanrl": "not run on Pong here", "rllib": "not run on Pong here"})
            for env in ("cartpole", "pong")
        }
        # What share of its own env stack's raw rate each system reaches while training.
        for case, env in (("cartpole_throughput", "cartpole"), ("pong_throughput", "pong")):
            ceil = cases["ceiling"][env]
            frac = {n: round(cases[case][n] / ceil[n], 3) for n in ("ours", *PEERS) if cases[case][n] and ceil.get(n)}
            if frac:
                cases[case]["fraction_of_ceiling"] = frac
        return cases

    def _values(self, case: str, key: str) -> dict[str, list]:
        vals: dict[str, list] = {}
        for e in self.runs.get(case, []):
            vals.setdefault(e["system"], []).append(e.get(key))
        return vals

    def _case(self, case: str, key: str, unit: str, *, higher: bool, missing: dict[str, str] | None = None) -> dict:
        vals = self._values(case, key)
        out: dict = {"unit": unit, "higher_is_better": higher}
        for name in ("ours", *PEERS):
            got = [v for v in vals.get(name, []) if v is not None]
            out[name] = round(statistics.median(got), 1) if got else None
        out["ratio"] = ratio(out["ours"], [out[p] for p in PEERS], higher)
        notes = {n: why for n, why in (missing or {}).items()}
        notes.update({n: self.gaps[n] for n in ("ours", *PEERS) if n in self.gaps})
        for n in ("ours", *PEERS):
            if out[n] is None and n not in notes and vals.get(n):
                notes[n] = "ran but reported no progress (see its log)"
        if notes:
            out["notes"] = notes
        return out

    def _solve_case(self) -> dict:
        vals = self._values("cartpole", "solved_at")
        out: dict = {"unit": "s", "higher_is_better": False, "target": "mean of last 100 returns >= 475",
                     "cap_s": self.cfg["solve_cap"]}
        solved: dict[str, str] = {}
        for name in ("ours", *PEERS):
            got = vals.get(name, [])
            if not got:
                out[name] = None
                continue
            # An unsolved run counts as never (inf): the median is then finite only if most solved.
            med = statistics.median([v if v is not None else float("inf") for v in got])
            out[name] = None if med == float("inf") else round(med, 1)
            solved[name] = f"{sum(v is not None for v in got)}/{len(got)}"
        out["ratio"] = ratio(out["ours"], [out[p] for p in PEERS], higher=False)
        out["solved"] = solved
        notes = {n: self.gaps[n] for n in ("ours", *PEERS) if n in self.gaps}
        notes.update({n: f"not solved within {self.cfg['solve_cap']:.0f}s in most runs" for n in solved if out[n] is None})
        if notes:
            out["notes"] = notes
        return out


def measure_for(parser: runproc.Parser, seconds: float) -> runproc.Parser:
    """Wrap a parser so the run counts as done once progress has been seen for `seconds`."""
    first: list[float] = []

    def parse(t: float, line: str) -> tuple[int | None, bool]:
        frames, _ = parser(t, line)
        if frames and not first:
            first.append(t)
        return frames, bool(first) and t - first[0] >= seconds

    return parse


def ratio(ours: float | None, peers: list[float | None], higher: bool) -> float | None:
    got = [p for p in peers if p]
    if ours is None or not got:
        return None
    best = max(got) if higher else min(got)
    return round(ours / best, 3)


def versions(py: dict[str, Path | None]) -> dict[str, dict[str, str]]:
    """Package versions as installed in each venv, for the record."""
    pkgs = {"ours": ["srl-runtime", "torch", "gymnasium", "numpy", "ale-py"],
            "sample_factory": ["sample-factory", "torch", "gymnasium", "numpy", "ale-py"],
            "cleanrl": ["cleanrl", "torch", "gym", "numpy", "stable-baselines3"],
            "rllib": ["ray", "torch", "gymnasium", "numpy"]}
    out = {}
    for name, names in pkgs.items():
        if not py.get(name) or not Path(py[name]).exists():
            continue
        code = "import importlib.metadata as m, json, sys\nd={}\nfor p in sys.argv[1:]:\n try: d[p]=m.version(p)\n except Exception: pass\nprint(json.dumps(d))"
        r = subprocess.run([str(py[name]), "-c", code, *names], capture_output=True, text=True, timeout=60)
        out[name] = json.loads(r.stdout) if r.returncode == 0 else {}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cache", default=os.environ.get("SRL_BENCH_CACHE", str(Path.home() / ".cache/srl-bench")))
    parser.add_argument("--srl", default=os.environ.get("SRL_BIN", ""))
    parser.add_argument("--cases", default="ceiling,cartpole,pong", help="comma list of ceiling,cartpole,pong")
    parser.add_argument("--results", default=str(BENCH / "results"))
    args = parser.parse_args()

    mode = "quick" if args.quick else "full"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    cache = Path(args.cache)
    work = cache / "work" / stamp  # run dirs and logs: outside the repo, like the venvs
    srl = args.srl if args.srl and Path(args.srl).exists() else None
    bench = Bench(mode, cache, srl, work)
    t0 = time.monotonic()
    log(f"{mode} run, work dir {work}")
    for case in args.cases.split(","):
        getattr(bench, case)()

    result = {
        "bench": "srl-vs-peers", "mode": mode, "timestamp": stamp, "cores": os.cpu_count(),
        "wall_seconds": round(time.monotonic() - t0, 1), "cases": bench.summary(),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{stamp}.json"
    png_path = results / f"{stamp}.png"
    full = {**result, "versions": versions(bench.py), "runs": bench.runs, "gaps": bench.gaps}
    json_path.write_text(json.dumps(full, indent=2) + "\n")
    chart = subprocess.run([sys.executable, str(BENCH / "chart.py"), str(json_path), str(png_path)], capture_output=True, text=True)
    if chart.returncode == 0:
        # latest.* is what docs/benchmarks.md shows.
        shutil.copyfile(png_path, results / "latest.png")
        shutil.copyfile(json_path, results / "latest.json")
        result["chart"] = str(png_path.relative_to(REPO)) if png_path.is_relative_to(REPO) else str(png_path)
    else:
        log(f"chart failed: {chart.stderr.strip()[-500:]}")
    result["results"] = str(json_path.relative_to(REPO)) if json_path.is_relative_to(REPO) else str(json_path)
    print(json.dumps(result, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
