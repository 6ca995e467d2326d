"""create_classifier: the paper's MLP by name "mlp", or any timm model by its name."""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from .mlp import PermutationInvariantMLP


def create_classifier(name: str, input_shape: Sequence[int], num_classes: int,
                      hidden: Sequence[int] = (1024, 1024)) -> nn.Module:
    """Build a classifier for images of ``input_shape`` (C×H×W).

    Args:
        name: "mlp" for :class:`PermutationInvariantMLP`, otherwise a timm model name
            (e.g. "resnet18"), created untrained with ``in_chans`` and ``num_classes`` set.
        hidden: hidden widths of the MLP (ignored by timm models).
    """
    check_model_name(name)
    if name == "mlp":
        return PermutationInvariantMLP(math.prod(input_shape), num_classes, hidden)
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=input_shape[0])


def check_model_name(name: str) -> None:
    """Raise ValueError unless ``name`` is "mlp" or a timm model name (cheap: builds nothing)."""
    if name == "mlp":
        return
    import timm

    if not timm.is_model(name):
        raise ValueError(f"{name!r} is neither 'mlp' nor a timm model name; see timm.list_models()")
