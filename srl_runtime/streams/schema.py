"""What stream messages must contain, derived from the experiment and its environment's spaces.

The wire format (`wire.py`) only guarantees well-formed numpy arrays. The schema says which arrays a
message carries (names), their dtypes, their shapes, which values are allowed (action indices,
policy versions) and which must be finite. It is the one place these facts live: actors build their
buffers from it, policy workers cast their answers to it, and every receiver checks each message
against it and drops (and counts, by reason) what does not match, never raising past the stream:

- policy workers check inference requests (`check_request`),
- actors check inference replies (`check_reply`, rows must match the request),
- trainers check samples (`check_sample`); a sample with NaN/inf is dropped with reason
  `non_finite`, which the trainer reports as a skipped non-finite sample.

Checks are vectorised numpy over whole arrays (no per-element Python) and go from cheap to dear:
names, dtypes and shapes first, value ranges and finiteness last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from srl_runtime.api.env import space_shape
from srl_runtime.config.experiment import ExperimentSpec
from srl_runtime.streams.wire import Arrays, MalformedMessage

# Drop reasons (counted per receiver; "wire" is MalformedMessage's own).
NAMES, DTYPE, SHAPE, ROWS, RANGE, META, NON_FINITE = "names", "dtype", "shape", "rows", "range", "meta", "non_finite"


class ContentError(MalformedMessage):
    """A message in a valid wire format whose contents do not match the schema."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class ArraySpec:
    """One named array: dtype, shape after the leading (rows, or time x batch) dims, allowed values."""

    dtype: np.dtype
    shape: tuple[int, ...]
    finite: bool = False  # NaN/inf not allowed (float arrays)
    low: int | None = None  # smallest allowed value (integer arrays)
    high: int | None = None  # largest allowed value (integer arrays)


class _Checks:
    """One spec dict compiled for checking: what `_check_arrays` and `_check_values` walk per message.

    Made once per schema so a check does no per-message work beyond comparing what arrived with
    precomputed (name, dtype, trailing shape) entries and running the value checks that apply.
    """

    def __init__(self, specs: dict[str, ArraySpec]) -> None:
        self.specs = specs
        self.names = frozenset(specs)
        self.layout = tuple((name, spec.dtype, spec.shape) for name, spec in specs.items())
        self.ranges = tuple((name, spec.low, spec.high) for name, spec in specs.items() if spec.low is not None or spec.high is not None)
        self.finite = tuple(name for name, spec in specs.items() if spec.finite)


def _check_arrays(checks: _Checks, arrays: Arrays, lead_ndim: int) -> tuple[int, ...]:
    """Check names, dtypes, shapes (equal leading dims) and values; returns the leading dims."""
    if arrays.keys() != checks.names:
        missing, extra = sorted(checks.names - arrays.keys()), sorted(arrays.keys() - checks.names)
        raise ContentError(NAMES, f"missing {missing}, unexpected {extra}")
    lead: tuple[int, ...] | None = None
    for name, dtype, trailing in checks.layout:
        a = arrays[name]
        if a.dtype != dtype:
            raise ContentError(DTYPE, f"{name} is {a.dtype}, expected {dtype}")
        shape = a.shape
        if lead is None:
            lead = shape[:lead_ndim]
            if len(lead) != lead_ndim:
                raise ContentError(SHAPE, f"{name} has shape {shape}")
        if shape[lead_ndim:] != trailing or shape[:lead_ndim] != lead:
            raise ContentError(SHAPE, f"{name} has shape {shape}, expected {(*lead, *trailing)}")
    assert lead is not None
    return lead


_min, _max = np.minimum.reduce, np.maximum.reduce  # the ufuncs themselves: a.min() adds a Python call


def _check_values(checks: _Checks, arrays: Arrays) -> None:
    for name, low, high in checks.ranges:
        a = arrays[name]
        if not a.size:
            continue
        if low is not None and _min(a, axis=None) < low:
            raise ContentError(RANGE, f"{name} below {low}")
        if high is not None and _max(a, axis=None) > high:
            raise ContentError(RANGE, f"{name} above {high}")
    for name in checks.finite:  # finiteness last: "non_finite" means otherwise well-formed
        if not all_finite(arrays[name]):
            raise ContentError(NON_FINITE, f"{name} holds NaN or inf")


_all = np.logical_and.reduce


def all_finite(a: np.ndarray) -> bool:
    """True if `a` (a float array) holds no NaN or inf: isfinite(a).all() minus its Python wrapper.

    (A dot product with zeros, NaN exactly when some element is not finite, was tried: no cheaper
    once reshaped and sliced, and it warns on inf.)
    """
    return bool(_all(np.isfinite(a), axis=None))


@dataclass(frozen=True)
class StreamSchema:
    """Request, reply and sample contents of one experiment."""

    request: dict[str, ArraySpec]  # actor -> policy worker, leading dim rows
    reply: dict[str, ArraySpec]  # policy worker -> actor, leading dim rows (= the request's)
    sample: dict[str, ArraySpec]  # actor -> trainer, leading dims [time, batch]
    max_request_rows: int  # rows of one ring slot
    sample_columns: int  # batch columns of a fixed-length sample
    sample_length: int  # time rows of a fixed-length sample (burnIn + sampleSteps + bootstrapSteps)
    episodes: bool  # full-trajectory mode: samples are whole episodes [1..maxEpisodeLength, 1]
    max_episode_length: int
    # the spec dicts compiled for checking (see _Checks); the dicts are not to be changed after this
    _checks: dict[str, _Checks] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = {"request": _Checks(self.request), "reply": _Checks(self.reply), "sample": _Checks(self.sample)}
        object.__setattr__(self, "_checks", checks)  # frozen dataclass: set once, here

    # ---- checks (raise ContentError; receivers drop and count)
    def check_request(self, arrays: Arrays) -> int:
        """An inference request; returns its rows."""
        checks = self._checks["request"]
        (rows,) = _check_arrays(checks, arrays, 1)
        if not 1 <= rows <= self.max_request_rows:
            raise ContentError(ROWS, f"{rows} rows, expected 1..{self.max_request_rows}")
        _check_values(checks, arrays)
        return rows

    def check_reply(self, arrays: Arrays, rows: int | None = None) -> None:
        """An inference reply to a request of `rows` rows (None: any number)."""
        checks = self._checks["reply"]
        (got,) = _check_arrays(checks, arrays, 1)
        if rows is not None and got != rows:
            raise ContentError(ROWS, f"{got} rows answer a request of {rows}")
        _check_values(checks, arrays)

    def check_sample(self, meta: dict[str, Any], arrays: Arrays) -> None:
        """A sample message (meta and arrays)."""
        episode = meta.get("episode", False)
        if type(episode) is not bool or episode != self.episodes:
            raise ContentError(META, f"episode={episode!r} in a run {'with' if self.episodes else 'without'} fullTrajectory")
        checks = self._checks["sample"]
        length, columns = _check_arrays(checks, arrays, 2)
        if self.episodes:
            if not 1 <= length <= self.max_episode_length or columns != 1:
                raise ContentError(ROWS, f"episode of [{length}, {columns}], expected [1..{self.max_episode_length}, 1]")
        elif (length, columns) != (self.sample_length, self.sample_columns):
            raise ContentError(ROWS, f"sample of [{length}, {columns}], expected [{self.sample_length}, {self.sample_columns}]")
        _check_values(checks, arrays)

    # ---- senders conform to it
    def conform(self, specs: dict[str, ArraySpec], arrays: Arrays) -> Arrays:
        """`arrays` cast to the schema's dtypes (no copy where they already match)."""
        return {k: np.asarray(v, dtype=specs[k].dtype) if k in specs else v for k, v in arrays.items()}

    def sample_fields(self, rows: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """(shape with `rows` leading, dtype) per sample array: what an actor's buffers hold."""
        return {name: ((rows, *spec.shape), spec.dtype) for name, spec in self.sample.items()}


def schema_of(spec: ExperimentSpec, envs: Any) -> StreamSchema:
    """The schema of an experiment whose environments look like the EnvBatch `envs` (a probe)."""
    return stream_schema(
        spec, envs.observation_space, envs.action_space, envs.agents_per_env, getattr(envs, "critic_obs_space", None)
    )


def stream_schema(
    spec: ExperimentSpec,
    observation_space: gym.Space,
    action_space: gym.Space,
    agents_per_env: int = 1,
    critic_obs_space: gym.Space | None = None,
) -> StreamSchema:
    """The schema an experiment implies, given one agent's spaces (and a centralised critic's input)."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"observation space must be Box, got {observation_space}")
    obs_dtype = np.dtype(observation_space.dtype)
    obs = ArraySpec(obs_dtype, tuple(observation_space.shape), finite=obs_dtype.kind == "f")
    if isinstance(action_space, gym.spaces.Discrete):
        action = ArraySpec(np.dtype(np.int64), (), low=0, high=int(action_space.n) - 1)
    elif isinstance(action_space, gym.spaces.Box):
        action = ArraySpec(np.dtype(np.float32), tuple(action_space.shape), finite=True)
    else:
        raise TypeError(f"action space must be Discrete or Box, got {action_space}")
    f32 = np.dtype(np.float32)
    scalar = ArraySpec(f32, (), finite=True)
    hidden = spec.policy.rnn.hidden_size if spec.policy.rnn is not None else 0
    rnn_state = ArraySpec(f32, (hidden,), finite=True)
    version = ArraySpec(np.dtype(np.int64), (), low=-1)  # -1: a policy worker before its first pull
    flag = ArraySpec(np.dtype(bool), ())
    extra = {"rnn_state": rnn_state} if hidden else {}
    if spec.policy.centralized_value and critic_obs_space is not None:  # multi-agent: the critic's own input
        extra["critic_obs"] = ArraySpec(f32, space_shape(critic_obs_space), finite=True)
    actors = spec.actors
    rows = actors.envs_per_slot * agents_per_env
    return StreamSchema(
        request={"obs": obs, **extra},
        reply={"action": action, "logp": scalar, "value": scalar, "rnn_state": rnn_state, "policy_version": version},
        sample={
            "obs": obs, "action": action, "logp": scalar, "value": scalar, "reward": scalar,
            "done": flag, "truncated": flag, "policy_version": version, **extra,
        },  # fmt: skip
        max_request_rows=rows,
        sample_columns=rows,
        sample_length=actors.piece_length,
        episodes=actors.full_trajectory,
        max_episode_length=actors.max_episode_length,
    )
