"""Policy worker: batches inference requests from many actors and runs one forward pass per batch.

Where the inference batch gets built: `_poll` takes whatever requests are queued (up to
`batchSize` rows, waiting at most `maxWaitMs` once one is in hand), concatenates them, runs the
policy, and splits the result back per request. It pulls new parameters from the parameter DB on
an interval. Requests that do not match the experiment's stream schema (names, dtypes, shapes, row
count, finite observations) are dropped and counted by the server before they reach the batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from srl_runtime.envs import make_env_batch
from srl_runtime.param_db import make_parameter_db
from srl_runtime.policies import Policy
from srl_runtime.streams.inference import make_inference_server
from srl_runtime.streams.schema import schema_of
from srl_runtime.workers.base import PollResult, Worker
from srl_runtime.workers.param_follower import ParameterFollower
from srl_runtime.workers.placement import inference_kind, set_torch_threads

log = logging.getLogger(__name__)


class PolicyWorker(Worker):
    """Serves batched inference."""

    role = "policy"

    def _configure(self) -> None:
        spec = self.ctx.experiment.spec
        self.spec = spec.policy_workers
        set_torch_threads(self.spec.torch_threads)
        probe = make_env_batch(spec.environment, 1, seed=self.ctx.seed)
        self.policy = Policy(
            probe.observation_space, probe.action_space, spec.policy, device=self.spec.device, critic_obs_space=probe.critic_obs_space
        )
        self.schema = schema_of(spec, probe)
        probe.close()
        self.param_db = make_parameter_db(spec.parameter_db, self.ctx.run_dir)
        self.params = ParameterFollower(self.param_db, self.policy, self.spec.pull_interval)
        self.server = make_inference_server(
            inference_kind(spec), self.ctx.name_records, self.ctx.root, self.ctx.index, host=self.ctx.host,
            check=self.schema.check_request,
            **(self.ctx.tcp_endpoint(self.ctx.ports.inference) if inference_kind(spec) == "zmq" else {}),
        )
        self.params.maybe_pull()
        self.batch_sizes: list[int] = []
        self.latency_ms = 0.0

    def _poll(self) -> PollResult:
        self.params.maybe_pull()
        requests = self.server.poll_requests(self.spec.batch_size, timeout=0.05)
        if not requests:
            return PollResult()
        if self.spec.max_wait_ms > 0:
            rows = sum(len(r.arrays["obs"]) for r in requests)
            deadline = time.monotonic() + self.spec.max_wait_ms / 1000
            while rows < self.spec.batch_size and time.monotonic() < deadline:
                more = self.server.poll_requests(self.spec.batch_size - rows, timeout=max(0.0, deadline - time.monotonic()))
                if not more:
                    break
                requests.extend(more)
                rows += sum(len(r.arrays["obs"]) for r in more)
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
        self.latency_ms = (time.perf_counter() - started) * 1000
        self.batch_sizes.append(len(obs))
        if len(self.batch_sizes) > 100:
            del self.batch_sizes[:50]
        return PollResult(sample_count=len(obs), batch_count=len(requests))

    def _on_exit(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.close()
        param_db = getattr(self, "param_db", None)
        if param_db is not None:
            param_db.close()

    def progress(self) -> dict[str, Any]:
        sizes = getattr(self, "batch_sizes", [])
        server = getattr(self, "server", None)
        param_db = getattr(self, "param_db", None)
        return {
            "policy_version": self.params.version if hasattr(self, "params") else -1,
            "mean_batch": float(np.mean(sizes)) if sizes else 0.0,
            "latency_ms": getattr(self, "latency_ms", 0.0),
            "dropped": getattr(server, "dropped", 0),
            "drop_reasons": dict(server.drop_reasons) if server is not None else {},
            "rejected_checkpoints": getattr(param_db, "rejected_checkpoints", 0),
        }
