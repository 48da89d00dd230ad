"""How each system is launched for each case and arm, and how its output is read.

Every peer runs unmodified through its documented entry point, from its own venv:
  sample_factory  python -m sf_examples.train_gym_env    (CartPole)
                  python -m sf_examples.atari.train_atari (Pong)
  cleanrl         python -m cleanrl.ppo                   (CleanRL 0.4.8, the last release on PyPI)
  rllib           bench/drivers/rllib_ppo.py              (our driver that only configures PPOConfig)
  ours            srl run bench/experiments/<env>-<arm>.yaml
Two arms (see docs/benchmarks.md for every setting):
  matched  one shared synchronous PPO configuration: CleanRL ppo.py's defaults on CartPole, the Atari
           PPO settings Sample Factory took from CleanRL on Pong (SF's Atari defaults);
  best     each system's own published tuned / throughput configuration, scaled to the cores.
Episode returns are not read from here: every system's episodes go to per-episode CSV logs
(episodes.py) and the harness computes the window itself. The parsers read progress counters only:
generated env frames and, where the system reports them, trained frames.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from runproc import Parser, Progress

ARMS = ("matched", "best")
CLEANRL_TOTAL_STEPS = 500_000  # ppo.py's lr anneals to 0 over the run; later releases' CartPole default


@dataclass
class Launch:
    cmd: list[str]
    parser: Parser
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    episodes_dir: Path | None = None  # where the run's per-episode CSVs land
    episodes_glob: str = "episodes-*.csv"
    trained_equals_generated: bool = False  # on-policy with every generated frame trained on
    config: str = ""  # what runs, in words (for the results file)


def _num(s: str) -> int:
    return int(s.replace(",", ""))


def _peer_episodes(run_dir: Path) -> tuple[Path, dict[str, str]]:
    d = run_dir / "episodes"
    return d, {"SRL_BENCH_EPISODE_DIR": str(d)}


# ---- ours ---------------------------------------------------------------------------------------
_OURS_LINE = re.compile(r"\]\s+frames\s+([\d,]+)\s")


def ours(srl: str, experiment: Path, run_dir: Path) -> Launch:
    """Trained frames come from <run dir>/metrics.csv after the run (interface 2), not from stdout."""
    def parse(_t: float, line: str) -> tuple[Progress | None, bool]:
        m = _OURS_LINE.search(line)
        return (Progress(_num(m.group(1))) if m else None), False

    run = run_dir / "run"
    cmd = [srl, "run", str(experiment), "--summary-json", str(run_dir / "summary.json"), "--run-dir", str(run)]
    return Launch(cmd, parse, cwd=run_dir, episodes_dir=run / "episodes", episodes_glob="actor-*.csv",
                  config=f"srl run {experiment.name}")


# ---- Sample Factory -----------------------------------------------------------------------------
# "Total num frames" is the learner's env_steps: frames it trained on (x frame skip where SF's
# summaries_use_frameskip is on, its Atari default). "Samples" counts observations its inference
# workers processed: generated agent steps (not x frame skip).
_SF_LINE = re.compile(r"Total num frames: (\d+)\..*Samples: (\d+)")


def _sf_parser(frame_skip: int) -> Parser:
    def parse(_t: float, line: str) -> tuple[Progress | None, bool]:
        m = _SF_LINE.search(line)
        if not m:
            return None, False
        return Progress(generated=int(m.group(2)) * frame_skip, trained=int(m.group(1))), False

    return parse


def _sf_common(run_dir: Path, seed: int, experiment: str) -> list[str]:
    return ["--device=cpu", f"--seed={seed}", f"--experiment={experiment}", f"--train_dir={run_dir / 'train_dir'}"]


def sf_cartpole(py: str, run_dir: Path, seed: int, arm: str, cores: int) -> Launch:
    if arm == "best":
        # The example command of sf_examples/train_gym_env.py's docstring verbatim (its default
        # 512x512 ELU encoder, APPO, async), with workers = cores (SF's own default) stated.
        flags = ["--algo=APPO", "--use_rnn=False", "--num_envs_per_worker=20", "--policy_workers_per_policy=2",
                 "--recurrence=1", "--with_vtrace=False", "--batch_size=512", "--reward_scale=0.1",
                 "--save_every_sec=10", "--experiment_summaries_interval=10", f"--num_workers={cores}"]
        config = "SF docstring CartPole command, num_workers=cores"
    else:
        # CleanRL ppo.py's settings in SF's own flags: synchronous, 4 envs (2 workers x 2) x 128 steps =
        # one 512 batch of 4 minibatches x 128, 4 epochs, lr 2.5e-4 (constant: SF's command line offers no
        # linear decay; its Atari defaults reach one only through set_defaults), entropy 0.01,
        # separate 2x64 tanh nets, clip 0.2, value clip 0.2, GAE 0.95, gamma 0.99, grad norm 0.5, Adam
        # eps 1e-5, no input / return normalisation, minibatches shuffled.
        flags = ["--algo=APPO", "--async_rl=False", "--num_workers=2", "--num_envs_per_worker=2",
                 "--worker_num_splits=1", "--rollout=128", "--batch_size=128", "--num_batches_per_epoch=4",
                 "--num_epochs=4", "--learning_rate=0.00025", "--lr_schedule=constant",
                 f"--train_for_env_steps={CLEANRL_TOTAL_STEPS}", "--exploration_loss_coeff=0.01",
                 "--actor_critic_share_weights=False", "--nonlinearity=tanh", "--encoder_mlp_layers", "64", "64",
                 "--ppo_clip_ratio=0.2", "--ppo_clip_value=0.2", "--value_loss_coeff=0.5", "--gae_lambda=0.95",
                 "--gamma=0.99", "--max_grad_norm=0.5", "--adam_eps=1e-5", "--normalize_input=False",
                 "--normalize_returns=False", "--shuffle_minibatches=True", "--use_rnn=False", "--recurrence=1",
                 "--with_vtrace=False", "--reward_scale=1.0"]
        config = "SF configured to CleanRL ppo.py's settings, synchronous"
    d, env = _peer_episodes(run_dir)
    cmd = [py, "-m", "sf_examples.train_gym_env", "--env=CartPole-v1", *flags, *_sf_common(run_dir, seed, "bench_cartpole")]
    return Launch(cmd, _sf_parser(1), cwd=run_dir, env=env, episodes_dir=d, config=config)


def sf_pong(py: str, run_dir: Path, seed: int, arm: str, cores: int) -> Launch:
    if arm == "best":
        # SF's documented "better parameters (more envs, double buffering, async learning)" for Atari
        # (docs/09-environment-integrations/atari.md), num_workers 16 scaled to the cores; its wandb
        # and run-length flags left out; summaries_use_frameskip left at the Atari default (frames).
        flags = [f"--num_workers={cores}", "--num_envs_per_worker=8", "--worker_num_splits=2", "--rollout=32",
                 "--normalize_input=True", "--normalize_returns=True", "--serial_mode=False", "--async_rl=True",
                 "--batch_size=1024"]
        config = "SF atari.md 'better parameters' (async), num_workers=cores"
    else:
        flags = []  # SF's Atari defaults: CleanRL's Atari PPO settings, synchronous, 8 workers x 1 env
        config = "SF Atari defaults (CleanRL-matched, synchronous)"
    d, env = _peer_episodes(run_dir)
    cmd = [py, "-m", "sf_examples.atari.train_atari", "--env=atari_pong", *flags, *_sf_common(run_dir, seed, "bench_pong")]
    return Launch(cmd, _sf_parser(4), cwd=run_dir, env=env, episodes_dir=d, config=config)


# ---- CleanRL ------------------------------------------------------------------------------------
_CLEANRL_LINE = re.compile(r"global_step=(\d+)")


def cleanrl_cartpole(py: str, run_dir: Path, seed: int) -> Launch:
    """ppo.py as released (its defaults are the matched arm's settings): the same run in both arms."""
    def parse(_t: float, line: str) -> tuple[Progress | None, bool]:
        m = _CLEANRL_LINE.search(line)
        return (Progress(int(m.group(1))) if m else None), False

    d, env = _peer_episodes(run_dir)
    cmd = [py, "-m", "cleanrl.ppo", "--gym-id", "CartPole-v1", f"--seed={seed}",
           f"--total-timesteps={CLEANRL_TOTAL_STEPS}", "--cuda=False"]
    return Launch(cmd, parse, cwd=run_dir, env=env, episodes_dir=d, trained_equals_generated=True,
                  config="CleanRL 0.4.8 ppo.py defaults, --total-timesteps=500000")


# ---- RLlib --------------------------------------------------------------------------------------
def rllib_cartpole(py: str, driver: Path, run_dir: Path, seed: int, arm: str, cap: float) -> Launch:
    def parse(_t: float, line: str) -> tuple[Progress | None, bool]:
        if not line.startswith("{"):
            return None, False
        return Progress(int(json.loads(line)["env_steps"])), False

    d, env = _peer_episodes(run_dir)
    cmd = [py, str(driver), f"--arm={arm}", f"--seed={seed}", f"--max-seconds={cap}"]
    # No usage-stats upload attempt (there is no network here to send it anyway).
    # Trained = generated: synchronous on-policy PPO trains on every sampled step (RLlib's own
    # num_env_steps_trained_lifetime counts every epoch's minibatch passes, ~17x the sampled steps).
    return Launch(cmd, parse, cwd=run_dir, env={**env, "RAY_USAGE_STATS_ENABLED": "0"}, episodes_dir=d,
                  trained_equals_generated=True, config=f"bench/drivers/rllib_ppo.py --arm={arm}")
