"""The permutation-invariant MLP of §5.4: flattened pixels, ReLU hidden layers, no input-position prior."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class PermutationInvariantMLP(nn.Module):
    """Flatten → [Linear → ReLU] × len(hidden) → Linear.

    The pixels are flattened and every layer is fully connected, so a fixed permutation
    of the pixels leaves what the network can learn unchanged (the "permutation
    invariant" benchmark of Tables 6 and 7).

    Args:
        input_dim: number of input values (C·H·W).
        num_classes: number of output logits.
        hidden: widths of the hidden layers, e.g. (1024, 1024) or (8192, 8192).
    """

    def __init__(self, input_dim: int, num_classes: int, hidden: Sequence[int] = (1024, 1024)) -> None:
        super().__init__()
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden={tuple(hidden)} must list at least one positive layer width")
        self.hidden = tuple(hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
