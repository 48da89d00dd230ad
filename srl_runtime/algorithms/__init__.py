"""Learning algorithms."""

from srl_runtime.algorithms.gae import gae
from srl_runtime.algorithms.ppo import PPOLearner

__all__ = ["PPOLearner", "gae"]
