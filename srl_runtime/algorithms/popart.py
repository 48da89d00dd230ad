"""PopArt (van Hasselt et al. 2016): adaptive value-target statistics that preserve the value head's outputs.

The statistics are the policy's `value_norm` buffers (mean, var), so actors and policy workers
denormalise with them as they do for `normalizeReturns`; `count` holds the number of PopArt updates
(not samples). Each update moves the first and second moments of the targets towards the batch's by
max(beta, 1/updates) — an exact average over the first 1/beta updates, an exponential one after —
then rescales the value head's last layer so sigma' (w' x + b') + mu' == sigma (w x + b) + mu.
With a trainer group `reduce` averages the batch moments across trainers first (equal batch sizes),
so every replica keeps the same statistics and the same head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srl_runtime.policies.normalizer import RunningMeanStd

MIN_VAR = 1e-4  # sigma >= 0.01: a constant batch of targets must not blow the head up


class PopArt:
    """Updates `stats` from value targets and keeps `head` (the value output layer) output-preserving."""

    def __init__(
        self,
        stats: RunningMeanStd,
        head: nn.Linear,
        beta: float,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.stats = stats
        self.head = head
        self.beta = beta
        self.reduce = reduce

    @torch.no_grad()
    def update(self, targets: torch.Tensor) -> None:
        """Fold a batch of unnormalised targets into the statistics and rescale the head."""
        s = self.stats
        x = targets.detach().to(device=s.mean.device, dtype=torch.float64).reshape(-1)
        moments = torch.stack([x.mean(), x.square().mean()])
        if self.reduce is not None:
            moments = self.reduce(moments)
        updates = float(s.count.round()) + 1.0 if float(s.count) >= 1.0 else 1.0
        step = max(self.beta, 1.0 / updates)
        old_mean = s.mean.clone()
        old_std = (s.var + s.eps).sqrt()
        mean = old_mean + step * (moments[0] - old_mean)
        second = (s.var + old_mean.square()) + step * (moments[1] - (s.var + old_mean.square()))
        var = (second - mean.square()).clamp(min=MIN_VAR)
        s.mean.copy_(mean)
        s.var.copy_(var)
        s.count.copy_(torch.as_tensor(updates, dtype=torch.float64))
        new_std = (var + s.eps).sqrt()
        w = self.head.weight.to(torch.float64)
        b = self.head.bias.to(torch.float64)
        self.head.weight.copy_((w * (old_std / new_std)).to(self.head.weight.dtype))
        self.head.bias.copy_(((old_std * b + old_mean - mean) / new_std).to(self.head.bias.dtype))
