"""Gradient-normalised Adam (Yu et al., 2017), the optimiser of the VampPrior and Exemplar VAE papers."""

from __future__ import annotations

import torch

EPSILON = 1e-8  # keeps an all-zero gradient at zero instead of dividing by zero


class NormalizedAdam(torch.optim.Adam):
    """Adam on per-tensor normalised gradients: each parameter's gradient is divided by its L2 norm.

    Normalising makes every tensor's step insensitive to the scale of its gradient, which
    keeps the tiny-gradient pseudo-inputs and the large decoder weights moving at similar
    rates. Takes the same arguments as :class:`torch.optim.Adam`.
    """

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norms = torch._foreach_norm(grads)  # one fused call instead of a norm per tensor
            torch._foreach_add_(norms, EPSILON)
            torch._foreach_div_(grads, norms)
        super().step()
        return loss
