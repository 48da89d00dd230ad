"""Two trainers in two processes form a gloo group through name records and stay identical."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _trainer(rank: int, records_dir: str, out: mp.Queue) -> None:
    import torch

    from srl_runtime.name_records.directory import DirectoryNameRecords
    from srl_runtime.workers.trainer_group import TrainerGroup

    torch.manual_seed(100 + rank)  # different initial weights and different data per trainer
    torch.set_num_threads(1)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    nr = DirectoryNameRecords(records_dir)
    group = TrainerGroup(nr, "srl/_/t", rank, 2, "127.0.0.1", "cpu", timeout_seconds=60)
    group.broadcast_parameters(module)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    for _ in range(5):
        x = torch.randn(32, 4)
        loss = (module(x) - x.sum(1, keepdim=True)).square().mean()
        opt.zero_grad()
        loss.backward()
        group.average_gradients(module)
        opt.step()
    flat = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    out.put((rank, flat.tolist()))
    group.close()
    nr.close()


def test_two_trainers_average_gradients_and_stay_identical(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_trainer, args=(r, str(tmp_path / "nr"), out)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = dict(out.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    a, b = results[0], results[1]
    diff = max(abs(x - y) for x, y in zip(a, b, strict=True))
    assert diff < 1e-6, f"replicas diverged by {diff}"
