"""Image in the caller's format → synthetic twin in the caller's format: the one path every plugin uses.

A twin of an exemplar x is the paper's synthetic image (§5.4):

    z = μ(x) + s·σ·ε,   ε ~ N(0, I),   x̃ = sigmoid(decoder(z)) rounded to multiples of 1/255,

with z the generator's prior latent, σ the exemplar prior's learned kernel scale (the posterior's for other
priors) and s the caller's noise scale folded into ε. A hierarchical generator also draws z1 ~ p(z1 | z2)
from the rest of ε (``twin_noise_dim`` draws in all), so the caller's stream covers both draws. The twin keeps x's dtype (uint8 levels or floats in [0, 1]) and shape.
"""

from __future__ import annotations

import math

import torch

from .images import as_unit_float, in_format_of
from .models import ExemplarGenerator


@torch.no_grad()
def twins_of(generator: ExemplarGenerator, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One twin per image of a checked batch B×C×H×W, in the batch's dtype.

    Args:
        generator: the generator, on the batch's device.
        images: uint8, or float in [0, 1].
        noise: B×``generator.twin_noise_dim`` standard-normal draws already multiplied by the noise scale.
    """
    mu, log_var = generator.encode(as_unit_float(images).to(generator.dtype))
    return twins_around(generator, mu, log_var, noise, like=images)


@torch.no_grad()
def twins_around(generator: ExemplarGenerator, mu: torch.Tensor, log_var: torch.Tensor | None, noise: torch.Tensor,
                 like: torch.Tensor) -> torch.Tensor:
    """Twins decoded around latent means already at hand (e.g. an exemplar's cached mean), in ``like``'s dtype.

    Args:
        mu, log_var: B×d posterior parameters; ``log_var`` may be None for the exemplar prior, whose kernel σ
            is its own scalar.
        noise: B×``generator.twin_noise_dim`` standard-normal draws already multiplied by the noise scale.
        like: the images the twins stand for (their dtype decides uint8 levels or floats in [0, 1]).
    """
    return in_format_of(generator.decode_around(mu, log_var, noise), like)


def twin_noise(generator: ExemplarGenerator, count: int, noise_scale: float, stream: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The standard-normal draws of ``count`` twins (count × ``generator.twin_noise_dim``) from ``stream``, the prior
    latent's part scaled by ``noise_scale``: the scale widens or narrows the kernel around the exemplar, while a
    hierarchical generator's draw of z1 from p(z1 | z2) stays its generative model's."""
    noise = torch.randn(count, generator.twin_noise_dim, generator=stream, device=device, dtype=dtype)
    noise[:, :generator.config.latent_dim] *= noise_scale
    return noise


def check_probability(p: float) -> float:
    """The probability that an image gets a twin, as a float checked to lie in [0, 1]."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p} is a probability and must lie in [0, 1]")
    return float(p)


def check_noise_scale(noise_scale: float) -> float:
    """The factor on the σ used when sampling around an exemplar (the exemplar kernel's, or for other
    priors the posterior's), as a float checked finite and non-negative."""
    try:
        value = float(noise_scale)
    except (TypeError, ValueError):
        raise ValueError(f"noise_scale={noise_scale!r} must be a number (1.0 is the paper's sampler)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"noise_scale={noise_scale} multiplies the kernel's σ and must be a finite number >= 0 "
                         "(1.0 is the paper's sampler)")
    return value
