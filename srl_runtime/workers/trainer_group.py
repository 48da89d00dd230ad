"""Several trainers training one policy: torch.distributed data parallelism, found through name records.

Trainer 0 picks a port on its host and registers `host:port` under the trainer-peers key; the others
wait for it there. Every trainer trains on its own samples; gradients are averaged with one
all-reduce per optimizer step (gloo on CPU, NCCL on GPU), and learner statistics (PopArt's moments)
are averaged the same way, so the replicas stay identical and only trainer 0 pushes versions.
"""

from __future__ import annotations

import datetime
import logging
import socket

import torch
import torch.distributed as dist
from torch import nn

from srl_runtime.name_records import keys
from srl_runtime.name_records.base import NameRecords

log = logging.getLogger(__name__)


class TrainerGroup:
    """Membership of one trainer in the experiment's process group."""

    def __init__(
        self,
        name_records: NameRecords,
        root: str,
        rank: int,
        world_size: int,
        host: str,
        device: str,
        timeout_seconds: float = 300.0,
        port: int = 0,
        advertise: str | None = None,
    ) -> None:
        self.rank = rank
        self.world_size = world_size
        self.backend = "nccl" if device == "cuda" else "gloo"
        key = f"{keys.trainer_peers(root)}/0"
        if rank == 0:
            address = f"{advertise or host}:{port or _free_port(host)}"
            name_records.add(key, address, keepalive_ttl=10.0, replace=True)
        else:
            log.info("trainer %d: waiting for trainer 0 under %s", rank, key)
            address = name_records.wait(key, timeout=timeout_seconds)
        log.info("trainer %d/%d: joining %s process group at %s", rank, world_size, self.backend, address)
        dist.init_process_group(
            self.backend,
            init_method=f"tcp://{address}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_seconds),
        )

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Make every replica start from trainer 0's parameters."""
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        """One flat all-reduce of every gradient, divided by the group size."""
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of `tensor` over the group (statistics such as PopArt's moments)."""
        out = tensor.clone()
        dist.all_reduce(out)
        return out / self.world_size

    def close(self) -> None:
        """Leave the group."""
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port(host: str) -> int:
    """A port free on `host` right now (the process group binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
