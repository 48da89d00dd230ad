"""Policies: the ActorCritic network and the numpy-facing `Policy` wrapper."""

from srl_runtime.policies.networks import ActorCritic
from srl_runtime.policies.normalizer import RunningMeanStd
from srl_runtime.policies.policy import Policy

__all__ = ["ActorCritic", "Policy", "RunningMeanStd"]
