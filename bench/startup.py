"""Start-up timeline of `srl run`: when each process reaches each step, from launch to the first episode.

    python bench/startup.py [--repeat 5] [--experiment bench/experiments/cartpole-best.yaml]
                            [--repo DIR --repo DIR2 ...]

Each repetition launches `python -m srl_runtime.cli run` with $SRL_STARTUP_TRACE set, so the CLI, the
fork server and every worker append their marks (srl_runtime/timeline.py) to one file; the run is
interrupted once the actor finished an episode and the trainer trained once (or after --timeout).
Reported, in seconds since launch: every mark (`<process>:<event>`, e.g. `actor-0:configured`) and
`startup_s`, the benchmark's start-up figure (bench/harness.py: first progress line with frames > 0
or first episode end in episodes/actor-0.csv, whichever is first). With several --repo checkouts
(e.g. a worktree of the commit before a change and this one) the runs alternate between them, so a
before/after comparison shares the machine's load. Prints one JSON line on stdout:
{"repeat": N, "repos": {DIR: {"median": {mark: s}, "startup_s": s, "runs": [...]}}}, and a table of
the medians on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROGRESS_LINE = re.compile(r"\]\s+frames\s+([\d,]+)\s")  # bench/systems.py's parser of ours' progress lines
TRACE_ENV = "SRL_STARTUP_TRACE"
# A run counts as started once these marks are in the trace (then it is interrupted).
DONE_MARKS = ("actor-0:first_episode_end", "trainer-0:first_samples")


def experiment_copy(source: Path, out: Path, wall_seconds: float) -> Path:
    """The experiment with a wall-clock stop (a run that never starts still ends)."""
    doc = yaml.safe_load(source.read_text())
    doc["spec"].setdefault("stop", {})["wallSeconds"] = wall_seconds
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def read_trace(path: Path, launch: float) -> dict[str, float]:
    """`label:event` -> seconds since launch of its first occurrence."""
    marks: dict[str, float] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return marks
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        t, _pid, label, event = parts
        marks.setdefault(f"{label}:{event}", round(float(t) - launch, 4))
    return marks


def first_episode_end(run_dir: Path) -> float | None:
    """Unix end time of the first episode in actor 0's episode log (None if none was written)."""
    try:
        with open(run_dir / "episodes" / "actor-0.csv") as f:
            next(f)  # header
            row = next(f, "")
    except (FileNotFoundError, StopIteration):
        return None
    try:
        return float(row.split(",")[0])
    except ValueError:
        return None


def first_progress(lines: list[tuple[float, str]]) -> float | None:
    """Seconds since launch of the first progress line with frames > 0 (None if none came)."""
    for t, line in lines:
        m = PROGRESS_LINE.search(line)
        if m and int(m.group(1).replace(",", "")) > 0:
            return t
    return None


def _stamp_lines(proc: subprocess.Popen, launch: float, out: list[tuple[float, str]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append((time.monotonic() - launch, line.rstrip("\n")))


def stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGINT to the run's process group (the launcher stops calmly), then SIGKILL after `grace` s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def one_run(repo: Path, experiment: Path, work: Path, timeout: float) -> dict:
    """Launch one `srl run` from `repo`, wait for DONE_MARKS, stop it; its marks and startup_s."""
    work.mkdir(parents=True, exist_ok=True)
    trace, run_dir = work / "trace.tsv", work / "run"
    exp = experiment_copy(experiment, work / "experiment.yaml", timeout + 30)
    path = os.environ.get("PYTHONPATH", "")
    env = {
        **os.environ, TRACE_ENV: str(trace), "OMP_NUM_THREADS": "1",  # as bench/harness.py runs ours
        "PYTHONPATH": os.pathsep.join(p for p in (str(repo), str(repo / "operator"), path) if p),
    }
    cmd = [sys.executable, "-m", "srl_runtime.cli", "run", str(exp), "--run-dir", str(run_dir), "--overwrite"]
    lines: list[tuple[float, str]] = []
    wall_launch, launch = time.time(), time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    reader = threading.Thread(target=_stamp_lines, args=(proc, launch, lines), daemon=True)
    reader.start()
    deadline = launch + timeout
    marks: dict[str, float] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        marks = read_trace(trace, launch)
        if all(m in marks for m in DONE_MARKS):
            break
    time.sleep(1.2)  # the actor flushes its episode log with its next progress report (1 s)
    stop(proc, grace=30.0)
    reader.join(timeout=5)
    marks = read_trace(trace, launch)
    first_line = first_progress(lines)
    ep_end = first_episode_end(run_dir)
    firsts = [t for t in (first_line, None if ep_end is None else ep_end - wall_launch) if t is not None]
    return {
        "startup_s": round(min(firsts), 3) if firsts else None,
        "first_progress_line_s": None if first_line is None else round(first_line, 3),
        "marks": dict(sorted(marks.items(), key=lambda kv: kv[1])),
        "exit_code": proc.returncode,
    }


def median_marks(runs: list[dict]) -> dict[str, float]:
    """Median of every mark over the runs that have it, ordered by time."""
    names = {name for r in runs for name in r["marks"]}
    med = {n: round(statistics.median(r["marks"][n] for r in runs if n in r["marks"]), 3) for n in names}
    return dict(sorted(med.items(), key=lambda kv: kv[1]))


def _median(values: list[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return round(statistics.median(seen), 3) if seen else None


def summarize(runs: list[dict]) -> dict:
    return {
        "startup_s": _median([r["startup_s"] for r in runs]),
        "first_progress_line_s": _median([r["first_progress_line_s"] for r in runs]),
        "startup_s_runs": [r["startup_s"] for r in runs],
        "median": median_marks(runs),
        "runs": runs,
    }


def table(result: dict[str, dict]) -> str:
    """Medians side by side, one row per mark (ordered by the first repo's times)."""
    repos = list(result)
    rows = list(dict.fromkeys(name for r in repos for name in result[r]["median"]))
    out = [f"{'mark':40s}" + "".join(f"{Path(r).name[-14:]:>16s}" for r in repos)]
    for name in rows:
        cells = "".join(f"{result[r]['median'].get(name, float('nan')):16.3f}" for r in repos)
        out.append(f"{name:40s}{cells}")
    for key in ("first_progress_line_s", "startup_s"):
        out.append(f"{key:40s}" + "".join(f"{result[r][key] or float('nan'):16.3f}" for r in repos))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", type=Path, default=BENCH / "experiments" / "cartpole-best.yaml")
    ap.add_argument("--repeat", type=int, default=5, help="runs per checkout")
    ap.add_argument("--repo", type=Path, action="append", help="checkout to run from (repeatable; default: this one)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one run may take to start")
    ap.add_argument("--work", type=Path, help="where run directories go (default: a temporary directory)")
    args = ap.parse_args()
    repos = [r.resolve() for r in (args.repo or [REPO])]
    work = args.work or Path(tempfile.mkdtemp(prefix="srl-startup-"))
    runs: dict[Path, list[dict]] = {r: [] for r in repos}
    for i in range(args.repeat):
        for j in range(len(repos)):
            repo = repos[(i + j) % len(repos)]  # alternate which checkout goes first
            runs[repo].append(one_run(repo, args.experiment.resolve(), work / f"{repos.index(repo)}-{i}", args.timeout))
            print(f"startup: {repo} run {i + 1}: {runs[repo][-1]['startup_s']} s", file=sys.stderr, flush=True)
    result = {str(r): summarize(runs[r]) for r in repos}
    print(table(result), file=sys.stderr)
    print(json.dumps({"repeat": args.repeat, "experiment": str(args.experiment), "load_average": os.getloadavg(),
                      "repos": result}))  # fmt: skip


if __name__ == "__main__":
    main()
