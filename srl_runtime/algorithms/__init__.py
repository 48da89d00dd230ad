"""Learning algorithms."""

from srl_runtime.algorithms.factory import make_learner
from srl_runtime.algorithms.gae import gae
from srl_runtime.algorithms.impala import ImpalaLearner
from srl_runtime.algorithms.learner import Learner
from srl_runtime.algorithms.ppg import PPGLearner
from srl_runtime.algorithms.ppo import PPOLearner
from srl_runtime.algorithms.vtrace import vtrace

__all__ = ["ImpalaLearner", "Learner", "PPGLearner", "PPOLearner", "gae", "make_learner", "vtrace"]
