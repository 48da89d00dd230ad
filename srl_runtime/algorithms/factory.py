"""The learner an experiment's `algorithm` block asks for."""

from __future__ import annotations

from srl_runtime.algorithms.impala import ImpalaLearner
from srl_runtime.algorithms.learner import Learner
from srl_runtime.algorithms.ppg import PPGLearner
from srl_runtime.algorithms.ppo import PPOLearner
from srl_runtime.config.experiment import AlgorithmSpec
from srl_runtime.policies.policy import Policy


def make_learner(policy: Policy, algorithm: AlgorithmSpec, *, total_train_steps: int | None = None) -> Learner:
    """IMPALA if `impala` is set, PPG (PPO + auxiliary phases) if `ppg` is, otherwise PPO."""
    if algorithm.impala is not None:
        return ImpalaLearner(policy, algorithm.impala, total_train_steps=total_train_steps)
    if algorithm.ppg is not None:
        return PPGLearner(policy, algorithm.ppo, algorithm.ppg, total_train_steps=total_train_steps)
    return PPOLearner(policy, algorithm.ppo, total_train_steps=total_train_steps)
