"""Image in the caller's format → synthetic twin in the caller's format: the one path every plugin uses.

A twin of an exemplar x is the paper's synthetic image (§5.4):

    z = μ(x) + s·σ·ε,   ε ~ N(0, I),   x̃ = sigmoid(decoder(z)) rounded to multiples of 1/255,

with σ the exemplar prior's learned kernel scale (the posterior's for other priors) and s the caller's
noise scale folded into ε. The twin keeps x's dtype (uint8 levels or floats in [0, 1]) and shape.
"""

from __future__ import annotations

import torch

from .images import in_format_of
from .vae import ExemplarVAE, as_unit_float


@torch.no_grad()
def twins_of(generator: ExemplarVAE, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One twin per image of a checked batch B×C×H×W, in the batch's dtype.

    Args:
        generator: the Exemplar VAE, on the batch's device.
        images: uint8, or float in [0, 1].
        noise: B×d standard-normal draws already multiplied by the noise scale.
    """
    mu, log_var = generator.encode(as_unit_float(images).to(generator.dtype))
    return in_format_of(generator.decode_around(mu, log_var, noise), images)
