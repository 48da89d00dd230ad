"""Running mean/std kept as module buffers, so it travels with the policy state."""

from __future__ import annotations

import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Running mean and variance over the leading dims (parallel-variance update, as in baselines)."""

    mean: torch.Tensor  # buffers (register_buffer), declared for the type checker
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...] = (), clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self.clip = clip
        self.eps = eps

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch [N, *shape] into the running statistics."""
        x = x.to(torch.float64).reshape(-1, *self.mean.shape)
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        delta = b_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + b_var * n + delta.square() * self.count * n / total) / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std, clipped."""
        mean = self.mean.to(x.dtype)
        std = (self.var + self.eps).sqrt().to(x.dtype)
        return ((x - mean) / std).clamp(-self.clip, self.clip)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std without clipping (value targets)."""
        return (x - self.mean.to(x.dtype)) / (self.var + self.eps).sqrt().to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """x * std + mean."""
        return x * (self.var + self.eps).sqrt().to(x.dtype) + self.mean.to(x.dtype)
