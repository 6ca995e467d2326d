"""Two-level hierarchical VAEs (appendix D(b), architecture "hvae"), and what the convolutional one shares.

Generative model p(z2) p(z1 | z2) p(x | z1, z2); posterior q(z2 | x) q(z1 | x, z2). The prior (Gaussian,
VampPrior or exemplar) is on z2, the prior latent; p(z1 | z2) is a learned diagonal Gaussian, as in the
authors' code and appendix D(b) (§5.1's sentence about a standard Gaussian over z1 is not what they ran).
Both latents are ``latent_dim``-dimensional.

:class:`TwoLevelVAE` owns the two-level probability model: sampling order, the ELBO, the IWAE weights and
twins. Its subclasses supply three networks: the z2 encoder trunk, the x branch of q(z1 | x, z2), and the
decoder head that turns the joint (z1, z2) features into Bernoulli logits.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..config import ModelConfig
from ..priors import build_prior, log_normal_diag
from .base import ElboTerms, ExemplarGenerator, LogPrior, bernoulli_log_likelihood, clamped_log_var, reparameterize
from .layers import GatedDense, he_init_


class GaussianHead(nn.Module):
    """Linear heads to (μ, clamped log σ²) of a diagonal Gaussian."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.mean = nn.Linear(in_features, latent_dim)
        self.log_var = nn.Linear(in_features, latent_dim)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(hidden), clamped_log_var(self.log_var(hidden))


class TwoLevelVAE(ExemplarGenerator):
    """The two-level model of appendix D(b)/(c) around three networks a subclass builds.

    Args:
        config: the architecture; ``config.prior`` is the prior over z2.
        z2_trunk: model-layout images → B×``z2_width`` features of q(z2 | x).
        x_branch: model-layout images → B×``x_width`` features, the x half of q(z1 | x, z2).
        decoder_head: B×2·hidden joint (z1, z2) features → B×C·H·W Bernoulli logits.
    """

    def __init__(self, config: ModelConfig, z2_trunk: nn.Module, z2_width: int, x_branch: nn.Module, x_width: int,
                 decoder_head: nn.Module) -> None:
        super().__init__(config)
        hidden, latent = config.hidden_dim, config.latent_dim
        self.z2_trunk = z2_trunk
        self.z2_head = GaussianHead(z2_width, latent)
        self.z1_x_branch = x_branch
        self.z1_z2_branch = GatedDense(latent, x_width)
        self.z1_joint = GatedDense(2 * x_width, hidden)
        self.z1_head = GaussianHead(hidden, latent)
        self.z1_prior_trunk = nn.Sequential(GatedDense(latent, hidden), GatedDense(hidden, hidden))
        self.z1_prior_head = GaussianHead(hidden, latent)
        self.decoder_z1 = GatedDense(latent, hidden)
        self.decoder_z2 = GatedDense(latent, hidden)
        self.decoder_head = decoder_head
        self.prior = build_prior(config.prior, latent, config.input_shape, config.num_pseudo_inputs)
        he_init_(self)  # linear layers only: the VampPrior's pseudo-inputs keep their own init

    @property
    def twin_noise_dim(self) -> int:
        return 2 * self.config.latent_dim  # one draw for z2 around the exemplar, one for z1 ~ p(z1 | z2)

    # ------------------------------------------------------------------ the networks
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.z2_head(self.z2_trunk(x))

    def exemplar_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.z2_trunk(x)

    def mean_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.z2_head.mean(features)

    def z1_posterior(self, x_features: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z1 | x, z2) from the x branch's features and a z2 per row."""
        joint = torch.cat([x_features, self.z1_z2_branch(z2)], dim=1)
        return self.z1_head(self.z1_joint(joint))

    def z1_prior(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z1 | z2): the learned diagonal Gaussian."""
        return self.z1_prior_head(self.z1_prior_trunk(z2))

    def logits(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of p(x | z1, z2), B×C·H·W."""
        return self.decoder_head(torch.cat([self.decoder_z1(z1), self.decoder_z2(z2)], dim=1))

    def decode(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Bernoulli means of p(x | z1, z2) as images (B×C×H×W in [0, 1])."""
        return self.unflatten(torch.sigmoid(self.logits(z1, z2)))

    # ------------------------------------------------------------------- the model
    def forward(self, x: torch.Tensor, log_prior: LogPrior | None = None,
                generator: torch.Generator | None = None) -> ElboTerms:
        x = self.model_input(x)
        mu2, log_var2 = self.posterior(x)
        z2 = reparameterize(mu2, log_var2, generator)
        reconstruction, kl_z1 = self.given_z2(self.flatten(x), self.z1_x_branch(x), z2, generator)
        log_p_z2 = self.log_prior(z2) if log_prior is None else log_prior(z2, mu2)
        kl = kl_z1 + log_normal_diag(z2, mu2, log_var2) - log_p_z2
        return ElboTerms(reconstruction, kl, mu2)

    def log_rest(self, x_row: torch.Tensor, z_prior: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        count = z_prior.shape[0]
        x = x_row.unsqueeze(0)  # the same image for every sample: its features are computed once
        log_px, kl_z1 = self.given_z2(self.flatten(x).expand(count, -1), self.z1_x_branch(x).expand(count, -1),
                                      z_prior, generator)
        return log_px - kl_z1

    def given_z2(self, x_flat: torch.Tensor, x_features: torch.Tensor, z2: torch.Tensor,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The lower layer for a z2 per row: z1 ~ q(z1 | x, z2) drawn from ``generator``, then log p(x | z1, z2)
        and the one-sample KL term of z1, log q(z1 | x, z2) − log p(z1 | z2)."""
        mu1, log_var1 = self.z1_posterior(x_features, z2)
        z1 = reparameterize(mu1, log_var1, generator)
        prior_mu1, prior_log_var1 = self.z1_prior(z2)
        log_px = bernoulli_log_likelihood(x_flat, self.logits(z1, z2))
        return log_px, log_normal_diag(z1, mu1, log_var1) - log_normal_diag(z1, prior_mu1, prior_log_var1)

    def decode_prior_latent(self, z_prior: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.decode(reparameterize(*self.z1_prior(z_prior), generator), z_prior)

    def _decode_around(self, mu: torch.Tensor, log_var: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        """The authors' twin: z2 = μ2 + σ·noise[:, :d], z1 = μ(z2) + σ(z2)·noise[:, d:] under p(z1 | z2), then the
        Bernoulli mean."""
        noise = noise.to(mu)
        latent = self.config.latent_dim
        z2 = mu + self.kernel_std(log_var) * noise[:, :latent]
        prior_mu1, prior_log_var1 = self.z1_prior(z2)
        return self.decode(prior_mu1 + torch.exp(0.5 * prior_log_var1) * noise[:, latent:], z2)


class HierarchicalVAE(TwoLevelVAE):
    """The HVAE of appendix D(b): two 40-d stochastic layers and gated dense layers of ``hidden_dim`` units.

    q(z2 | x) = MLP[D-300-300]; q(z1 | x, z2) joins MLP[D-300] and MLP[d-300] into a gated layer of 300;
    p(z1 | z2) = MLP[d-300-300]; p(x | z1, z2) joins MLP[d-300] twice into a gated layer of 300, then a linear
    layer to the logits.
    """

    architecture: ClassVar[str] = "hvae"

    def __init__(self, config: ModelConfig) -> None:
        hidden, pixels = config.hidden_dim, config.input_dim
        super().__init__(
            config,
            z2_trunk=nn.Sequential(GatedDense(pixels, hidden), GatedDense(hidden, hidden)), z2_width=hidden,
            x_branch=GatedDense(pixels, hidden), x_width=hidden,
            decoder_head=nn.Sequential(GatedDense(2 * hidden, hidden), nn.Linear(hidden, pixels)))

    @property
    def output_layer(self) -> nn.Module:
        return self.decoder_head[-1]

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.flatten(images)
