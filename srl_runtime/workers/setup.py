"""Set-up shared by the workers that build a policy from the experiment: a probe env, the policy, the
stream schema; and what their progress reads before that set-up ran."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Protocol

from srl_runtime.config.experiment import ExperimentSpec
from srl_runtime.envs import make_env_batch
from srl_runtime.policies import Policy
from srl_runtime.streams.schema import StreamSchema, schema_of


def probe_policy(spec: ExperimentSpec, device: str, seed: int) -> tuple[Policy, StreamSchema]:
    """A policy for the experiment's environment on `device`, and the experiment's stream schema
    (from one probe env, closed again)."""
    probe = make_env_batch(spec.environment, 1, seed=seed)
    try:
        policy = Policy(
            probe.observation_space, probe.action_space, spec.policy, device=device, critic_obs_space=probe.critic_obs_space
        )
        return policy, schema_of(spec, probe)
    finally:
        probe.close()


class CountsDrops(Protocol):
    """A stream endpoint's drop counts (streams.wire.DropCounter)."""

    @property
    def dropped(self) -> int: ...

    @property
    def drop_reasons(self) -> collections.Counter[str]: ...


class CountsRejections(Protocol):
    """A parameter DB's count of stored versions refused as unreadable."""

    @property
    def rejected_checkpoints(self) -> int: ...


class CountsUpdates(Protocol):
    """A learner's train steps and skipped updates."""

    @property
    def train_steps(self) -> int: ...

    @property
    def skipped_updates(self) -> int: ...


class HasVersion(Protocol):
    """Something that holds a policy version (a Policy, a ParameterFollower)."""

    @property
    def version(self) -> int: ...


@dataclass
class Unconfigured:
    """Zero counts and no version: what a worker's progress reads until configure built the real
    stream endpoint, parameter DB, learner and policy (a worker can exit before configure ends)."""

    version: int = -1
    dropped: int = 0
    drop_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    rejected_checkpoints: int = 0
    train_steps: int = 0
    skipped_updates: int = 0


@dataclass
class ProgressSources:
    """Where a worker's progress reads counts kept by the objects configure builds; until then,
    `Unconfigured` ones."""

    stream: CountsDrops = field(default_factory=Unconfigured)
    param_db: CountsRejections = field(default_factory=Unconfigured)
    learner: CountsUpdates = field(default_factory=Unconfigured)
    policy: HasVersion = field(default_factory=Unconfigured)
