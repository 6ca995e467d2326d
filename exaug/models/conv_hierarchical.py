"""The ConvHVAE of appendix D(c) (architecture "convhvae"): the two-level model with gated convolutions.

Layer sizes follow the authors' code: on MNIST the encoders' feature maps are 28×28, 14×14 and 7×7 (appendix
D(c) prints 32×32 and 12×12). For C×H×W images:

* q(z2 | x): gated convolutions C→32 (7×7), 32→32 (3×3, stride 2), 32→64 (5×5), 64→64 (3×3, stride 2),
  64→6 (3×3), flattened to 6·⌈H/4⌉·⌈W/4⌉ features (294 on MNIST), then linear heads;
* the x branch of q(z1 | x, z2): the same stack with 3×3 kernels throughout; the z2 branch is a gated dense
  layer to the same width, and the two join in a gated dense layer of ``hidden_dim``;
* p(z1 | z2): as the HVAE's;
* p(x | z1, z2): gated dense layers from z1 and z2 (``hidden_dim`` each), joined by a gated dense layer to
  C·H·W values viewed as an image, four gated 3×3 convolutions of 64 channels, and a 1×1 convolution to the
  logits.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..config import ModelConfig
from .hierarchical import TwoLevelVAE
from .layers import GatedConv2d, GatedDense

FEATURE_CHANNELS = 6  # channels of the encoders' last feature map
DECODER_CHANNELS = 64


def conv_encoder(in_channels: int, first_kernel: int, third_kernel: int) -> nn.Sequential:
    """The five gated convolutions of an encoder, flattened: 32, 32 (stride 2), 64, 64 (stride 2), 6 channels."""
    return nn.Sequential(
        GatedConv2d(in_channels, 32, first_kernel, 1, first_kernel // 2),
        GatedConv2d(32, 32, 3, 2, 1),
        GatedConv2d(32, 64, third_kernel, 1, third_kernel // 2),
        GatedConv2d(64, 64, 3, 2, 1),
        GatedConv2d(64, FEATURE_CHANNELS, 3, 1, 1),
        nn.Flatten(),
    )


class ImageDecoderHead(nn.Module):
    """Joint (z1, z2) features → a gated dense layer to C·H·W values viewed as an image → four gated 3×3
    convolutions → a 1×1 convolution to C channels of logits, returned flattened (B×C·H·W)."""

    def __init__(self, joint_width: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        channels = input_shape[0]
        self.input_shape = input_shape
        self.to_image = GatedDense(joint_width, channels * input_shape[1] * input_shape[2])
        self.convolutions = nn.Sequential(GatedConv2d(channels, DECODER_CHANNELS, 3, 1, 1),
                                          *[GatedConv2d(DECODER_CHANNELS, DECODER_CHANNELS, 3, 1, 1) for _ in range(3)])
        self.logits = nn.Conv2d(DECODER_CHANNELS, channels, 1)

    def forward(self, joint: torch.Tensor) -> torch.Tensor:
        image = self.to_image(joint).reshape(joint.shape[0], *self.input_shape)
        return self.logits(self.convolutions(image)).flatten(1)


class ConvHierarchicalVAE(TwoLevelVAE):
    """The ConvHVAE of appendix D(c); the paper trains it with the kNN exemplar prior, k = 10."""

    architecture: ClassVar[str] = "convhvae"

    def __init__(self, config: ModelConfig) -> None:
        channels, height, width = config.input_shape
        feature_width = FEATURE_CHANNELS * (-(-height // 4)) * (-(-width // 4))  # two stride-2 convolutions
        super().__init__(
            config,
            z2_trunk=conv_encoder(channels, first_kernel=7, third_kernel=5), z2_width=feature_width,
            x_branch=conv_encoder(channels, first_kernel=3, third_kernel=3), x_width=feature_width,
            decoder_head=ImageDecoderHead(2 * config.hidden_dim, config.input_shape))

    @property
    def output_layer(self) -> nn.Module:
        return self.decoder_head.logits

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.unflatten(self.flatten(images))
