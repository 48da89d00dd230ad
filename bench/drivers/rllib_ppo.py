"""RLlib PPO on CartPole-v1, configured through RLlib's documented PPOConfig API and nothing else.

RLlib has no command-line trainer for a single run any more, so this driver only builds the config,
calls `algo.train()` in a loop, and prints one JSON progress line per iteration for the harness:
    {"env_steps": N, "trained_steps": M, "mean_return": R}
(N: env steps sampled; M: RLlib's num_env_steps_trained_lifetime, which counts every epoch's
minibatch passes, for the log only; R: RLlib's own mean over its last 100 episodes, for the log only:
the harness computes the window itself from the episode recorder).
Two arms:
  best     RLlib's own tuned CartPole example verbatim (rllib/examples/algorithms/ppo/cartpole_ppo.py:
           lr 3e-4, 6 epochs, vf_loss_coeff 0.01, one 32-unit linear layer shared by policy and value;
           every other setting RLlib's default, 2 env runners included)
  matched  CleanRL ppo.py's settings in PPOConfig terms: 4 envs x 128 steps in one env runner, batch
           512, 4 epochs x minibatch 128, lr 2.5e-4 annealed linearly to 0 over 500k steps, entropy
           0.01, clip 0.2, GAE 0.95, gamma 0.99, grad norm 0.5, no KL term, separate 2x64 tanh nets
It stops on its own after --max-seconds so Ray shuts down cleanly.
Runs inside the bench's RLlib venv:  python bench/drivers/rllib_ppo.py --arm best --seed 11 --max-seconds 120
"""

from __future__ import annotations

import argparse
import json
import time

MATCHED_TOTAL_STEPS = 500_000  # CleanRL's run length in the bench; its lr anneals to 0 over it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arm", choices=["best", "matched"], default="best")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()

    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    t0 = time.monotonic()
    # Local mode on this machine only: no dashboard, nothing listening beyond loopback.
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    config = PPOConfig().environment("CartPole-v1").debugging(seed=args.seed)
    if args.arm == "best":
        config = config.training(lr=0.0003, num_epochs=6, vf_loss_coeff=0.01).rl_module(
            model_config=DefaultModelConfig(fcnet_hiddens=[32], fcnet_activation="linear", vf_share_layers=True))
    else:
        config = (
            config.env_runners(num_env_runners=1, num_envs_per_env_runner=4, rollout_fragment_length=128)
            .training(train_batch_size_per_learner=512, minibatch_size=128, num_epochs=4,
                      lr=[[0, 2.5e-4], [MATCHED_TOTAL_STEPS, 0.0]], entropy_coeff=0.01, clip_param=0.2,
                      lambda_=0.95, gamma=0.99, grad_clip=0.5, grad_clip_by="global_norm", vf_loss_coeff=0.5,
                      use_kl_loss=False)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                                       vf_share_layers=False))
        )
    algo = config.build_algo()
    try:
        while time.monotonic() - t0 < args.max_seconds:
            result = algo.train()
            runners = result.get("env_runners", {})
            steps = runners.get("num_env_steps_sampled_lifetime") or result.get("num_env_steps_sampled_lifetime", 0)
            learners = result.get("learners", {}).get("__all_modules__", {})
            trained = learners.get("num_env_steps_trained_lifetime") or result.get("num_env_steps_trained_lifetime")
            print(json.dumps({"env_steps": int(steps), "trained_steps": None if trained is None else int(trained),
                              "mean_return": runners.get("episode_return_mean"),
                              "episodes": runners.get("num_episodes_lifetime")}), flush=True)
    finally:
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
