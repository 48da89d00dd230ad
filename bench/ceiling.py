"""The ceiling: how fast each system's own env stack steps with random actions, one process per core.

Every system's training throughput is a fraction of this. Runs inside any bench venv; --stack names the
stack the system trains on:
  make          one `gym(nasium).make` env per process (Sample Factory's CartPole workers)
  sync-vector   --envs N envs made by `make` in the library's SyncVectorEnv (CleanRL's ppo.py: gym 0.21;
                RLlib's env runners: gymnasium 1.x), stepped together
  sf-atari      Sample Factory's own Atari env (sf_examples.atari.atari_utils.make_atari_env, its
                wrappers: frame skip 4 with max-pool, 84x84 grayscale, 4-frame stack)
  srl           ours: srl_runtime.envs.make_env_batch for the experiment file's environment with its
                envsPerSlot (numpy vector CartPole; ale-py's threaded vector env for Atari); run with
                ours' python and PYTHONPATH=repo
  python bench/ceiling.py --env cartpole|pong --stack make [--envs N] [--experiment F] --seconds 5
Prints one JSON line: {"env", "stack", "procs", "frames_per_s" (total over processes), "library"}.
Pong frames are emulator frames (4 per agent step).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from typing import Any


def _gym() -> Any:
    try:
        import gymnasium as gym
    except ImportError:  # CleanRL's venv has only the old `gym`
        import gym  # type: ignore[no-redef]
    return gym


class _Stepper:
    """Steps a stack with random actions; `step()` returns agent steps taken (over all its envs)."""

    def __init__(self, env_name: str, stack: str, envs: int, experiment: str | None, seed: int) -> None:
        self.frame_skip = 1 if env_name == "cartpole" else 4
        if stack == "srl":
            from srl_runtime.config.load import load_experiment
            from srl_runtime.envs import make_env_batch

            spec = load_experiment(experiment).spec  # type: ignore[arg-type]
            self.batch = make_env_batch(spec.environment, spec.actors.envs_per_slot, seed)
            self.batch.reset()
            n = self.batch.action_space.n
            self.actions = [[(i + k) % n for i in range(self.batch.rows)] for k in range(16)]
            self.library = "srl_runtime " + type(self.batch).__name__
            self.kind = "srl"
            return
        gym = _gym()
        if stack == "sf-atari":
            from sf_examples.atari.atari_utils import make_atari_env
            from sf_examples.atari.train_atari import parse_atari_args

            cfg = parse_atari_args(["--env=atari_pong", "--experiment=ceiling"])
            env = make_atari_env("atari_pong", cfg, None)
            self.library = f"sample_factory make_atari_env, {gym.__name__} {gym.__version__}"
        elif stack == "sync-vector":
            def one() -> Any:
                return self._make(gym, env_name)
            env = gym.vector.SyncVectorEnv([one for _ in range(envs)])
            self.library = f"{gym.__name__} {gym.__version__} SyncVectorEnv x{envs}"
        else:
            env = self._make(gym, env_name)
            self.library = f"{gym.__name__} {gym.__version__} make"
        self.env = env
        self.vector = stack == "sync-vector"
        self.kind = "gym"
        try:
            env.reset(seed=seed)
        except TypeError:  # gym 0.21
            env.seed(seed)
            env.reset()
        env.action_space.seed(seed)

    @staticmethod
    def _make(gym: Any, env_name: str) -> Any:
        if env_name == "cartpole":
            return gym.make("CartPole-v1")
        import ale_py

        if hasattr(gym, "register_envs"):  # gymnasium >= 1 registers ALE ids only on request
            gym.register_envs(ale_py)
        env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
        env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, grayscale_obs=True, noop_max=30)
        stack = getattr(gym.wrappers, "FrameStackObservation", None) or gym.wrappers.FrameStack
        return stack(env, 4)

    def run(self, steps: int) -> int:
        """`steps` stepping calls; agent steps taken."""
        if self.kind == "srl":
            for k in range(steps):
                self.batch.step(self.actions[k % 16])
            return steps * self.batch.rows
        env = self.env
        for _ in range(steps):
            result = env.step(env.action_space.sample())
            if not self.vector and (result[2] or (len(result) == 5 and result[3])):
                env.reset()
        return steps * (env.num_envs if self.vector else 1)


def _worker(env_name: str, stack: str, envs: int, experiment: str | None, seconds: float, seed: int, out: Any) -> None:
    import numpy as np

    stepper = _Stepper(env_name, stack, envs, experiment, seed)
    if stepper.kind == "srl":
        stepper.actions = [np.asarray(a) for a in stepper.actions]
    stepper.run(10)  # warm-up
    agent_steps = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        agent_steps += stepper.run(50)  # the clock is read every 50 calls only
        now = time.perf_counter()
        if now >= deadline:
            break
    out.put((agent_steps * stepper.frame_skip / (now - t0), stepper.library))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", choices=["cartpole", "pong"], required=True)
    parser.add_argument("--stack", choices=["make", "sync-vector", "sf-atari", "srl"], default="make")
    parser.add_argument("--envs", type=int, default=4, help="envs per SyncVectorEnv (sync-vector)")
    parser.add_argument("--experiment", help="ours' experiment file (srl)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(args.env, args.stack, args.envs, args.experiment, args.seconds, i, out))
             for i in range(args.procs)]
    for p in procs:
        p.start()
    rates = [out.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    print(json.dumps({"env": args.env, "stack": args.stack, "procs": args.procs,
                      "frames_per_s": round(sum(r for r, _ in rates), 1), "library": rates[0][1]}))


if __name__ == "__main__":
    main()
