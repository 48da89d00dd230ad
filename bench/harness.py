"""The bench: ours vs Sample Factory, CleanRL and RLlib, in two arms, with seeds, intervals and bounds.
Started by bench/run, which sets up the venvs first.

Arms (reported separately)
  matched  every system runs one shared synchronous PPO configuration (CleanRL ppo.py's on CartPole,
           the Atari PPO settings Sample Factory shares with CleanRL on Pong); ours on-policy
  best     each system's own published tuned / throughput configuration; ours' *-best.yaml
Cases: cartpole-matched, cartpole-best (all four systems), pong-matched, pong-best (ours and Sample
Factory). CleanRL's one release config serves both CartPole arms: it runs once per seed and counts in both.
Per run: time to solve (the harness's own window over every system's per-episode log: first episode
end with the mean of the last 100 returns >= 475, censored at the cap if never), steps to that
threshold and the normalised area under return-vs-steps, start-up (launch -> first frame), steady
generated and trained frames/s and the dropped fraction, CPU-seconds per 1M frames of the whole
process tree, peak process and thread counts. Seeds (11 and up: ours was tuned on seeds <= 10) run in
rotated order. Medians, IQR, bootstrap 95% intervals of every ratio ours / peer (stats.py).
Also: each system's raw env-stack ceiling (ceiling.py), ours' compute bound B (bound.py) with every
throughput as a fraction of it, and the architecture cases (bench/architecture.py).
The last line printed is the JSON summary; the full record goes to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import episodes
import runproc
import stats
import systems
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = ("sample_factory", "cleanrl", "rllib")
SYSTEMS = ("ours", *PEERS)
ENV_SYSTEMS = {"cartpole": SYSTEMS, "pong": ("ours", "sample_factory")}
CASES = ("cartpole-matched", "cartpole-best", "pong-matched", "pong-best")
TARGET = 475.0  # CartPole-v1 counts as solved at a mean return of 475 over the last 100 episodes
RETURN_RANGE = {"cartpole": (0.0, 500.0), "pong": (-21.0, 21.0)}
FRAME_SKIP = {"cartpole": 1, "pong": 4}
STOP_OVERHEAD = 8.0  # seconds a run takes beyond its cap to stop (budget planning)
START_GRACE = 45.0  # seconds a run may go past its cap to show `min_window` seconds of progress
MODES = {
    # seeds: CartPole seeds (time to solve and throughput come from the same runs), pong_seeds: Pong;
    # solve_cap: wall seconds from launch; pong_seconds: throughput window after the first frame,
    # pong_start: what a Pong run may take to show its first frame; warmup: seconds after the first
    # frame left out of the steady rate; auc_steps: the common step budget of the area under the curve.
    "quick": {"seeds": [11, 12, 13], "pong_seeds": [11, 12, 13], "solve_cap": 40.0, "pong_seconds": 12.0, "min_window": 12.0,
              "pong_start": 25.0, "warmup": 3.0, "ceiling_seconds": 2.0, "ceiling_rounds": 1, "bound_seconds": 1.0,
              "auc_steps": 100_000, "architecture": ["--quick"], "architecture_timeout": 300.0, "architecture_budget": 240.0,
              "deadline": 21 * 60.0},
    "full": {"seeds": list(range(11, 21)), "pong_seeds": list(range(11, 16)), "solve_cap": 300.0, "pong_seconds": 60.0, "min_window": 30.0,
             "pong_start": 90.0, "warmup": 5.0, "ceiling_seconds": 5.0, "ceiling_rounds": 3, "bound_seconds": 3.0,
             "auc_steps": 300_000, "architecture": [], "architecture_timeout": 1800.0, "architecture_budget": 900.0,
             "deadline": None},
    # test: proves every command runs and is parsed; numbers mean nothing.
    "test": {"seeds": [11], "pong_seeds": [11], "solve_cap": 45.0, "pong_seconds": 5.0, "pong_start": 40.0, "min_window": 5.0,
             "warmup": 1.0, "ceiling_seconds": 1.0, "ceiling_rounds": 1, "bound_seconds": 0.3, "auc_steps": 20_000,
             "architecture": ["--quick"], "architecture_timeout": 300.0, "architecture_budget": 240.0, "deadline": None},
}


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Bench:
    def __init__(self, mode: str, cache: Path, srl: str | None, work: Path, only: set[str] | None) -> None:
        self.mode = mode
        self.cfg = MODES[mode]
        self.work = work
        self.srl = srl
        self.cores = os.cpu_count() or 1
        self.py: dict[str, Path | None] = {
            "sample_factory": cache / "venvs/sf/bin/python",
            "cleanrl": cache / "venvs/cleanrl/bin/python",
            "rllib": cache / "venvs/rllib/bin/python",
            # Ours' interpreter is the one next to its `srl` script (the project venv).
            "ours": Path(srl).parent / "python" if srl else None,
        }
        self.gaps: dict[str, str] = {}
        if not srl:
            self.gaps["ours"] = "srl command not found (set SRL_BIN or run scripts/bootstrap.sh)"
        for peer in PEERS:
            if not Path(self.py[peer]).exists():  # type: ignore[arg-type]
                self.gaps[peer] = f"venv missing: {self.py[peer]}"
        for name in SYSTEMS:
            if only is not None and name not in only:
                self.gaps.setdefault(name, "left out by --systems")
        self.runs: list[dict] = []
        self.ceilings: list[dict] = []
        self.bounds: dict[str, dict] = {}
        self.architecture: dict | None = None
        self.started = time.monotonic()
        self.train_plan_left = 0.0  # worst-case seconds of the training runs not yet run (plan sets it)

    def available(self, name: str) -> bool:
        return name not in self.gaps

    # ---- budget -----------------------------------------------------------------------------------
    def plan(self, cases: list[str], run_parts: set[str]) -> dict:
        """Worst-case seconds per part (every run to its cap), printed at the start."""
        c = self.cfg
        parts: dict[str, float] = {}
        for case in cases if "train" in run_parts else []:
            env, arm = case.split("-")
            names = [n for n in ENV_SYSTEMS[env] if self.available(n) and not (n == "cleanrl" and arm == "best")]
            seeds = c["seeds"] if env == "cartpole" else c["pong_seeds"]
            cap = c["solve_cap"] if env == "cartpole" else c["pong_start"] + c["pong_seconds"]
            parts[case] = len(names) * len(seeds) * (cap + STOP_OVERHEAD)
        if "ceiling" in run_parts:
            stacks = sum(len(self._ceiling_stacks(env)) for env in ENV_SYSTEMS)
            parts["ceilings"] = stacks * c["ceiling_rounds"] * (c["ceiling_seconds"] + 8.0)
        if "bound" in run_parts:
            parts["bounds"] = len(cases) * (3 * c["bound_seconds"] + 8.0)
        if "architecture" in run_parts:
            parts["architecture"] = c["architecture_budget"]
        self.train_plan_left = sum(v for k, v in parts.items() if k in CASES)
        parts["total"] = sum(parts.values())
        return {k: round(v) for k, v in parts.items()}

    def _cap(self, cap: float) -> float:
        """A run's cap. Under a deadline (quick), every remaining run's cap is scaled by the same factor
        when the time left is less than the remaining runs' worst case, so the last cases are not
        starved; each run records the cap it had."""
        deadline = self.cfg["deadline"]
        if deadline is None or self.train_plan_left <= 0:
            return cap
        left = deadline - (time.monotonic() - self.started)
        scale = min(1.0, max(0.0, left) / self.train_plan_left)
        return max(10.0, (cap + STOP_OVERHEAD) * scale - STOP_OVERHEAD)

    # ---- ours' experiment files -------------------------------------------------------------------
    def _ours_experiment(self, case: str, seed: int, wall_seconds: float, run_dir: Path) -> Path:
        """A copy of bench/experiments/<case>.yaml with this run's seed and wall-clock stop (the only
        two fields the harness overrides)."""
        doc = yaml.safe_load((BENCH / "experiments" / f"{case}.yaml").read_text())
        doc["spec"]["seed"] = seed
        doc["spec"].setdefault("stop", {})["wallSeconds"] = wall_seconds
        path = run_dir / f"{case}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def _launch(self, name: str, case: str, seed: int, run_dir: Path, cap: float) -> systems.Launch:
        env, arm = case.split("-")
        py = str(self.py[name])
        if name == "ours":
            launch = systems.ours(self.srl, self._ours_experiment(case, seed, cap + START_GRACE + 30.0, run_dir), run_dir)  # type: ignore[arg-type]
            launch.env.update(ours_env())  # this checkout's srl_runtime first on the path
            return launch
        if name == "sample_factory":
            fn = systems.sf_cartpole if env == "cartpole" else systems.sf_pong
            return fn(py, run_dir, seed, arm, self.cores)
        if name == "cleanrl":
            return systems.cleanrl_cartpole(py, run_dir, seed)
        return systems.rllib_cartpole(py, BENCH / "drivers/rllib_ppo.py", run_dir, seed, arm, cap + START_GRACE)

    # ---- training cases ---------------------------------------------------------------------------
    def train_case(self, case: str) -> None:
        env, arm = case.split("-")
        c = self.cfg
        seeds = c["seeds"] if env == "cartpole" else c["pong_seeds"]
        names = [n for n in ENV_SYSTEMS[env] if self.available(n)]
        for i, seed in enumerate(seeds):
            for name in stats.rotated(names, i):
                if name == "cleanrl" and arm == "best":
                    # ppo.py's release config is the matched arm's: the same runs count in both arms.
                    reused = [r for r in self.runs
                              if r["case"] == f"{env}-matched" and r["system"] == "cleanrl" and r["seed"] == seed]
                    if reused:
                        self.runs.extend({**r, "case": case, "reused_from": f"{env}-matched"} for r in reused)
                        continue
                self._one_run(case, name, seed)

    def _one_run(self, case: str, name: str, seed: int) -> None:
        env, arm = case.split("-")
        c = self.cfg
        run_dir = self.work / case / f"{name}-seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        planned = c["solve_cap"] if env == "cartpole" else c["pong_start"] + c["pong_seconds"]
        cap = self._cap(planned)
        self.train_plan_left -= planned + STOP_OVERHEAD
        launch = self._launch(name, case, seed, run_dir, cap)
        watcher = None
        parser = launch.parser
        if env == "cartpole" and launch.episodes_dir is not None:
            watcher = solve_watcher(launch.episodes_dir, launch.episodes_glob)
        if env == "pong":
            parser = measure_for(launch.parser, c["pong_seconds"])
        log(f"{case} seed {seed}: {name} (cap {cap:.0f}s, load {load_average()})")
        # A slow starter runs past its cap (up to START_GRACE more) until `min_window` seconds of
        # progress were seen: its throughput is measured; its solve is still censored at the cap.
        run = runproc.run(launch.cmd, parser, cap=cap, log_path=run_dir / "output.log", cwd=launch.cwd,
                          env=launch.env, watcher=watcher, min_window=c["min_window"], hard_cap=cap + START_GRACE)
        rec = self._measure(case, name, seed, run, launch, cap)
        self.runs.append(rec)
        log(f"  -> solve {rec.get('solve_s')} s, trained {rec['trained_fps']} / generated {rec['generated_fps']} frames/s, "
            f"start-up {rec['startup_s']} s, {rec['episodes']} episodes ({run.ended_by})")

    def _measure(self, case: str, name: str, seed: int, run: runproc.Run, launch: systems.Launch, cap: float) -> dict:
        env, _arm = case.split("-")
        c = self.cfg
        ep_files = episodes.log_files(launch.episodes_dir, launch.episodes_glob) if launch.episodes_dir else []
        eplog = episodes.read_logs(ep_files)
        eps = eplog.episodes
        progress, trained = run.progress, run.trained
        trained_source = "reported"
        if name == "ours":
            progress, trained = ours_metrics(launch.episodes_dir.parent / "metrics.csv", FRAME_SKIP[env]) if launch.episodes_dir else ([], [])  # type: ignore[union-attr]
            trained_source = "metrics.csv trained_rows x frame skip"
            if not progress:
                progress, trained_source = run.progress, "none (no metrics.csv)"
        elif launch.trained_equals_generated or not trained:
            trained = progress
            trained_source = "= generated (on-policy: every generated frame is trained on)"
        first_frame = next((t for t, f in progress if f > 0), None)
        if name == "ours" and progress is not run.progress:
            first_frame = run.first_frame() if run.first_frame() is not None else first_frame
        if eps:
            first_ep = eps[0].end_time - run.launch_time
            first_frame = first_ep if first_frame is None else min(first_frame, first_ep)
        gen_fps = steady_rate(progress, c["warmup"])
        tr_fps = steady_rate(trained, c["warmup"])
        gen_total = progress[-1][1] if progress else 0
        tr_total = trained[-1][1] if trained else 0
        rec: dict = {
            "case": case, "system": name, "seed": seed, "config": launch.config, "cap_s": round(cap, 1),
            # A Pong run that reached its throughput window ends "measured" (runproc calls it solved).
            "wall_s": round(run.wall, 2), "ended_by": "measured" if env == "pong" and run.ended_by == "solved" else run.ended_by, "exit_code": run.exit_code, "log": run.log,
            "startup_s": None if first_frame is None else round(first_frame, 2),
            "generated_fps": None if gen_fps is None else round(gen_fps, 1),
            "trained_fps": None if tr_fps is None else round(tr_fps, 1),
            "generated_frames": gen_total, "trained_frames": tr_total, "trained_source": trained_source,
            "dropped_fraction": round(1 - tr_total / gen_total, 4) if gen_total and tr_total else None,
            "episodes": len(eps), "episode_files": eplog.files, "episode_rows_dropped": eplog.dropped_rows,
            "episode_log": "ok" if eplog.files else f"missing: no {launch.episodes_glob} under {launch.episodes_dir}",
            **run.usage,
            "load_average": load_average(),
        }
        cpu = run.usage.get("cpu_seconds")
        rec["cpu_s_per_M_generated"] = round(cpu / gen_total * 1e6, 2) if cpu and gen_total else None
        rec["cpu_s_per_M_trained"] = round(cpu / tr_total * 1e6, 2) if cpu and tr_total else None
        if env == "cartpole":
            solve = episodes.first_solve(eps, run.launch_time, TARGET)
            rec["solved"] = solve is not None and solve.seconds <= cap
            rec["solve_s"] = round(solve.seconds, 2) if rec["solved"] else None  # type: ignore[union-attr]
            rec["steps_to_threshold"] = solve.steps if rec["solved"] else None  # type: ignore[union-attr]
            # Censored at what it saw within the cap (a run that went on past it saw more).
            steps_seen = sum(e.length for e in eps if e.end_time - run.launch_time <= cap)
            rec["steps_seen"] = steps_seen
            low, high = RETURN_RANGE[env]
            auc = episodes.normalised_auc(episodes.curve(eps), c["auc_steps"], low, high) if eps else None
            rec["auc"] = None if auc is None else round(auc["auc"], 4)
            rec["auc_covered"] = None if auc is None else round(auc["covered"], 3)
        return rec

    # ---- ceilings and bounds ---------------------------------------------------------------------
    def _ceiling_stacks(self, env: str) -> list[tuple[str, list[str]]]:
        """(system, ceiling.py arguments) of each system's own env stack."""
        out: list[tuple[str, list[str]]] = []
        for name in ENV_SYSTEMS[env]:
            if not self.available(name):
                continue
            if name == "ours":
                for arm in ("matched", "best"):
                    out.append((f"ours-{arm}", ["--stack", "srl", "--experiment", str(BENCH / "experiments" / f"{env}-{arm}.yaml")]))
            elif name == "sample_factory":
                out.append((name, ["--stack", "make" if env == "cartpole" else "sf-atari"]))
            elif name == "cleanrl":
                out.append((name, ["--stack", "sync-vector", "--envs", "4"]))  # ppo.py: 4 envs, gym SyncVectorEnv
            else:
                out.append((name, ["--stack", "sync-vector", "--envs", "1"]))  # RLlib: 1 env per runner by default
        return out

    def ceiling(self) -> None:
        for env in ENV_SYSTEMS:
            for rnd in range(self.cfg["ceiling_rounds"]):
                for name, extra in self._ceiling_stacks(env):
                    py = self.py[name.split("-")[0]]
                    cmd = [str(py), str(BENCH / "ceiling.py"), "--env", env, "--seconds", str(self.cfg["ceiling_seconds"]), *extra]
                    d = run_json(cmd, timeout=300, env=ours_env() if name.startswith("ours") else None)
                    if d is None:
                        log(f"ceiling {env} {name} failed")
                        continue
                    self.ceilings.append({"env": env, "system": name, "round": rnd, **d})
                    log(f"ceiling {env} round {rnd}: {name} {d['frames_per_s']} frames/s ({d['library']})")

    def bound(self, cases: list[str]) -> None:
        if not self.available("ours"):
            return
        for case in cases:
            cmd = [str(self.py["ours"]), str(BENCH / "bound.py"), str(BENCH / "experiments" / f"{case}.yaml"),
                   "--seconds", str(self.cfg["bound_seconds"])]
            d = run_json(cmd, timeout=600, env=ours_env())
            if d is None:
                log(f"bound {case} failed")
                continue
            self.bounds[case] = d
            log(f"bound {case}: B = {d['bound_frames_per_s']} frames/s (c_env {d['c_env']:.2e}, c_act {d['c_act']:.2e}, c_learn {d['c_learn']:.2e})")

    def run_architecture(self) -> None:
        script = BENCH / "architecture.py"
        if not script.exists():
            self.architecture = {"gap": "bench/architecture.py does not exist in this checkout"}
            return
        if not self.available("ours"):
            self.architecture = {"gap": self.gaps["ours"]}
            return
        log(f"architecture {' '.join(self.cfg['architecture'])}")
        d = run_json([str(self.py["ours"]), str(script), *self.cfg["architecture"]], timeout=self.cfg["architecture_timeout"],
                     env=ours_env(), last_line=True)
        self.architecture = d if d is not None else {"gap": "bench/architecture.py printed no JSON last line"}

    # ---- summary ----------------------------------------------------------------------------------
    def summary(self, cases: list[str]) -> dict:
        out: dict = {}
        for case in cases:
            env, arm = case.split("-")
            runs = [r for r in self.runs if r["case"] == case]
            entry: dict = {"systems": {}, "seeds": sorted({r["seed"] for r in runs})}
            bound = self.bounds.get(case, {}).get("bound_frames_per_s")
            entry["bound_frames_per_s"] = bound
            for name in ENV_SYSTEMS[env]:
                mine = [r for r in runs if r["system"] == name]
                if not mine:
                    entry["systems"][name] = {"gap": self.gaps.get(name, "no runs")}
                    continue
                entry["systems"][name] = system_summary(mine, env, bound)
            entry["ratios"] = ratios(runs, env)
            out[case] = entry
        return out


# ---- helpers --------------------------------------------------------------------------------------
def ours_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO), "OMP_NUM_THREADS": "1"}


def run_json(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, last_line: bool = False) -> dict | None:
    """Run a helper and parse its JSON line (the last stdout line if `last_line`, else the last line
    starting with '{')."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env=env or {**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    except subprocess.TimeoutExpired:
        log(f"timed out after {timeout:.0f}s: {' '.join(cmd[:3])}")
        return None
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    if last_line:
        lines = lines[-1:]
    lines = [ln for ln in lines if ln.startswith("{")]
    if not lines:
        log(f"no JSON from {' '.join(cmd[:3])}: {out.stderr.strip()[-400:]}")
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return None


def solve_watcher(directory: Path, pattern: str) -> runproc.Watcher:
    """Ends a CartPole run once the harness's own window (all of the run's episodes merged) is solved."""
    def watch(_t: float) -> bool:
        eps = episodes.read_logs(episodes.log_files(directory, pattern)).episodes
        return episodes.first_solve(eps, 0.0, TARGET) is not None

    return watch


def measure_for(parser: runproc.Parser, seconds: float) -> runproc.Parser:
    """Wrap a parser so the run counts as done once progress has been seen for `seconds`."""
    first: list[float] = []

    def parse(t: float, line: str) -> tuple[runproc.Progress | None, bool]:
        prog, _ = parser(t, line)
        if prog and prog.generated and not first:
            first.append(t)
        return prog, bool(first) and t - first[0] >= seconds

    return parse


def ours_metrics(path: Path, frame_skip: int) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
    """Ours' (wall seconds, env frames) and (wall seconds, trained frames) from metrics.csv (interface 2):
    trained frames = trained_rows x frame skip. Its wall_seconds count from ours' own start."""
    if not path.exists():
        return [], []
    gen, tr = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                t = float(row["wall_seconds"])
                gen.append((t, int(float(row["env_frames"]))))
                if row.get("trained_rows") not in (None, ""):
                    tr.append((t, int(float(row["trained_rows"])) * frame_skip))
            except (KeyError, ValueError):
                continue
    return gen, tr


def steady_rate(points: list[tuple[float, int]], warmup: float) -> float | None:
    """Frames/s between the first sample `warmup` seconds after the first frame and the last sample."""
    pts = [p for p in points if p[1] > 0]
    if len(pts) < 2:
        return None
    window = [p for p in pts if p[0] >= pts[0][0] + warmup]
    if len(window) < 3:
        # Too few reports after the warm-up to call it steady (a run that solved within seconds: two
        # rows of ours' metrics.csv with the same trained count once read 0 frames/s): use all of them.
        window = [pts[0], pts[-1]]
    (t0, f0), (t1, f1) = window[0], window[-1]
    return (f1 - f0) / (t1 - t0) if t1 > t0 else None


def _obs(runs: list[dict], key: str) -> list[stats.Obs]:
    return [stats.Obs(float(r[key])) for r in runs if r.get(key) is not None]


def solve_obs(runs: list[dict]) -> list[stats.Obs]:
    """Time to solve: an unsolved run is censored at its cap (never dropped)."""
    return [stats.Obs(r["solve_s"]) if r.get("solved") else stats.Obs(r["cap_s"], censored=True) for r in runs]


def steps_obs(runs: list[dict]) -> list[stats.Obs]:
    """Steps to threshold: an unsolved run is censored at the steps it saw."""
    return [stats.Obs(r["steps_to_threshold"]) if r.get("solved") else stats.Obs(r.get("steps_seen") or 0, censored=True)
            for r in runs]


def system_summary(runs: list[dict], env: str, bound: float | None) -> dict:
    out: dict = {"runs": len(runs), "config": runs[0]["config"]}
    for key in ("trained_fps", "generated_fps", "startup_s", "dropped_fraction", "cpu_s_per_M_generated",
                "cpu_s_per_M_trained", "peak_processes", "peak_threads", "episodes"):
        got = _obs(runs, key)
        out[key] = stats.summary(got) if got else None
    if bound:
        for key in ("trained_fps", "generated_fps"):
            got = [r[key] / bound for r in runs if r.get(key) is not None]
            out[f"{key}_fraction_of_B"] = stats.summary(stats.plain(got)) if got else None
    if env == "cartpole":
        out["solve_s"] = stats.summary(solve_obs(runs))
        out["fraction_solved"] = round(sum(bool(r.get("solved")) for r in runs) / len(runs), 3)
        out["steps_to_threshold"] = stats.summary(steps_obs(runs), digits=0)
        auc = _obs(runs, "auc")
        out["auc"] = stats.summary(auc) if auc else None
    return out


def ratios(runs: list[dict], env: str) -> dict:
    """ours / each peer, and ours / the best peer (best median), with bootstrap 95% intervals."""
    metrics: dict[str, tuple[bool, object]] = {"trained_fps": (True, lambda rs: _obs(rs, "trained_fps")),
                                               "generated_fps": (True, lambda rs: _obs(rs, "generated_fps"))}
    if env == "cartpole":
        metrics["solve_s"] = (False, solve_obs)
        metrics["steps_to_threshold"] = (False, steps_obs)
    out: dict = {}
    ours = [r for r in runs if r["system"] == "ours"]
    for metric, (higher, get) in metrics.items():
        mine = get(ours)  # type: ignore[operator]
        if not mine:
            continue
        per_peer: dict = {}
        best: tuple[str, float] | None = None
        for peer in ENV_SYSTEMS[env][1:]:
            theirs = get([r for r in runs if r["system"] == peer])  # type: ignore[operator]
            if not theirs:
                continue
            b = stats.bootstrap_ratio(mine, theirs)
            per_peer[peer] = {"ratio": None if b["ratio"] is None else round(b["ratio"], 3),
                              "interval": None if b["interval"] is None else [round(x, 3) for x in b["interval"]],
                              "bound": b["bound"]}
            med = stats.median(theirs).value
            if best is None or (med > best[1] if higher else med < best[1]):
                best = (peer, med)
        if per_peer:
            out[metric] = {"higher_is_better": higher, "best_peer": best[0] if best else None, "vs": per_peer}
    return out


def versions(py: dict[str, Path | None]) -> dict[str, dict[str, str]]:
    """Package versions as installed in each venv, for the record."""
    pkgs = {"ours": ["srl-runtime", "torch", "gymnasium", "numpy", "ale-py"],
            "sample_factory": ["sample-factory", "torch", "gymnasium", "numpy", "ale-py"],
            "cleanrl": ["cleanrl", "torch", "gym", "numpy", "stable-baselines3"],
            "rllib": ["ray", "torch", "gymnasium", "numpy"]}
    out = {}
    for name, names in pkgs.items():
        p = py.get(name)
        if not p or not Path(p).exists():
            continue
        code = "import importlib.metadata as m, json, sys\nd={}\nfor p in sys.argv[1:]:\n try: d[p]=m.version(p)\n except Exception: pass\nprint(json.dumps(d))"
        r = subprocess.run([str(p), "-c", code, *names], capture_output=True, text=True, timeout=60)
        out[name] = json.loads(r.stdout) if r.returncode == 0 else {}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="3 seeds per case, short caps: <= 25 min on 2 cores")
    group.add_argument("--test", action="store_true", help="1 seed, tiny caps: proves every command runs and parses")
    parser.add_argument("--cache", default=os.environ.get("SRL_BENCH_CACHE", str(Path.home() / ".cache/srl-bench")))
    parser.add_argument("--srl", default=os.environ.get("SRL_BIN", ""))
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--parts", default="ceiling,bound,architecture,train", help="comma list of ceiling,bound,architecture,train")
    parser.add_argument("--systems", default="", help="comma list: run only these systems (default: all)")
    parser.add_argument("--solve-cap", type=float, help="override the mode's CartPole cap (seconds from launch)")
    parser.add_argument("--results", default=str(BENCH / "results"))
    args = parser.parse_args()

    mode = "quick" if args.quick else "test" if args.test else "full"
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    parts = set(args.parts.split(","))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    cache = Path(args.cache)
    work = cache / "work" / stamp  # run dirs and logs: outside the repo, like the venvs
    srl = args.srl if args.srl and Path(args.srl).exists() else None
    only = set(args.systems.split(",")) if args.systems else None
    bench = Bench(mode, cache, srl, work, only)
    if args.solve_cap:
        bench.cfg = {**bench.cfg, "solve_cap": args.solve_cap}
    plan = bench.plan(cases, parts)
    log(f"{mode} run, work dir {work}, load average {load_average()}")
    log(f"planned budget (worst case, every run to its cap), seconds: {json.dumps(plan)}")
    if "ceiling" in parts:
        bench.ceiling()
    if "bound" in parts:
        bench.bound(cases)
    if "architecture" in parts:
        bench.run_architecture()
    if "train" in parts:
        for case in cases:
            bench.train_case(case)

    result = {
        "bench": "srl-vs-peers", "mode": mode, "timestamp": stamp, "cores": bench.cores,
        "wall_seconds": round(time.monotonic() - bench.started, 1), "load_average_end": load_average(),
        "planned_budget_s": plan, "cases": bench.summary(cases) if "train" in parts else {},
        "ceilings": ceiling_summary(bench.ceilings), "bounds": bench.bounds, "architecture": bench.architecture,
        "gaps": bench.gaps,
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{stamp}.json"
    png_path = results / f"{stamp}.png"
    full = {**result, "versions": versions(bench.py), "runs": bench.runs, "ceiling_runs": bench.ceilings}
    json_path.write_text(json.dumps(full, indent=2) + "\n")
    chart = subprocess.run([sys.executable, str(BENCH / "chart.py"), str(json_path), str(png_path)], capture_output=True, text=True)
    if chart.returncode == 0:
        if mode != "test":  # latest.* is what docs/benchmarks.md shows: never a test run
            shutil.copyfile(png_path, results / "latest.png")
            shutil.copyfile(json_path, results / "latest.json")
        result["chart"] = str(png_path.relative_to(REPO)) if png_path.is_relative_to(REPO) else str(png_path)
    else:
        log(f"chart failed: {chart.stderr.strip()[-500:]}")
    result["results"] = str(json_path.relative_to(REPO)) if json_path.is_relative_to(REPO) else str(json_path)
    print(json.dumps(result, separators=(",", ":")), flush=True)


def ceiling_summary(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["env"], {}).setdefault(r["system"], []).append(r["frames_per_s"])
    return {env: {name: {"median": round(stats.median_of(v), 1), "values": v} for name, v in d.items()} for env, d in out.items()}


if __name__ == "__main__":
    main()
