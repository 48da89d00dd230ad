"""How each system is launched for each case, and how its output is read.

Every peer runs unmodified through its documented entry point, from its own venv:
  sample_factory  python -m sf_examples.train_gym_env   (CartPole; its documented example command)
                  python -m sf_examples.atari.train_atari (Pong)
  cleanrl         python -m cleanrl.ppo                  (CleanRL 0.4.8, the last release on PyPI)
  rllib           bench/drivers/rllib_ppo.py             (our driver that only configures PPOConfig)
  ours            srl run bench/experiments/<case>.yaml --summary-json <file>
Only flags are set, and only to put every system on the same footing: CPU, a 2x64 MLP (CartPole) or
the Nature CNN (Pong, every system's default there), a seed, and where logs go.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from runproc import Parser

TARGET = 475.0  # CartPole-v1 counts as solved at a mean return of 475 over the last 100 episodes
WINDOW = 100


@dataclass
class Launch:
    cmd: list[str]
    parser: Parser
    cwd: Path | None = None
    env: dict[str, str] | None = None


def _num(s: str) -> int:
    return int(s.replace(",", ""))


# ---- ours ---------------------------------------------------------------------------------------
_OURS_LINE = re.compile(r"\]\s+frames\s+([\d,]+)\s.*return\s+(\S+)\s+\((\d+) ep\)")


def ours(srl: str, experiment: Path, run_dir: Path) -> Launch:
    def parse(_t: float, line: str) -> tuple[int | None, bool]:
        if line.startswith("srl: stopped (target_mean_return)"):
            return None, True
        m = _OURS_LINE.search(line)
        if not m:
            return None, False
        ret = None if m.group(2) == "n/a" else float(m.group(2))
        solved = ret is not None and ret >= TARGET and int(m.group(3)) >= WINDOW
        return _num(m.group(1)), solved

    cmd = [srl, "run", str(experiment), "--summary-json", str(run_dir / "summary.json"), "--run-dir", str(run_dir / "run")]
    return Launch(cmd, parse, cwd=run_dir)


# ---- Sample Factory -----------------------------------------------------------------------------
_SF_FRAMES = re.compile(r"Total num frames: (\d+)")
_SF_REWARD = re.compile(r"Avg episode reward: \[\(0, '([-\d.naif]+)'\)\]")


def _sf_parse(_t: float, line: str) -> tuple[int | None, bool]:
    m = _SF_FRAMES.search(line)
    if m:
        return int(m.group(1)), False
    m = _SF_REWARD.search(line)
    # SF averages the last `stats_avg` (default 100) episodes: the same window as the target's.
    return None, bool(m) and float(m.group(1)) >= TARGET


def sf_cartpole(py: str, run_dir: Path, seed: int) -> Launch:
    # The example command from sf_examples/train_gym_env.py's docstring, plus: CPU (no GPU here),
    # the bench's 2x64 MLP (SF's default is 512x512), a seed and a train dir.
    cmd = [py, "-m", "sf_examples.train_gym_env", "--algo=APPO", "--use_rnn=False", "--num_envs_per_worker=20",
           "--policy_workers_per_policy=2", "--recurrence=1", "--with_vtrace=False", "--batch_size=512",
           "--reward_scale=0.1", "--save_every_sec=10", "--experiment_summaries_interval=10",
           "--experiment=bench_cartpole", "--env=CartPole-v1",
           "--device=cpu", "--encoder_mlp_layers", "64", "64", f"--seed={seed}", f"--train_dir={run_dir / 'train_dir'}"]
    return Launch(cmd, _sf_parse, cwd=run_dir)


def sf_pong(py: str, run_dir: Path, workers: int) -> Launch:
    # SF's Atari example with its Atari defaults (Nature CNN "convnet_atari", frame skip 4, PPO
    # settings), on CPU, with one rollout worker per core and double-buffered sampling
    # (worker_num_splits=2), SF's own advice for throughput on few cores. SF's synchronous PPO
    # needs workers x envs x rollout (128) = batches (4) x batch size (256), so with 8 envs per
    # core in its defaults (8 workers x 1 env), this is 8 / workers envs per worker.
    envs_per_worker = max(2, 8 // workers)
    cmd = [py, "-m", "sf_examples.atari.train_atari", "--env=atari_pong", "--experiment=bench_pong",
           "--device=cpu", f"--num_workers={workers}", f"--num_envs_per_worker={envs_per_worker}", "--worker_num_splits=2",
           f"--train_dir={run_dir / 'train_dir'}"]
    return Launch(cmd, _sf_parse, cwd=run_dir)


# ---- CleanRL ------------------------------------------------------------------------------------
_CLEANRL_LINE = re.compile(r"global_step=(\d+), episode_reward=([-\d.]+)")


def cleanrl_cartpole(py: str, run_dir: Path, seed: int) -> Launch:
    window: deque[float] = deque(maxlen=WINDOW)

    def parse(_t: float, line: str) -> tuple[int | None, bool]:
        m = _CLEANRL_LINE.search(line)
        if not m:
            return None, False
        # ppo.py prints the first finished episode of each vector step, so this window is a sample
        # of the last ~100 episodes rather than all of them; close enough at 475 where all are long.
        window.append(float(m.group(2)))
        return int(m.group(1)), len(window) == WINDOW and sum(window) / WINDOW >= TARGET

    # ppo.py's own network is already the 2x64 tanh MLP. 500k steps is the total its later releases
    # default to for CartPole; the learning-rate annealing runs over it.
    cmd = [py, "-m", "cleanrl.ppo", "--gym-id", "CartPole-v1", f"--seed={seed}", "--total-timesteps=500000",
           "--cuda=False"]
    return Launch(cmd, parse, cwd=run_dir)


# ---- RLlib --------------------------------------------------------------------------------------
def rllib_cartpole(py: str, driver: Path, run_dir: Path, seed: int, cap: float) -> Launch:
    def parse(_t: float, line: str) -> tuple[int | None, bool]:
        if not line.startswith("{"):
            return None, False
        d = json.loads(line)
        ret = d.get("mean_return")
        return int(d["env_steps"]), ret is not None and ret >= TARGET

    cmd = [py, str(driver), f"--seed={seed}", f"--max-seconds={cap}"]
    # No usage-stats upload attempt (there is no network here to send it anyway).
    return Launch(cmd, parse, cwd=run_dir, env={"RAY_USAGE_STATS_ENABLED": "0"})
