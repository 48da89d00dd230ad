"""One optimizer step that never lets a non-finite loss or gradient reach the parameters.

Learners call `guarded_step` instead of backward/clip/step. A NaN/inf loss or gradient norm skips the
step: gradients are cleared, parameters and optimizer state stay exactly as they were, and the
caller counts the skip. With a trainer group the decision is made on the synchronised gradients
(a replica whose loss is non-finite poisons its gradients first), so every replica skips the same
steps and the all-reduce never deadlocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def guarded_step(
    optimizer: torch.optim.Optimizer,
    module: nn.Module,
    loss: torch.Tensor,
    *,
    max_grad_norm: float | None = None,
    grad_sync: Callable[[nn.Module], None] | None = None,
) -> float | None:
    """Backward, (sync,) clip and step; returns the gradient norm, or None when the step was skipped."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not bool(torch.isfinite(loss.detach())):
        for g in grads:
            g.fill_(float("nan"))
    if grad_sync is not None:
        grad_sync(module)
    if max_grad_norm is not None:
        grad_norm = float(nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm))
    else:
        grad_norm = float(torch.norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
    if not math.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return grad_norm
