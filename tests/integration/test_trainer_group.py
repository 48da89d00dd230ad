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


def _popart_trainer(rank: int, records_dir: str, out: mp.Queue) -> None:
    import gymnasium as gym
    import torch

    from srl_runtime.algorithms.popart import PopArt
    from srl_runtime.config.experiment import PolicySpec
    from srl_runtime.name_records.directory import DirectoryNameRecords
    from srl_runtime.policies import Policy
    from srl_runtime.workers.trainer_group import TrainerGroup

    torch.set_num_threads(1)
    torch.manual_seed(100 + rank)  # different initial heads: the broadcast makes them equal
    env = gym.make("CartPole-v1")
    policy = Policy(env.observation_space, env.action_space, PolicySpec())
    nr = DirectoryNameRecords(records_dir)
    group = TrainerGroup(nr, "srl/_/popart", rank, 2, "127.0.0.1", "cpu", timeout_seconds=60)
    group.broadcast_parameters(policy.module)
    popart = PopArt(policy.module.value_norm, policy.module.critic_head, beta=0.5, reduce=group.mean)
    for step in range(3):
        # Each trainer sees its own targets: rank 0 around 10, rank 1 around 50 (+ growth per step).
        targets = torch.linspace(-1.0, 1.0, 64, dtype=torch.float64) * (3.0 + rank) + 10.0 + 40.0 * rank + 5.0 * step
        popart.update(targets)
    vn = policy.module.value_norm
    out.put((rank, [float(vn.mean), float(vn.var)], policy.module.critic_head.weight.detach().reshape(-1).tolist()))
    group.close()
    nr.close()


def _pooled_popart(beta: float = 0.5) -> tuple[float, float]:
    """The statistics one trainer would keep if it saw both trainers' batch moments averaged."""
    import torch

    mean, var = 0.0, 1.0
    for step in range(3):
        moments = []
        for rank in range(2):
            x = torch.linspace(-1.0, 1.0, 64, dtype=torch.float64) * (3.0 + rank) + 10.0 + 40.0 * rank + 5.0 * step
            moments.append((float(x.mean()), float(x.square().mean())))
        m1 = sum(m[0] for m in moments) / 2
        m2 = sum(m[1] for m in moments) / 2
        rate = max(beta, 1.0 / (step + 1))
        second = var + mean**2
        mean = mean + rate * (m1 - mean)
        second = second + rate * (m2 - second)
        var = second - mean**2
    return mean, var


def test_popart_statistics_are_reduced_across_the_group(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_popart_trainer, args=(r, str(tmp_path / "nr"), out)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = {rank: (stats, head) for rank, stats, head in (out.get(timeout=120) for _ in procs)}
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    (stats0, head0), (stats1, head1) = results[0], results[1]
    assert stats0 == stats1, "the trainers' PopArt statistics differ"
    assert max(abs(a - b) for a, b in zip(head0, head1, strict=True)) < 1e-7, "the trainers' value heads differ"
    mean, var = _pooled_popart()
    assert abs(stats0[0] - mean) < 1e-9 and abs(stats0[1] - var) < 1e-9, (stats0, (mean, var))
