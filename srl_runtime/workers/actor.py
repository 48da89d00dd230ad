"""Actor worker: steps an env ring, asks for actions, sends trajectories to trainers.

The ring: an actor holds `ringSize` slots of `envsPerSlot` environments. Each slot's observations go
out as one inference request (split `inferenceSplits` ways); while slot k waits for its actions, the
actor steps slot k+1 whose actions have arrived. With inline inference the ring degenerates to one
batched forward pass per slot in this process.

Every env step is checked for NaN/inf in observations and rewards (vectorised, a few microseconds):
the actor counts them by field and env and applies failurePolicy.nonFinite; a non-finite observation
is zeroed for the policy's forward pass only, while the sample keeps what the env returned, so the
trainer drops that sample. Replies from policy workers are checked against the stream schema.

On-policy runs (trainers.maxStaleness 0): once a slot produced its share of the next batch it stops
until a newer policy version exists (`on_policy.py`); with inline inference the actor waits on the
parameter DB's latest version, with policy workers it re-asks until a reply carries a newer version
(set policyWorkers.paramPullInterval low for such runs). The wait is bounded by
actors.versionWaitSeconds, after which the actor steps on (its pieces may then be dropped as stale).

Every finished episode goes to the per-episode log (`episode_log.py`) when actors.episodeLog is on.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import Any

import numpy as np

from srl_runtime import timeline
from srl_runtime.envs import make_env_batch
from srl_runtime.param_db import make_parameter_db
from srl_runtime.policies import Policy
from srl_runtime.streams.inference import make_inference_client
from srl_runtime.streams.sample import make_sample_producer
from srl_runtime.streams.schema import schema_of
from srl_runtime.workers.base import PollResult, Worker, WorkerContext
from srl_runtime.workers.episode_log import EpisodeLog, episode_log_path
from srl_runtime.workers.non_finite import NonFiniteGuard
from srl_runtime.workers.on_policy import on_policy_share
from srl_runtime.workers.param_follower import ParameterFollower
from srl_runtime.workers.placement import inference_kind, sample_kind, set_torch_threads
from srl_runtime.workers.setup import ProgressSources
from srl_runtime.workers.trajectory import EpisodeBuffer, TrajectoryBuffer

log = logging.getLogger(__name__)

VERSION_POLL_SECONDS = (0.0005, 0.01)  # first and longest sleep between checks for a newer version
VERSION_WAIT_SLICE = 0.5  # seconds one poll waits for a version at most (the loop then checks the stop flag)


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
        self.share = (-1, 0)  # on-policy pacing: (version, pieces of it sent)
        self.gate: int | None = None  # produced its share of this version: no requests until a newer one
        self.needs_newer: int | None = None  # released from a gate: a reply must carry a version above this


class ActorWorker(Worker):
    """Steps environments and produces sample messages."""

    role = "actor"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        spec = ctx.experiment.spec
        self.spec = spec.actors
        self.sources = ProgressSources()
        self.slots: list[_Slot] = []
        self.policy_version = -1  # the newest version seen in replies (or pulled, inline)
        self.inline_policy: Policy | None = None
        # (episode number, end time, raw return) of recent episodes: the monitor counts each number once
        self._returns: collections.deque[tuple[int, float, float]] = collections.deque(maxlen=max(100, spec.stop.return_window))
        self.episodes_done = 0
        self.env_frames = 0
        self._rate_mark = (time.monotonic(), 0)  # (time, env_frames) at the last progress
        self.frame_multiplier = spec.environment.atari.frame_skip if spec.environment.atari else 1
        self.non_finite = NonFiniteGuard(f"actor {ctx.index}", spec.failure_policy.non_finite, self.fail_run)
        self.episode_log: EpisodeLog | None = None
        self.share: int | None = None  # pieces per slot per policy version (None: no on-policy pacing)
        self._gate_started: float | None = None  # monotonic time every slot stopped for a newer version
        self._newer_deadline = 0.0  # policy workers: re-ask for a newer version until this monotonic time
        self.version_wait_seconds = 0.0  # time spent waiting for newer versions
        self.version_wait_timeouts = 0  # waits that ran out (actors.versionWaitSeconds)

    def _configure(self) -> None:
        spec = self.ctx.experiment.spec
        set_torch_threads(spec.actors.torch_threads)
        for k in range(self.spec.ring_size):
            envs = self._own(
                make_env_batch(spec.environment, self.spec.envs_per_slot, seed=self.ctx.seed * 1000 + k * self.spec.envs_per_slot)
            )
            self.slots.append(_Slot(envs, envs.reset(), np.zeros((0,), np.float32)))
        timeline.mark("envs_built")
        first = self.slots[0].envs
        self.rows = first.rows
        self.centralized = spec.policy.centralized_value
        self.schema = schema_of(spec, first)
        obs_spec = self.schema.request["obs"]
        self._obs_dtype, self._obs_float = obs_spec.dtype, obs_spec.finite
        for k, slot in enumerate(self.slots):
            slot.obs = np.asarray(slot.obs, dtype=self._obs_dtype)
            self._check_finite(k, slot.obs, None, slot.critic_obs if self.centralized else None)

        kind = inference_kind(spec, self.ctx.distributed)
        if kind == "inline":
            self.inline_policy = Policy(
                first.observation_space, first.action_space, spec.policy, device=spec.actors.device,
                critic_obs_space=first.critic_obs_space,
            )  # fmt: skip
            timeline.mark("policy_built")
            param_db = self.sources.param_db = self._own(make_parameter_db(spec.parameter_db, self.ctx.run_dir))
            self.params = ParameterFollower(param_db, self.inline_policy, spec.actors.param_pull_interval)
            self.params.maybe_pull()
            timeline.mark("params_pulled")
            self.client = make_inference_client("inline", self.ctx.name_records, self.ctx.root, policy=self.inline_policy)
            probe = self.inline_policy
        else:
            self.client = make_inference_client(
                kind, self.ctx.name_records, self.ctx.root, check=self.schema.check_reply
            )
            # A local probe: the recurrent state size comes from the same network code.
            probe = Policy(first.observation_space, first.action_space, spec.policy, device="cpu", critic_obs_space=first.critic_obs_space)
        self.sources.stream = self._own(self.client)
        self.recurrent = probe.recurrent
        kind = sample_kind(spec, self.ctx.distributed)
        queue = spec.streams.sample_queue
        self.producer = self._own(make_sample_producer(
            kind, self.ctx.name_records, self.ctx.root, **({"ring_size": queue} if kind == "shm" else {"hwm": queue})
        ))  # fmt: skip
        timeline.mark("streams_connected")

        rows = self.rows
        # The sample's arrays are what the trainers' schema expects: one definition for both ends.
        fields = self.schema.sample_fields(rows)
        for slot in self.slots:
            slot.rnn_state = probe.initial_rnn_state(rows)
            if self.spec.full_trajectory:
                slot.episodes = EpisodeBuffer(self.spec.max_episode_length, rows, fields)
            else:
                slot.buffer = TrajectoryBuffer(self.spec.piece_length, self.spec.piece_overlap, fields)
        self._splits = _splits(rows, self.spec.inference_splits)
        self.share = on_policy_share(spec, rows)
        if self.spec.episode_log:
            self.episode_log = self._own(EpisodeLog(episode_log_path(self.ctx.run_dir, self.ctx.index)))
        if self.share is not None:
            # On-policy, nothing acts before the first published version: those steps would be stale.
            if self.inline_policy is None:
                self._newer_deadline = time.monotonic() + self.spec.version_wait_seconds
                for slot in self.slots:
                    slot.needs_newer = 0
            elif self.params.version == 0:
                self._gate_started = time.monotonic()
                for slot in self.slots:
                    slot.gate = 0
        for slot in self.slots:
            if slot.gate is None:
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
                assert slot.critic_obs is not None  # envs of a centralised critic give critic observations
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
                self._check_stop_flag()
                if self.stop_requested:
                    return None

    def _answered(self, slot: _Slot) -> bool:
        """Whether every request of the slot has its answer (without waiting)."""
        return all(self.client.is_ready(rid) for rid, _ in slot.requests)

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
                self._check_stop_flag()

    def _poll(self) -> PollResult:
        if self._gate_started is not None and (not self._await_newer_version() or self.inline_policy is None):
            return PollResult()  # policy workers: the requests just posted are answered by the next poll
        if self.inline_policy is not None and self.share is None:
            # Paced on-policy actors pull only when released from a wait (a tag-file read saved per step).
            self.params.maybe_pull()
            self.policy_version = max(self.policy_version, self.params.version)
        steps = 0
        sent = 0
        for k, slot in enumerate(self.slots):
            if slot.gate is not None:
                continue
            if not self.ctx.blocking_waits and not self._answered(slot):
                continue  # serial mode: only the next poll of the policy worker (this thread) can answer it
            result = self._collect(slot)
            if result is None:
                break
            version = int(result["policy_version"][0]) if "policy_version" in result else self.policy_version
            if slot.needs_newer is not None:
                if version <= slot.needs_newer:
                    if time.monotonic() < self._newer_deadline:
                        time.sleep(VERSION_POLL_SECONDS[1])  # a policy worker has not pulled the new version yet
                        self.version_wait_seconds += VERSION_POLL_SECONDS[1]
                        self._post(slot)
                        continue
                    self._wait_ran_out(slot.needs_newer)
                slot.needs_newer = None
            self.policy_version = max(self.policy_version, version)
            if self._ends_share(slot, version):
                sent += self._send_share_end(slot, result, version)
                continue
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
            steps += self.rows
            self._log_episodes(step.episode_returns, step.episode_lengths)
            if self.stop_requested:
                break
            if slot.gate is None:
                # Post at once so this slot's inference overlaps the next slot's env step.
                self._post(slot)
        if self._gate_started is None and self.slots and all(slot.gate is not None for slot in self.slots):
            self._gate_started = time.monotonic()
        self.env_frames += steps * self.frame_multiplier
        return PollResult(sample_count=steps, batch_count=sent)

    def _log_episodes(self, returns: list[float], lengths: list[int]) -> None:
        """Count finished episodes; keep the recent finite returns and log every one."""
        if not returns:
            return
        if not self.episodes_done:
            timeline.mark("first_episode_end")
        now = time.time()
        for ret, length in zip(returns, lengths, strict=True):
            if math.isfinite(ret):  # a NaN reward made this return meaningless (reported above)
                self._returns.append((self.episodes_done, now, float(ret)))
            self.episodes_done += 1
            if self.episode_log is not None:
                self.episode_log.add(now, ret, length)

    # ---- on-policy pacing (on_policy.py)
    def _count_piece(self, slot: _Slot, version: int) -> None:
        """Note a piece of `version` sent; the slot stops once its share of that version is sent."""
        if self.share is None:
            return
        last, count = slot.share
        slot.share = (version, count + 1 if version == last else 1)
        if slot.share[1] >= self.share:
            slot.gate = version

    def _ends_share(self, slot: _Slot, version: int) -> bool:
        """True when the piece in the slot's buffer lacks only its bootstrap row and completes the share:
        that row is then written without an env step (`_send_share_end`)."""
        buf = slot.buffer
        if self.share is None or buf is None or self.spec.bootstrap_steps != 1 or buf.t != buf.length - 1:
            return False
        piece_version = min(int(buf.arrays["policy_version"][: buf.t].min()), version) if buf.t else version
        last, count = slot.share
        return (count + 1 if piece_version == last else 1) >= self.share

    def _send_share_end(self, slot: _Slot, result: dict[str, np.ndarray], version: int) -> int:
        """Write the bootstrap row (observation, action, value of now; no step), send, start a fresh piece.

        The action in `result` is not taken: the next piece starts at this observation with the newer
        version's action, so every stepped transition is trained on as the version that acted it.
        """
        buf = slot.buffer
        assert buf is not None
        row = {
            "obs": slot.obs,
            "action": result["action"],
            "logp": result["logp"],
            "value": result["value"],
            "reward": np.zeros(self.rows, np.float32),  # GAE reads only the value of a bootstrap row
            "done": np.zeros(self.rows, bool),
            "truncated": np.zeros(self.rows, bool),
            "policy_version": np.full(self.rows, version, np.int64),
        }
        if self.recurrent:
            row["rnn_state"] = slot.rnn_state
        if self.centralized:
            assert slot.critic_obs is not None  # envs of a centralised critic give critic observations
            row["critic_obs"] = slot.critic_obs
        for name, value in row.items():
            buf.write(name, value)
        buf.advance()
        piece_version = int(buf.arrays["policy_version"].min())
        self._send({"actor": self.ctx.index, "policy_version": self.policy_version}, buf.arrays)
        buf.restart()
        self._count_piece(slot, piece_version)
        return 1

    def _wait_ran_out(self, gate: int) -> None:
        """Count and report a wait for a version newer than `gate` that took actors.versionWaitSeconds."""
        self.version_wait_timeouts += 1
        log.warning(
            "actor %d: no policy version newer than %d after %.0fs; stepping on (its samples may be dropped as stale)",
            self.ctx.index, gate, self.spec.version_wait_seconds,
        )  # fmt: skip

    def _await_newer_version(self) -> bool:
        """Wait (in sleeps growing to VERSION_POLL_SECONDS[1], at most VERSION_WAIT_SLICE per poll; not at
        all in serial mode) until a version newer than every slot's gate exists; then release the slots.

        Inline inference: the parameter DB's latest version, pulled at once. Policy workers: released at
        once; each slot re-asks until a reply carries a newer version (see `_poll`). After
        actors.versionWaitSeconds the slots are released whatever the version.
        """
        started = self._gate_started
        assert started is not None
        gate = max(slot.gate for slot in self.slots if slot.gate is not None)
        deadline = started + self.spec.version_wait_seconds
        entered = time.monotonic()
        delay, slice_end = VERSION_POLL_SECONDS[0], entered + VERSION_WAIT_SLICE
        while self.inline_policy is not None:
            latest = self.params.param_db.latest_version()
            if latest is not None and latest > gate:
                self.params.pull(latest)
                if self.params.version > gate:
                    self.policy_version = max(self.policy_version, self.params.version)
                    break
            now = time.monotonic()
            if now >= deadline:
                self._wait_ran_out(gate)
                break
            if not self.ctx.blocking_waits or now >= slice_end or self.stop_requested:
                self.version_wait_seconds += now - entered
                return False
            time.sleep(min(delay, deadline - now))
            delay = min(2 * delay, VERSION_POLL_SECONDS[1])
        self.version_wait_seconds += time.monotonic() - entered
        self._gate_started = None
        self._newer_deadline = deadline
        for slot in self.slots:
            if slot.gate is not None:
                slot.needs_newer = None if self.inline_policy is not None else slot.gate
                slot.gate = None
                self._post(slot)
        return True

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
                piece_version = int(buf.arrays["policy_version"].min())
                self._send(meta, buf.arrays)
                buf.roll()
                self._count_piece(slot, piece_version)
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

    def progress(self) -> dict[str, Any]:
        if self.episode_log is not None:
            self.episode_log.flush()  # the log is as fresh as the progress report
        now, frames = time.monotonic(), self.env_frames
        last_t, last_frames = self._rate_mark
        self._rate_mark = (now, frames)
        fps = (frames - last_frames) / (now - last_t) if now > last_t else 0.0
        src = self.sources
        return {
            "frames_per_second": fps,
            "env_frames": frames,
            "episodes": self.episodes_done,
            "policy_version": self.policy_version,
            "recent_returns": list(self._returns),
            "dropped": src.stream.dropped,
            "drop_reasons": dict(src.stream.drop_reasons),
            "inference_round_trips": self.client.round_trips.summary() if hasattr(self, "client") else {},
            "non_finite_env_values": self.non_finite.total,
            **self.non_finite.progress(),
            "rejected_checkpoints": src.param_db.rejected_checkpoints,
            "version_wait_seconds": self.version_wait_seconds,
            "version_wait_timeouts": self.version_wait_timeouts,
        }


def _splits(rows: int, parts: int) -> list[slice]:
    """Contiguous, nearly equal row ranges."""
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
