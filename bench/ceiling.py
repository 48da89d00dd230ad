"""The ceiling: how fast the bare environment steps with random actions, one process per core.

Every system's training throughput is a fraction of this. Runs inside any bench venv (gym 0.21,
gymnasium 0.29 or gymnasium 1.x; the old and new step/reset signatures are both handled) so the
ceiling of each system's own environment stack can be read off.
  python bench/ceiling.py --env cartpole|pong --seconds 5 [--procs N]
Prints one JSON line: {"env": ..., "procs": N, "frames_per_s": total over processes, "library": ...}.
Pong frames count emulator frames (4 per agent step, the same frame skip 4 the training runs use),
after the standard preprocessing (max-pool, 84x84 grayscale, 4-frame stack).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time


def _make(env_name: str):
    try:
        import gymnasium as gym
    except ImportError:  # CleanRL's venv has only the old `gym`
        import gym  # type: ignore[no-redef]
    if env_name == "cartpole":
        return gym.make("CartPole-v1"), 1, gym.__name__ + " " + gym.__version__
    import ale_py

    if hasattr(gym, "register_envs"):  # gymnasium >= 1 registers ALE ids only on request
        gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, grayscale_obs=True, noop_max=30)
    stack = getattr(gym.wrappers, "FrameStackObservation", None) or gym.wrappers.FrameStack
    return stack(env, 4), 4, f"{gym.__name__} {gym.__version__}, ale-py {ale_py.__version__}"


def _worker(env_name: str, seconds: float, seed: int, out: mp.Queue) -> None:
    env, frames_per_step, lib = _make(env_name)
    reset = env.reset(seed=seed) if "seed" in env.reset.__code__.co_varnames else env.reset()
    del reset
    env.action_space.seed(seed)
    steps = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        # Check the clock every 100 steps only: time.perf_counter is not free at 100k steps/s.
        for _ in range(100):
            result = env.step(env.action_space.sample())
            done = result[2] or (len(result) == 5 and result[3])
            if done:
                env.reset()
        steps += 100
        now = time.perf_counter()
        if now >= deadline:
            break
    out.put((steps * frames_per_step / (now - t0), lib))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", choices=["cartpole", "pong"], required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(args.env, args.seconds, i, out)) for i in range(args.procs)]
    for p in procs:
        p.start()
    rates = [out.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    print(json.dumps({"env": args.env, "procs": args.procs, "frames_per_s": round(sum(r for r, _ in rates), 1),
                      "library": rates[0][1]}))


if __name__ == "__main__":
    main()
