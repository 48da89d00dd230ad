"""Choices that depend on where workers run: stream kinds and torch threading."""

from __future__ import annotations

from srl_runtime.config.experiment import ExperimentSpec


def inference_kind(spec: ExperimentSpec, distributed: bool) -> str:
    """inline without policy workers; else shm on one host, zmq when workers run on separate hosts
    (`distributed`: `srl worker`, pods), unless the spec pins it."""
    if spec.streams.inference != "auto":
        return spec.streams.inference
    if spec.policy_workers.replicas == 0:
        return "inline"
    return "zmq" if distributed else "shm"


def sample_kind(spec: ExperimentSpec, distributed: bool) -> str:
    """shm on one host, zmq when workers run on separate hosts, unless the spec pins it."""
    if spec.streams.sample != "auto":
        return spec.streams.sample
    return "zmq" if distributed else "shm"


def set_torch_threads(threads: int) -> None:
    """Pin torch's intra-op pool: on a 2-core machine every worker oversubscribing cores costs more than it gains."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set once in this process
