"""ExemplarVAE: the gated-MLP VAE of appendix D(a) with a pluggable prior (architecture "vae").

Data path: images (B×C×H×W in [0, 1]) → flattened → encoder → (μ, log σ²) → z →
decoder → Bernoulli logits → images. One latent, so the prior latent is z. The prior is one of
:mod:`exaug.priors`; with the exemplar prior the model also holds its exemplar set (latent means, uint8
images, labels), so a saved bundle is self-contained.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..config import ModelConfig
from ..priors import VampPrior, build_prior, log_normal_diag
from .base import ElboTerms, ExemplarGenerator, LogPrior, bernoulli_log_likelihood, clamped_log_var, reparameterize
from .layers import GatedDense, he_init_


class Encoder(nn.Module):
    """q(z|x): MLP[D-300-300] of gated layers, then linear heads to μ and clamped log σ²."""

    def __init__(self, input_dim: int, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(GatedDense(input_dim, hidden_dim), GatedDense(hidden_dim, hidden_dim))
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.log_var = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x_flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(x_flat)
        return self.mean(hidden), clamped_log_var(self.log_var(hidden))


class Decoder(nn.Module):
    """p(x|z): MLP[d-300-300] of gated layers, then a linear layer to Bernoulli logits."""

    def __init__(self, latent_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(GatedDense(latent_dim, hidden_dim), GatedDense(hidden_dim, hidden_dim))
        self.logits = nn.Linear(hidden_dim, output_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.logits(self.trunk(z))


class ExemplarVAE(ExemplarGenerator):
    """The MLP VAE of appendix D(a); its prior may be Gaussian, a VampPrior, or the exemplar prior (Norouzi et al., 2020).

    Args:
        config: the architecture; ``config.prior`` picks the prior.

    Example::

        vae = exaug.load_generator("runs/mnist")          # a bundle directory or a bundled name
        images = vae.sample(16)                           # 16×1×28×28 Bernoulli means
        twins = vae.generate(real_images)                 # exemplar-conditioned samples
    """

    architecture: ClassVar[str] = "vae"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.encoder = Encoder(config.input_dim, config.hidden_dim, config.latent_dim)
        self.decoder = Decoder(config.latent_dim, config.hidden_dim, config.input_dim)
        self.prior = build_prior(config.prior, config.latent_dim, config.input_shape, config.num_pseudo_inputs)
        he_init_(self.encoder)
        he_init_(self.decoder)
        if isinstance(self.prior, VampPrior):
            self.prior.reset_parameters()  # after He init, so the pseudo-inputs keep their own init

    @property
    def output_layer(self) -> nn.Module:
        return self.decoder.logits

    @property
    def twin_noise_dim(self) -> int:
        return self.config.latent_dim

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.flatten(images)

    def forward(self, x: torch.Tensor, log_prior: LogPrior | None = None,
                generator: torch.Generator | None = None) -> ElboTerms:
        x_flat = self.flatten(x)
        mu, log_var = self.encoder(x_flat)
        z = reparameterize(mu, log_var, generator)
        reconstruction = bernoulli_log_likelihood(x_flat, self.decoder(z))
        prior_term = self.log_prior(z) if log_prior is None else log_prior(z, mu)
        kl = log_normal_diag(z, mu, log_var) - prior_term
        return ElboTerms(reconstruction, kl, mu)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def exemplar_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.trunk(x)

    def mean_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder.mean(features)

    def log_rest(self, x_row: torch.Tensor, z_prior: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return bernoulli_log_likelihood(x_row.expand(z_prior.shape[0], -1), self.decoder(z_prior))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means of p(x|z) as images (B×C×H×W in [0, 1])."""
        return self.unflatten(torch.sigmoid(self.decoder(z)))

    def decode_prior_latent(self, z_prior: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.decode(z_prior)

    def _decode_around(self, mu: torch.Tensor, log_var: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        return self.decode(mu + self.kernel_std(log_var) * noise.to(mu))


