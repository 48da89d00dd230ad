"""Every name-record key the system uses, in one place.

Keys are '/'-separated paths under one root per experiment (and per Kubernetes namespace when there is
one), so `get_subtree(experiment_root(...))` sees everything an experiment registered.
"""

from __future__ import annotations


def experiment_root(experiment: str, namespace: str | None = None) -> str:
    """Root of all keys of one experiment."""
    return f"srl/{namespace or '_'}/{experiment}"


def inference_stream(root: str, policy_index: int) -> str:
    """Address (e.g. tcp://10.0.0.5:4100 or shm name) of policy worker `policy_index`'s inference server."""
    return f"{root}/streams/inference/{policy_index}"


def inference_streams(root: str) -> str:
    """Subtree of all inference-stream servers."""
    return f"{root}/streams/inference"


def sample_stream(root: str, trainer_index: int) -> str:
    """Address trainer `trainer_index` pulls samples on."""
    return f"{root}/streams/sample/{trainer_index}"


def sample_streams(root: str) -> str:
    """Subtree of all sample-stream consumers."""
    return f"{root}/streams/sample"


def trainer_peers(root: str) -> str:
    """Subtree where trainers register their torch.distributed rendezvous addresses."""
    return f"{root}/trainers/peers"


def worker_progress(root: str, role: str, index: int) -> str:
    """JSON progress of one worker (frames, steps, version, recent returns), refreshed with keep-alive."""
    return f"{root}/progress/{role}/{index}"


def progress_root(root: str) -> str:
    """Subtree of every worker's progress."""
    return f"{root}/progress"


def stop_flag(root: str) -> str:
    """Present (value = reason) once the experiment should stop."""
    return f"{root}/state/stop"


def experiment_state(root: str) -> str:
    """JSON summary of the experiment (stop reason, version, frames, frames/s, mean return), written by
    the experiment monitor (launcher/monitor.py: the local launcher, or trainer 0 in a pod); the operator reads it."""
    return f"{root}/state/summary"

