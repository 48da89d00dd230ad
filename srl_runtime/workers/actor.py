"""Actor worker: steps an env ring, asks for actions, sends trajectories to trainers.

The ring: an actor holds `ringSize` slots of `envsPerSlot` environments. Each slot's observations go
out as one inference request (split `inferenceSplits` ways); while slot k waits for its actions, the
actor steps slot k+1 whose actions have arrived. With inline inference the ring degenerates to one
batched forward pass per slot in this process.

Every env step is checked for NaN/inf in observations and rewards (vectorised, a few microseconds):
the actor counts them by field and env and applies failurePolicy.nonFinite; a non-finite observation
is zeroed for the policy's forward pass only, while the sample keeps what the env returned, so the
trainer drops that sample. Replies from policy workers are checked against the stream schema.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import Any

import numpy as np

from srl_runtime.envs import make_env_batch
from srl_runtime.param_db import make_parameter_db
from srl_runtime.policies import Policy
from srl_runtime.streams.inference import make_inference_client
from srl_runtime.streams.sample import make_sample_producer
from srl_runtime.streams.schema import schema_of
from srl_runtime.workers.base import PollResult, Worker
from srl_runtime.workers.non_finite import NonFiniteGuard
from srl_runtime.workers.param_follower import ParameterFollower
from srl_runtime.workers.placement import inference_kind, sample_kind, set_torch_threads
from srl_runtime.workers.trajectory import EpisodeBuffer, TrajectoryBuffer

log = logging.getLogger(__name__)


class _Slot:
    """One ring slot: its envs, the latest observation, recurrent state and trajectory buffer."""

    def __init__(self, envs: Any, obs: np.ndarray, rnn_state: np.ndarray) -> None:
        self.envs = envs
        self.obs = obs
        self.rnn_state = rnn_state
        self.critic_obs: np.ndarray | None = envs.critic_obs()  # a centralised critic's input (multi-agent)
        self.requests: list[tuple[int, slice]] = []
        self.buffer: TrajectoryBuffer | None = None
        self.episodes: EpisodeBuffer | None = None


class ActorWorker(Worker):
    """Steps environments and produces sample messages."""

    role = "actor"

    def _configure(self) -> None:
        spec = self.ctx.experiment.spec
        self.spec = spec.actors
        set_torch_threads(spec.actors.torch_threads)
        self.slots: list[_Slot] = []
        self.policy_version = -1
        self.inline_policy: Policy | None = None
        # (episode number, end time, raw return) of recent episodes: the monitor counts each number once
        self._returns: collections.deque[tuple[int, float, float]] = collections.deque(maxlen=max(100, spec.stop.return_window))
        self.episodes_done = 0
        self.env_frames = 0
        self.frame_multiplier = spec.environment.atari.frame_skip if spec.environment.atari else 1
        self.non_finite = NonFiniteGuard(f"actor {self.ctx.index}", spec.failure_policy.non_finite, self.fail_run)

        for k in range(self.spec.ring_size):
            envs = make_env_batch(spec.environment, self.spec.envs_per_slot, seed=self.ctx.seed * 1000 + k * self.spec.envs_per_slot)
            self.slots.append(_Slot(envs, envs.reset(), np.zeros((0,), np.float32)))
        first = self.slots[0].envs
        self.rows = first.rows
        self.centralized = spec.policy.centralized_value
        self.schema = schema_of(spec, first)
        obs_spec = self.schema.request["obs"]
        self._obs_dtype, self._obs_float = obs_spec.dtype, obs_spec.finite
        for k, slot in enumerate(self.slots):
            slot.obs = np.asarray(slot.obs, dtype=self._obs_dtype)
            self._check_finite(k, slot.obs, None, slot.critic_obs if self.centralized else None)

        kind = inference_kind(spec)
        if kind == "inline":
            self.inline_policy = Policy(
                first.observation_space, first.action_space, spec.policy, device=spec.actors.device,
                critic_obs_space=first.critic_obs_space,
            )  # fmt: skip
            self.params = ParameterFollower(
                make_parameter_db(spec.parameter_db, self.ctx.run_dir), self.inline_policy, spec.actors.param_pull_interval
            )
            self.params.maybe_pull()
            self.client = make_inference_client("inline", self.ctx.name_records, self.ctx.root, policy=self.inline_policy)
            probe = self.inline_policy
        else:
            self.client = make_inference_client(
                kind, self.ctx.name_records, self.ctx.root, check=self.schema.check_reply
            )
            # A local probe: the recurrent state size comes from the same network code.
            probe = Policy(first.observation_space, first.action_space, spec.policy, device="cpu", critic_obs_space=first.critic_obs_space)
        self.recurrent = probe.recurrent
        kind = sample_kind(spec)
        queue = spec.streams.sample_queue
        self.producer = make_sample_producer(
            kind, self.ctx.name_records, self.ctx.root, **({"ring_size": queue} if kind == "shm" else {"hwm": queue})
        )

        length = self.spec.burn_in + self.spec.sample_steps + self.spec.bootstrap_steps
        carry = self.spec.burn_in + self.spec.bootstrap_steps
        rows = self.rows
        # The sample's arrays are what the trainers' schema expects: one definition for both ends.
        fields = self.schema.sample_fields(rows)
        for slot in self.slots:
            slot.rnn_state = probe.initial_rnn_state(rows)
            if self.spec.full_trajectory:
                slot.episodes = EpisodeBuffer(self.spec.max_episode_length, rows, fields)
            else:
                slot.buffer = TrajectoryBuffer(length, carry, fields)
        self._splits = _splits(rows, self.spec.inference_splits)
        for slot in self.slots:
            self._post(slot)

    # ---- the ring
    def _post(self, slot: _Slot) -> None:
        slot.requests = []
        for part in self._splits:
            obs = slot.obs[part]
            if self._obs_float and not np.isfinite(obs).all():
                obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)  # for acting only (already counted)
            arrays = {"obs": obs}
            if self.recurrent:
                arrays["rnn_state"] = slot.rnn_state[part]
            if self.centralized:
                critic_obs = np.asarray(slot.critic_obs[part], dtype=np.float32)
                if not np.isfinite(critic_obs).all():
                    critic_obs = np.nan_to_num(critic_obs, nan=0.0, posinf=0.0, neginf=0.0)
                arrays["critic_obs"] = critic_obs
            slot.requests.append((self.client.post_request(arrays), part))

    def _wait(self, request_id: int) -> dict[str, np.ndarray] | None:
        """The result, or None once the experiment stops while waiting (policy workers may be gone)."""
        while True:
            try:
                return self.client.wait(request_id, timeout=1.0)
            except TimeoutError:
                self._check_control()
                if self.stop_requested:
                    return None

    def _collect(self, slot: _Slot) -> dict[str, np.ndarray] | None:
        parts = []
        for rid, _ in slot.requests:
            part = self._wait(rid)
            if part is None:
                return None
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _send(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Post a sample, blocking while trainers are full, but never past a stop."""
        while not self.stop_requested:
            try:
                self.producer.post(meta, arrays, timeout=1.0)
                return
            except TimeoutError:
                self._check_control()

    def _poll(self) -> PollResult:
        if self.inline_policy is not None:
            self.params.maybe_pull()
            self.policy_version = max(self.policy_version, self.params.version)
        steps = 0
        sent = 0
        for k, slot in enumerate(self.slots):
            result = self._collect(slot)
            if result is None:
                break
            version = int(result["policy_version"][0]) if "policy_version" in result else self.policy_version
            self.policy_version = max(self.policy_version, version)
            action = result["action"]
            prev_obs, prev_state = slot.obs, slot.rnn_state
            step = slot.envs.step(action)
            step.obs = np.asarray(step.obs, dtype=self._obs_dtype)
            self._check_finite(k, step.obs, step.reward)
            done = step.terminated | step.truncated
            row = {
                "obs": prev_obs,
                "action": action,
                "logp": result["logp"],
                "value": result["value"],
                "reward": step.reward,
                "done": done,
                "truncated": step.truncated,
                "policy_version": np.full(self.rows, version, np.int64),
            }
            if self.recurrent:
                row["rnn_state"] = prev_state
                new_state = result["rnn_state"]
                new_state[done] = 0.0  # a new episode starts from a zero state
                slot.rnn_state = new_state
            if self.centralized:
                row["critic_obs"] = slot.critic_obs
                slot.critic_obs = slot.envs.critic_obs()
                self._check_finite(k, None, None, slot.critic_obs)
            slot.obs = step.obs
            sent += self._record(slot, row, done)
            if self.stop_requested:
                break
            # Post at once so this slot's inference overlaps the next slot's env step.
            self._post(slot)
            steps += self.rows
            if step.episode_returns:
                now = time.time()
                for ret in step.episode_returns:
                    if math.isfinite(ret):  # a NaN reward made this return meaningless (reported above)
                        self._returns.append((self.episodes_done, now, float(ret)))
                    self.episodes_done += 1
        self.env_frames += steps * self.frame_multiplier
        return PollResult(sample_count=steps, batch_count=sent)

    def _check_finite(
        self, k: int, obs: np.ndarray | None, reward: np.ndarray | None, critic_obs: np.ndarray | None = None
    ) -> None:
        """Report NaN/inf in what slot k's envs returned (which field, which env)."""
        checks = (("reward", reward), ("observation", obs if self._obs_float else None), ("state", critic_obs))
        for what, values in checks:
            if values is None or np.isfinite(values).all():
                continue
            bad_rows = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(1))
            envs = sorted({k * self.spec.envs_per_slot + int(r) // self.slots[k].envs.agents_per_env for r in bad_rows})
            self.non_finite.report(what, f"from env {', '.join(map(str, envs))} of actor {self.ctx.index}", len(bad_rows))

    def _record(self, slot: _Slot, row: dict[str, np.ndarray], done: np.ndarray) -> int:
        meta = {"actor": self.ctx.index, "policy_version": self.policy_version}
        if slot.buffer is not None:
            buf = slot.buffer
            for name, value in row.items():
                buf.write(name, value)
            buf.advance()
            if buf.full:
                self._send(meta, buf.arrays)
                buf.roll()
                return 1
            return 0
        assert slot.episodes is not None
        eps = slot.episodes
        for name, value in row.items():
            eps.write_row(name, value)
        eps.advance()
        sent = 0
        ended = np.flatnonzero(done | (eps.t >= self.spec.max_episode_length))
        for r in ended:
            self._send({**meta, "episode": True}, eps.take(int(r)))
            sent += 1
        return sent

    def _on_exit(self) -> None:
        params = getattr(self, "params", None)
        for closer in (getattr(self, "producer", None), getattr(self, "client", None), getattr(params, "param_db", None)):
            if closer is not None:
                try:
                    closer.close()
                except Exception:  # noqa: BLE001 - closing on the way out
                    pass
        for slot in getattr(self, "slots", []):
            slot.envs.close()

    def progress(self) -> dict[str, Any]:
        client, guard, params = getattr(self, "client", None), getattr(self, "non_finite", None), getattr(self, "params", None)
        now, frames = time.monotonic(), getattr(self, "env_frames", 0)
        last_t, last_frames = getattr(self, "_rate_mark", (now, frames))
        self._rate_mark = (now, frames)
        fps = (frames - last_frames) / (now - last_t) if now > last_t else 0.0
        return {
            "frames_per_second": fps,
            "env_frames": frames,
            "episodes": getattr(self, "episodes_done", 0),
            "policy_version": getattr(self, "policy_version", -1),
            "recent_returns": list(getattr(self, "_returns", [])),
            "dropped": getattr(client, "dropped", 0),
            "drop_reasons": dict(client.drop_reasons) if client is not None else {},
            "non_finite_env_values": guard.total if guard is not None else 0,
            **(guard.progress() if guard is not None else {}),
            "rejected_checkpoints": getattr(getattr(params, "param_db", None), "rejected_checkpoints", 0),
        }


def _splits(rows: int, parts: int) -> list[slice]:
    """Contiguous, nearly equal row ranges."""
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
