"""RLlib PPO on CartPole-v1, configured through RLlib's documented PPOConfig API and nothing else.

RLlib has no command-line trainer for a single run any more, so this driver only builds the config
(the settings of RLlib's own tuned CartPole PPO example, with the bench's 2x64 tanh MLP), calls
`algo.train()` in a loop, and prints one JSON progress line per iteration for the harness:
    {"env_steps": N, "mean_return": R}   (R: RLlib's mean over its last 100 episodes)
It stops on its own (target return or wall seconds) so Ray shuts down cleanly.
Runs inside the bench's RLlib venv:  python bench/drivers/rllib_ppo.py --seed 1 --max-seconds 120
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--target-return", type=float, default=475.0)
    parser.add_argument("--env-runners", type=int, default=1)
    args = parser.parse_args()

    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    t0 = time.monotonic()
    # Local mode on this machine only: no dashboard, nothing listening beyond loopback.
    ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False, configure_logging=False)
    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=args.env_runners)
        .training(lr=0.0003, num_epochs=6, vf_loss_coeff=0.01)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh", vf_share_layers=False))
        .debugging(seed=args.seed)
    )
    algo = config.build_algo()
    try:
        while time.monotonic() - t0 < args.max_seconds:
            result = algo.train()
            runners = result.get("env_runners", {})
            steps = runners.get("num_env_steps_sampled_lifetime") or result.get("num_env_steps_sampled_lifetime", 0)
            ret = runners.get("episode_return_mean")
            print(json.dumps({"env_steps": int(steps), "mean_return": ret}), flush=True)
            if ret is not None and ret >= args.target_return:
                break
    finally:
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
