"""Trainer worker: consumes trajectories, runs the learner (PPO, PPG or IMPALA), pushes policy versions to the parameter DB.

Every `pushEvery` train steps it pushes the policy (the version actors and policy workers pull);
every `checkpointEvery` steps, and on exit, the pushed version also carries the learner state and
is tagged `checkpoint` (the one before stays tagged `checkpoint-previous`), which is what a
restarted trainer resumes from: the newest readable checkpoint, never reusing a version number.

Samples that do not match the experiment's stream schema are dropped and counted by the consumer;
those with NaN/inf are counted as non-finite samples, and so are updates the learner skipped for a
non-finite loss or gradient (failurePolicy.nonFinite decides whether the run goes on).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from srl_runtime import timeline
from srl_runtime.algorithms import make_learner
from srl_runtime.param_db import make_parameter_db
from srl_runtime.param_db.base import UnreadableCheckpoint, VersionNotFound
from srl_runtime.stats import DurationHistogram
from srl_runtime.streams.sample import make_sample_consumer
from srl_runtime.streams.schema import NON_FINITE
from srl_runtime.workers.base import PollResult, Worker, WorkerContext
from srl_runtime.workers.non_finite import NonFiniteGuard
from srl_runtime.workers.placement import sample_kind, set_torch_threads
from srl_runtime.workers.sample_buffer import EpisodeChunker, SampleBuffer
from srl_runtime.workers.setup import ProgressSources, Unconfigured, probe_policy

if TYPE_CHECKING:
    from srl_runtime.workers.trainer_group import TrainerGroup

log = logging.getLogger(__name__)

CHECKPOINT_TAG = "checkpoint"
PREVIOUS_CHECKPOINT_TAG = "checkpoint-previous"  # keeps the checkpoint before the newest from GC


class ResumeError(RuntimeError):
    """The parameter DB holds versions but no checkpoint that can be read: refuse to start afresh."""


class TrainerWorker(Worker):
    """Trains the policy and publishes versions."""

    role = "trainer"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        spec = ctx.experiment.spec
        self.spec = spec.trainers
        self.actors = spec.actors
        self.sources = ProgressSources(policy=Unconfigured(version=0))
        self.non_finite = NonFiniteGuard(f"trainer {ctx.index}", spec.failure_policy.non_finite, self.fail_run)
        self._seen_non_finite = (0, 0)  # (samples, updates) already reported
        self.buffer = SampleBuffer(
            self.spec.batch_size, self.spec.buffer_capacity, self.spec.sample_reuse, self.spec.max_staleness
        )
        self.chunker = EpisodeChunker(self.actors.piece_length, self.actors.piece_overlap)
        self.last_stats: dict[str, float] = {}
        self.trained_rows = 0
        self.staleness = 0.0  # versions between the trained batch's acting policy and the published one
        self.group: TrainerGroup | None = None
        self.train_step_seconds = DurationHistogram()

    def _configure(self) -> None:
        spec = self.ctx.experiment.spec
        set_torch_threads(self.spec.torch_threads)
        self.policy, self.schema = probe_policy(spec, self.spec.device, self.ctx.seed)
        timeline.mark("policy_built")
        self.sources.policy = self.policy  # its version: the newest this run published (or resumed past)
        self.learner = self.sources.learner = make_learner(self.policy, spec.algorithm, total_train_steps=spec.stop.train_steps)
        self.param_db = self.sources.param_db = self._own(make_parameter_db(spec.parameter_db, self.ctx.run_dir))
        self._resume()
        timeline.mark("param_db_opened")
        if self.spec.replicas > 1:
            # torch.distributed: imported only when needed
            from srl_runtime.workers.trainer_group import TrainerGroup

            self.group = self._own(TrainerGroup(
                self.ctx.name_records, self.ctx.root, self.ctx.index, self.spec.replicas, self.ctx.host, self.spec.device,
                port=self.ctx.ports.peers, advertise=self.ctx.advertise_host,
            ))  # fmt: skip
            self.group.broadcast_parameters(self.learner.trained)
            self.learner.grad_sync = self.group.average_gradients
            self.learner.stat_sync = self.group.mean
        if self.ctx.index == 0 and self.param_db.latest_version() is None:
            self._push(checkpoint=True)
            timeline.mark("first_version_published")
        kind = sample_kind(spec, self.ctx.distributed)
        self.consumer = self.sources.stream = self._own(make_sample_consumer(
            kind, self.ctx.name_records, self.ctx.root, self.ctx.index, host=self.ctx.host,
            check=self.schema.check_sample,
            **({"hwm": spec.streams.sample_queue, **self.ctx.tcp_endpoint(self.ctx.ports.sample)} if kind == "zmq" else {}),
        ))  # fmt: skip
        timeline.mark("streams_connected")

    def _resume(self) -> None:
        """Continue from the newest readable checkpoint; a fresh run only when nothing is stored."""
        db = self.param_db
        stored = db.versions()
        if not stored:
            return  # a fresh run
        tags = db.tags()
        first = [tags[t] for t in (CHECKPOINT_TAG, PREVIOUS_CHECKPOINT_TAG) if t in tags]
        candidates = list(dict.fromkeys([*first, *sorted(stored, reverse=True)]))
        for version in candidates:
            try:
                ckpt = db.get(version=version)
            except (VersionNotFound, UnreadableCheckpoint) as err:
                log.warning("trainer %d: cannot resume from version %d: %s", self.ctx.index, version, err)
                continue
            if "learner" not in ckpt.state:
                continue  # a policy-only version: not resumable
            break
        else:
            raise ResumeError(
                f"parameter DB {getattr(db, 'path', '')} holds versions {stored[0]}..{stored[-1]} but no readable "
                "checkpoint; refusing to start afresh over them (start the run with --overwrite to discard them)"
            )
        # Never reuse a version number (followers ignore versions at or below the one they hold): the
        # policy takes the newest stored number, and the next push goes past it.
        self.policy.load_state(ckpt.state["policy"], max(ckpt.version, db.latest_version() or 0, stored[-1]))
        self.learner.load_state_dict(ckpt.state["learner"])
        if ckpt.version != tags.get(CHECKPOINT_TAG):
            log.warning("trainer %d: newest checkpoint unreadable; resumed from older version %d", self.ctx.index, ckpt.version)
        log.info("trainer %d: resumed from version %d (train step %d)", self.ctx.index, ckpt.version, self.learner.train_steps)

    @property
    def version(self) -> int:
        """The newest version this trainer published (or resumed past): the policy's."""
        return self.sources.policy.version

    def _push(self, checkpoint: bool) -> None:
        version = self.policy.advance_version()
        state: dict[str, Any] = {"policy": self.policy.get_state()}
        tags = []
        previous = None
        if checkpoint:
            state["learner"] = self.learner.state_dict()
            tags.append(CHECKPOINT_TAG)
            previous = self.param_db.tags().get(CHECKPOINT_TAG)
        self.param_db.push(
            state,
            version,
            tags=tags,
            metadata={"train_step": self.learner.train_steps, "timestamp": time.time()},
            durable=checkpoint,  # only resumable checkpoints pay for fsync
        )
        if previous is not None and previous != version:
            try:
                self.param_db.tag(previous, PREVIOUS_CHECKPOINT_TAG)
            except VersionNotFound:
                pass  # already gone: the new checkpoint is what counts
        self.param_db.gc()

    def _poll(self) -> PollResult:
        got = 0
        # Drain what is queued, waiting briefly only when nothing is (never in serial mode: the actors
        # that would send are polled by this same thread).
        timeout = 0.05 if self.ctx.blocking_waits else 0.0
        while not self.buffer.ready():
            msg = self.consumer.consume(timeout=timeout)
            if msg is None:
                break
            meta, arrays = msg
            if meta.get("episode"):
                for piece in self.chunker.add(arrays):
                    self.buffer.add(piece)
            else:
                self.buffer.add(arrays)
            got += 1
            timeout = 0.0
        self._report_non_finite()
        if self.stop_requested:
            return PollResult(batch_count=got)
        self.buffer.drop_stale(self.version)
        if not self.buffer.ready():
            return PollResult(batch_count=got)
        batch = self.buffer.take_batch()
        if self.group is not None:
            # Every replica must take the same number of optimizer steps: equal batch shapes.
            batch = {k: v[:, : self.spec.batch_size] for k, v in batch.items()}
        self.staleness = float(self.version - batch["policy_version"].mean())
        started = time.perf_counter()
        try:
            self.last_stats = self.learner.train_step(
                batch, burn_in=self.actors.burn_in, bootstrap_steps=self.actors.bootstrap_steps
            )
        except RuntimeError:
            if self.group is None:
                raise
            # A peer trainer left the all-reduce: fine if the experiment is stopping.
            self._check_stop_flag()
            if self.stop_requested:
                return PollResult()
            raise
        self.train_step_seconds.observe(time.perf_counter() - started)
        self._report_non_finite()
        rows = int(batch["reward"].shape[1]) * self.actors.sample_steps  # the loss rows of each piece
        self.trained_rows += rows
        if self.ctx.index == 0 and self.learner.train_steps % self.spec.push_every == 0:
            self._push(checkpoint=self.learner.train_steps % self.spec.checkpoint_every == 0)
        return PollResult(sample_count=rows, batch_count=got)

    @property
    def dropped_stale_rows(self) -> int:
        """Trajectory rows (counted as in trained_rows) dropped for staleness."""
        return self.buffer.dropped_stale_columns * self.actors.sample_steps

    def _report_non_finite(self) -> None:
        """Hand new non-finite samples and skipped updates to the guard (warn or fail the run)."""
        samples, updates = self.non_finite_samples, self.skipped_updates
        seen_samples, seen_updates = self._seen_non_finite
        self._seen_non_finite = (samples, updates)
        self.non_finite.report("sample", "from the sample stream (dropped)", samples - seen_samples)
        self.non_finite.report("loss or gradient", "in an update (skipped, parameters kept)", updates - seen_updates)

    @property
    def non_finite_samples(self) -> int:
        """Samples dropped for NaN/inf."""
        return int(self.sources.stream.drop_reasons[NON_FINITE])

    @property
    def skipped_updates(self) -> int:
        """Optimizer steps the learner skipped for a non-finite loss or gradient."""
        return self.sources.learner.skipped_updates

    def _on_exit(self) -> None:
        # train_steps > 0: configure built the learner and it trained.
        if self.ctx.index == 0 and self.sources.learner.train_steps > 0:
            try:
                self._push(checkpoint=True)
                log.info(
                    "trainer %d: checkpoint at version %d (train step %d) on exit (%s)",
                    self.ctx.index, self.version, self.learner.train_steps, self.exit_reason,
                )
            except Exception as err:  # noqa: BLE001 - report, the previous checkpoint stays valid
                log.warning("final checkpoint failed: %s", err)

    def progress(self) -> dict[str, Any]:
        src = self.sources
        return {
            "train_steps": src.learner.train_steps,
            "policy_version": self.version,
            "trained_rows": self.trained_rows,
            "dropped": src.stream.dropped,
            "drop_reasons": dict(src.stream.drop_reasons),
            "non_finite_samples": self.non_finite_samples,
            "skipped_updates": self.skipped_updates,
            "rejected_checkpoints": src.param_db.rejected_checkpoints,
            **self.non_finite.progress(),
            "dropped_stale": self.buffer.dropped_stale,
            "dropped_stale_rows": self.dropped_stale_rows,
            "buffer_columns": self.buffer.columns,
            "staleness": self.staleness,
            "stats": self.last_stats,
            "train_step_seconds": self.train_step_seconds.snapshot(),
        }
