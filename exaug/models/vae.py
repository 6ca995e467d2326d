"""ExemplarVAE: the gated-MLP VAE of appendix D(a) with a pluggable prior.

Data path: images (B×C×H×W in [0, 1]) → flattened → encoder → (μ, log σ²) → z →
decoder → Bernoulli logits → images. The prior is one of :mod:`exaug.priors`; with the
exemplar prior the model also holds its exemplar set (latent means, uint8 images,
labels), so a saved bundle is self-contained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from ..images import as_uint8, as_unit_float
from ..priors import ExemplarPrior, VampPrior, build_prior, log_normal_diag
from .layers import GatedDense, he_init_

LOG_VAR_MIN, LOG_VAR_MAX = -6.0, 2.0  # hardtanh clamp on the posterior log-variance (VampPrior code)


class Encoder(nn.Module):
    """q(z|x): MLP[D-300-300] of gated layers, then linear heads to μ and clamped log σ²."""

    def __init__(self, input_dim: int, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(GatedDense(input_dim, hidden_dim), GatedDense(hidden_dim, hidden_dim))
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.log_var = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x_flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.trunk(x_flat)
        return self.mean(hidden), F.hardtanh(self.log_var(hidden), LOG_VAR_MIN, LOG_VAR_MAX)

    def mean_only(self, x_flat: torch.Tensor) -> torch.Tensor:
        """μ(x) without the log-variance head: all the exemplar prior needs of an exemplar."""
        return self.mean(self.trunk(x_flat))


class Decoder(nn.Module):
    """p(x|z): MLP[d-300-300] of gated layers, then a linear layer to Bernoulli logits."""

    def __init__(self, latent_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(GatedDense(latent_dim, hidden_dim), GatedDense(hidden_dim, hidden_dim))
        self.logits = nn.Linear(hidden_dim, output_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.logits(self.trunk(z))


@dataclass
class ElboTerms:
    """Single-sample ELBO pieces per example (Table 9): ``elbo = reconstruction - kl``."""

    reconstruction: torch.Tensor  # log p(x|z)
    kl: torch.Tensor  # log q(z|x) - log p(z), a one-sample estimate of the KL term

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


class ExemplarVAE(nn.Module):
    """A VAE whose prior may be Gaussian, a VampPrior, or the exemplar prior (Norouzi et al., 2020).

    Args:
        config: the architecture; ``config.prior`` picks the prior.

    Example::

        vae = exaug.load_generator("runs/mnist")          # a bundle directory or a bundled name
        images = vae.sample(16)                           # 16×1×28×28 Bernoulli means
        twins = vae.generate(real_images)                 # exemplar-conditioned samples
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.input_dim, config.hidden_dim, config.latent_dim)
        self.decoder = Decoder(config.latent_dim, config.hidden_dim, config.input_dim)
        self.prior = build_prior(config.prior, config.latent_dim, config.input_dim, config.num_pseudo_inputs)
        he_init_(self.encoder)
        he_init_(self.decoder)
        if isinstance(self.prior, VampPrior):
            self.prior.reset_parameters()  # after He init, so the pseudo-inputs keep their own init
        self.exemplar_images: torch.Tensor | None = None  # uint8 N×C×H×W, kept on the CPU
        self.exemplar_labels: torch.Tensor | None = None  # int64 N, when the data had labels
        # Latent means of the exemplar set (N×d); saved in exemplars.safetensors, not with the weights.
        self.register_buffer("exemplar_means", torch.empty(0, config.latent_dim), persistent=False)

    # ----------------------------------------------------------------- shapes
    def flatten(self, images: torch.Tensor) -> torch.Tensor:
        """B×C×H×W (or B×D) images, uint8 or float in [0, 1] → float B×D, checking the size against the config."""
        if images.ndim < 2:
            raise ValueError(f"expected a batch of images, got a tensor of shape {tuple(images.shape)}")
        flat = as_unit_float(images).reshape(images.shape[0], -1)
        if flat.shape[1] != self.config.input_dim:
            raise ValueError(
                f"images of shape {tuple(images.shape[1:])} do not fit this generator, which was built for "
                f"{self.config.input_shape} (C×H×W); resize the data or fit a generator on it"
            )
        return flat.to(dtype=self.dtype)

    def unflatten(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(flat.shape[0], *self.config.input_shape)

    @property
    def device(self) -> torch.device:
        return self.decoder.logits.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.logits.weight.dtype

    # ---------------------------------------------------------------- pieces
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters (μ, log σ²) of q(z|x), each B×d."""
        return self.encoder(self.flatten(images))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means of p(x|z) as images (B×C×H×W in [0, 1])."""
        return self.unflatten(torch.sigmoid(self.decoder(z)))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the model's prior (the exemplar prior uses all exemplars, no leave-one-out)."""
        return self.prior.log_prob(z, self.encoder)

    @staticmethod
    def log_likelihood(x_flat: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log Bernoulli(x | sigmoid(logits)) summed over pixels; x may be grey (a soft target)."""
        return -F.binary_cross_entropy_with_logits(logits, x_flat, reduction="none").sum(-1)

    # ------------------------------------------------------------ objectives
    def elbo_terms(self, images: torch.Tensor, generator: torch.Generator | None = None) -> ElboTerms:
        """One-sample reconstruction and KL terms per example under the model's prior."""
        x_flat = self.flatten(images)
        mu, log_var = self.encoder(x_flat)
        z = reparameterize(mu, log_var, generator)
        reconstruction = self.log_likelihood(x_flat, self.decoder(z))
        kl = log_normal_diag(z, mu, log_var) - self.log_prior(z)
        return ElboTerms(reconstruction, kl)

    @torch.no_grad()
    def iwae(self, images: torch.Tensor, num_samples: int = 5000, chunk_size: int = 500,
             generator: torch.Generator | None = None, prior_tolerance: float | None = 1e-3) -> torch.Tensor:
        """IWAE bound (Burda et al., 2015) on log p(x) per example, with ``num_samples`` importance samples.

        An evaluation, so no autograd graph is kept. Samples go through the networks ``chunk_size``
        at a time per image, so activations stay bounded however large ``num_samples`` is; only the
        ``num_samples`` log-weights of one image are held at once.

        With the exemplar prior, each image's samples are scored against the exemplars near its posterior
        mean (:meth:`ExemplarPrior.log_prob_near`): the bound is then at most ``prior_tolerance`` nats below
        the one over all exemplars, certified; ``None`` scores every sample against every exemplar.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be >= 1")
        x_flat = self.flatten(images)
        mu, log_var = self.encoder(x_flat)
        bounds = []
        near = prior_tolerance is not None and isinstance(self.prior, ExemplarPrior)
        for x_row, mu_row, log_var_row in zip(x_flat, mu, log_var):
            ranking = self.prior.rank_exemplars(mu_row) if near else None
            log_weights = []
            for start in range(0, num_samples, chunk_size):
                count = min(chunk_size, num_samples - start)
                z = reparameterize(mu_row.expand(count, -1), log_var_row.expand(count, -1), generator)
                log_px = self.log_likelihood(x_row.expand(count, -1), self.decoder(z))
                if near:
                    log_prior = self.prior.log_prob_near(z, mu_row, prior_tolerance, ranking=ranking)
                else:
                    log_prior = self.log_prior(z)
                log_weights.append(log_px + log_prior - log_normal_diag(z, mu_row, log_var_row))
            bounds.append(torch.logsumexp(torch.cat(log_weights), 0) - math.log(num_samples))
        return torch.stack(bounds)

    # ------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n random images (Bernoulli means) from the prior: Fig. 9."""
        return self.decode(self.prior.sample(n, self.encoder, generator))

    @torch.no_grad()
    def generate(self, exemplars: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One new image per exemplar (grey, in [0, 1]): z ~ N(μ(x), σ² I), x̃ = Bernoulli mean.

        With the exemplar prior σ² is its learned scalar (§5.4); other priors have no such
        kernel, so their posterior q(z|x) is sampled instead.
        """
        mu, log_var = self.encode(exemplars.to(self.device))
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.decode_around(mu, log_var, noise)

    def decode_around(self, mu: torch.Tensor, log_var: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        """Decode z = μ + σ·noise, σ being the exemplar kernel's (or, for other priors, the posterior's)."""
        return self.decode(mu + self.kernel_std(log_var) * noise.to(mu))

    def kernel_std(self, log_var: torch.Tensor | None = None) -> torch.Tensor:
        """σ of the Gaussian placed around an exemplar mean: the exemplar prior's learned scalar, else q(z|x)'s."""
        if isinstance(self.prior, ExemplarPrior):
            return torch.exp(0.5 * self.prior.log_var)
        if log_var is None:
            raise ValueError("a prior without an exemplar kernel needs the posterior log-variance to sample around μ")
        return torch.exp(0.5 * log_var)

    # ------------------------------------------------------------- exemplars
    def encode_means(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """μ(x) for many images, in batches, without gradient. ``images`` may be uint8 or float in [0, 1]."""
        return self._in_batches(self.encoder.mean_only, images, batch_size, self.config.latent_dim)

    def encode_trunk(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The encoder trunk's features for many images, in batches, without gradient: what μ(x) and log σ²(x)
        are read from. ``images`` may be uint8 or float in [0, 1]."""
        return self._in_batches(self.encoder.trunk, images, batch_size, self.config.hidden_dim)

    @torch.no_grad()
    def _in_batches(self, encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int,
                    width: int) -> torch.Tensor:
        outputs = [encode(self.flatten(as_unit_float(images[start:start + batch_size]).to(self.device)))
                   for start in range(0, images.shape[0], batch_size)]
        return torch.cat(outputs) if outputs else torch.empty(0, width, device=self.device)

    def set_exemplars(self, images: torch.Tensor | None, labels: torch.Tensor | None = None,
                      means: torch.Tensor | None = None) -> None:
        """Make ``images`` (uint8 or float in [0, 1], N×C×H×W) the exemplar set.

        The latent means are computed with the current encoder unless given; they become
        the components of the exemplar prior. ``images`` may be None when ``means`` are
        given (a bundle shipped without its images).
        """
        if images is None:
            if means is None:
                raise ValueError("set_exemplars needs the exemplar images, or their latent means")
            images_u8, count = None, means.shape[0]
        else:
            images_u8, count = as_uint8(images).cpu(), images.shape[0]
            if tuple(images_u8.shape[1:]) != self.config.input_shape:
                raise ValueError(f"exemplars of shape {tuple(images_u8.shape[1:])} do not match {self.config.input_shape}")
        if labels is not None and labels.shape != (count,):
            raise ValueError(f"labels have shape {tuple(labels.shape)}; expected ({count},)")
        self.exemplar_images = images_u8
        self.exemplar_labels = None if labels is None else labels.to(torch.int64).cpu()
        if means is None:
            means = self.encode_means(images_u8)
        self.exemplar_means = means.detach().to(device=self.device, dtype=self.dtype)
        if isinstance(self.prior, ExemplarPrior):
            self.prior.set_exemplar_means(self.exemplar_means)

    def without_exemplars(self) -> "ExemplarVAE":
        """A copy with the networks and prior parameters only: small to pickle into DataLoader workers."""
        with torch.random.fork_rng(devices=[]):  # building runs the He init: keep the caller's random stream
            slim = ExemplarVAE(self.config).to(device=self.device, dtype=self.dtype)
        slim.load_state_dict(self.state_dict())
        return slim.train(self.training)


def reparameterize(mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + σ ε with ε ~ N(0, I), differentiable in μ and log σ²."""
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * log_var) * noise
