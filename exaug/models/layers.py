"""Gated dense and convolutional layers (Dauphin et al., 2017), the activation of appendix D."""

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
    """He-normal initialisation of every linear weight below ``module``, as the VampPrior and Exemplar VAE code
    do; biases and convolutions keep PyTorch's default initialisation, as there."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight)


class GatedConv2d(nn.Module):
    """``h(x) * sigmoid(g(x))`` with two parallel convolutions: the gated convolution of the ConvHVAE.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as :class:`torch.nn.Conv2d`, for both branches.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__()
        self.h = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.g = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))
