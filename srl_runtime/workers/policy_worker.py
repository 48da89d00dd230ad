"""Policy worker: batches inference requests from many actors and runs one forward pass per batch.

Where the inference batch gets built: `_poll` gathers queued requests (up to `batchSize` rows,
waiting up to `maxWaitMs` only while an active actor has none in the batch yet; see
streams.inference.batching), concatenates them, runs the policy, and splits the result back per
request. It pulls new parameters from the parameter DB on an interval. Requests that do not match the experiment's stream schema (names, dtypes, shapes, row
count, finite observations) are dropped and counted by the server before they reach the batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from srl_runtime.param_db import make_parameter_db
from srl_runtime.stats import DurationHistogram
from srl_runtime.streams.inference import make_inference_server
from srl_runtime.streams.inference.batching import ActiveClients, gather_batch
from srl_runtime.workers.base import PollResult, Worker, WorkerContext
from srl_runtime.workers.param_follower import ParameterFollower
from srl_runtime.workers.placement import inference_kind, set_torch_threads
from srl_runtime.workers.setup import ProgressSources, probe_policy

log = logging.getLogger(__name__)


class PolicyWorker(Worker):
    """Serves batched inference."""

    role = "policy"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.spec = ctx.experiment.spec.policy_workers
        self.sources = ProgressSources()
        self.batch_sizes: list[int] = []  # rows of recent batches
        self.latency = DurationHistogram()  # seconds per forward pass of a batch
        self.clients = ActiveClients()
        self.forward_passes = 0  # batches run through the policy (rows per pass: samples / forward_passes)

    def _configure(self) -> None:
        spec = self.ctx.experiment.spec
        set_torch_threads(self.spec.torch_threads)
        self.policy, self.schema = probe_policy(spec, self.spec.device, self.ctx.seed)
        self.param_db = self.sources.param_db = self._own(make_parameter_db(spec.parameter_db, self.ctx.run_dir))
        self.params = self.sources.policy = ParameterFollower(self.param_db, self.policy, self.spec.param_pull_interval)
        kind = inference_kind(spec, self.ctx.distributed)
        self.server = self.sources.stream = self._own(make_inference_server(
            kind, self.ctx.name_records, self.ctx.root, self.ctx.index, host=self.ctx.host,
            check=self.schema.check_request,
            **(self.ctx.tcp_endpoint(self.ctx.ports.inference) if kind == "zmq" else {}),
        ))  # fmt: skip
        self.params.maybe_pull()

    def _poll(self) -> PollResult:
        self.params.maybe_pull()
        requests = gather_batch(self.server, self.clients, self.spec.batch_size, self.spec.max_wait_ms, timeout=0.05)
        if not requests:
            return PollResult()
        started = time.perf_counter()
        obs = np.concatenate([r.arrays["obs"] for r in requests])
        state = (
            np.concatenate([r.arrays["rnn_state"] for r in requests]) if self.policy.recurrent else None
        )
        critic_obs = np.concatenate([r.arrays["critic_obs"] for r in requests]) if self.policy.centralized else None
        out = self.policy.rollout(obs, state, critic_obs=critic_obs)
        out["policy_version"] = np.full(len(obs), self.params.version, np.int64)
        out = self.schema.conform(self.schema.reply, out)
        start = 0
        for r in requests:
            n = len(r.arrays["obs"])
            self.server.respond(r, {k: v[start : start + n] for k, v in out.items()})
            start += n
        self.latency.observe(time.perf_counter() - started)
        self.forward_passes += 1
        self.batch_sizes.append(len(obs))
        if len(self.batch_sizes) > 100:
            del self.batch_sizes[:50]
        return PollResult(sample_count=len(obs), batch_count=len(requests))

    def progress(self) -> dict[str, Any]:
        sizes, src = self.batch_sizes, self.sources
        return {
            "policy_version": src.policy.version,
            "mean_batch": float(np.mean(sizes)) if sizes else 0.0,
            "forward_passes": self.forward_passes,
            "inference_latency_seconds": self.latency.snapshot(),
            "dropped": src.stream.dropped,
            "drop_reasons": dict(src.stream.drop_reasons),
            "rejected_checkpoints": src.param_db.rejected_checkpoints,
        }
