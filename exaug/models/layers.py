"""Gated dense layers (Dauphin et al., 2017), the activation of appendix D."""

from __future__ import annotations

import torch
from torch import nn


class GatedDense(nn.Module):
    """``h(x) * sigmoid(g(x))``: two parallel linear branches, one gating the other.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.h = nn.Linear(in_features, out_features)
        self.g = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def he_init_(module: nn.Module) -> None:
    """He-normal initialisation of every linear weight below ``module``, as the VampPrior code does."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight)
