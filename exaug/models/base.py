"""ExemplarGenerator: what every generator architecture provides, and the parts they all share.

A generator has one latent that carries the prior (z for the MLP VAE, z2 for the hierarchical ones): the
"prior latent". Everything outside ``exaug/models/`` — the trainer, the exemplar objective, evaluation,
sampling, the bundle format and the plugin — reaches a generator through this class alone:

* ``forward(x, log_prior, generator)``: the one-sample ELBO terms of binary images, the model's loss; the
  trainer passes its own prior term (eq. 13) as ``log_prior``, evaluation leaves the model's prior;
* ``encode(images)``: the posterior q(z_p | x) of the prior latent;
* ``exemplar_mean`` / ``exemplar_features`` + ``mean_from_features``: the exemplar re-encoding, with gradient;
* ``decode_around(mu, log_var, noise)`` and ``twin_noise_dim``: a twin decoded around a prior-latent mean from
  ``twin_noise_dim`` standard-normal draws, so a caller's ``rng`` covers every draw a twin needs;
* ``iwae``, ``sample``, ``generate`` and the exemplar set (``set_exemplars``, ``exemplar_means``,
  ``exemplar_images``, ``exemplar_labels``).

An architecture subclasses it, builds its layers and ``self.prior`` in ``__init__``, and defines the abstract
methods below; :func:`exaug.models.build_generator` builds one by ``ModelConfig.architecture``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from ..exemplar_images import ExemplarImages, FloatExemplarImages
from ..images import as_uint8, as_unit_float
from ..priors import ExemplarPrior, log_normal_diag

LOG_VAR_MIN, LOG_VAR_MAX = -6.0, 2.0  # hardtanh clamp on every learned log-variance (VampPrior code)

# The trainer's prior term: log p(z_p) per row for prior-latent samples z_p, given the posterior means μ_p.
LogPrior = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Images read in slices to be encoded: a tensor N×C×H×W, or an exemplar set read by index.
ImageRows = torch.Tensor | ExemplarImages | FloatExemplarImages


@dataclass
class ElboTerms:
    """Single-sample ELBO pieces per example (Table 9): ``elbo = reconstruction - kl``.

    ``kl`` sums every latent layer's one-sample term; ``posterior_mean`` is μ_p(x), the prior latent's posterior
    mean, which refreshes the latent cache during training.
    """

    reconstruction: torch.Tensor  # log p(x|z)
    kl: torch.Tensor  # log q(z|x) - log p(z), a one-sample estimate of the KL term
    posterior_mean: torch.Tensor  # μ_p(x), B×d

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


def reparameterize(mu: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + σ ε with ε ~ N(0, I), differentiable in μ and log σ²."""
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * log_var) * noise


def bernoulli_log_likelihood(x_flat: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x | sigmoid(logits)) summed over pixels; x may be grey (a soft target)."""
    return -F.binary_cross_entropy_with_logits(logits, x_flat, reduction="none").sum(-1)


def clamped_log_var(values: torch.Tensor) -> torch.Tensor:
    """A log-variance head's output clamped to [LOG_VAR_MIN, LOG_VAR_MAX] (hardtanh), as the authors' code does."""
    return F.hardtanh(values, LOG_VAR_MIN, LOG_VAR_MAX)


class ExemplarGenerator(nn.Module, abc.ABC):
    """A VAE-family generator whose prior may be Gaussian, a VampPrior, or the exemplar prior.

    Subclasses set ``architecture`` (the name in ``ModelConfig.architecture``), build their layers and
    ``self.prior`` (on the prior latent), and implement the abstract methods.

    Args:
        config: the architecture; ``config.prior`` picks the prior.
    """

    architecture: ClassVar[str]
    prior: nn.Module

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # uint8 N×C×H×W on the CPU; a set kept out of RAM stays an ExemplarImages, indexed the same way.
        self.exemplar_images: torch.Tensor | ExemplarImages | None = None
        self.exemplar_labels: torch.Tensor | None = None  # int64 N, when the data had labels
        # Latent means of the exemplar set (N×d); saved in exemplars.safetensors, not with the weights.
        self.register_buffer("exemplar_means", torch.empty(0, config.latent_dim), persistent=False)

    # ------------------------------------------------------- what an architecture defines
    @abc.abstractmethod
    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """Checked float images (B×C×H×W, or B×D flattened) in the layout this model's layers take."""

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, log_prior: LogPrior | None = None,
                generator: torch.Generator | None = None) -> ElboTerms:
        """One-sample ELBO terms of images ``x`` (float in [0, 1]; binary in training), drawing from ``generator``.

        ``log_prior(z_p, μ_p)`` replaces the model's prior on the prior latent (the trainer's leave-one-out term);
        it is called after the reconstruction, so its own draws follow the model's in ``generator``."""

    @abc.abstractmethod
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ_p, log σ²_p) of q(z_p | x) for model-layout inputs ``x``."""

    @abc.abstractmethod
    def exemplar_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features μ_p(x) is read from (the prior latent's encoder trunk), for model-layout inputs."""

    @abc.abstractmethod
    def mean_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """μ_p from :meth:`exemplar_features`' output: the mean head alone."""

    @abc.abstractmethod
    def log_rest(self, x_row: torch.Tensor, z_prior: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """For importance samples ``z_prior`` (S×d) of one model-layout image ``x_row``: log p(x, z_rest | z_p) −
        log q(z_rest | x, z_p), with any further latents z_rest drawn from q in ``generator`` (IWAE weights)."""

    @abc.abstractmethod
    def decode_prior_latent(self, z_prior: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Bernoulli means (B×C×H×W) for prior-latent codes, drawing any further latent from the generative model."""

    @abc.abstractmethod
    def _decode_around(self, mu: torch.Tensor, log_var: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        """:meth:`decode_around` once ``noise`` is checked."""

    @property
    @abc.abstractmethod
    def twin_noise_dim(self) -> int:
        """How many standard-normal draws one twin takes (:meth:`decode_around`)."""

    @property
    @abc.abstractmethod
    def output_layer(self) -> nn.Module:
        """A layer whose weight tells the model's device and dtype."""

    # ------------------------------------------------------------------------- shapes
    def flatten(self, images: torch.Tensor) -> torch.Tensor:
        """B×C×H×W (or B×D) images, uint8 or float in [0, 1] → float B×D, checking the size against the config."""
        if images.ndim < 2:
            raise ValueError(f"expected a batch of images, got a tensor of shape {tuple(images.shape)}")
        if math.prod(images.shape[1:]) != self.config.input_dim:
            raise ValueError(
                f"images of shape {tuple(images.shape[1:])} do not fit this generator, which was built for "
                f"{self.config.input_shape} (C×H×W); resize the data or fit a generator on it"
            )
        return as_unit_float(images).reshape(images.shape[0], self.config.input_dim).to(dtype=self.dtype)

    def unflatten(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(flat.shape[0], *self.config.input_shape)

    @property
    def device(self) -> torch.device:
        return self.output_layer.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.output_layer.weight.dtype

    # ------------------------------------------------------------------------- pieces
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters (μ, log σ²) of the prior latent, each B×d, for images uint8 or float in [0, 1]."""
        return self.posterior(self.model_input(images))

    def exemplar_mean(self, images: torch.Tensor) -> torch.Tensor:
        """μ_p of exemplar images, with gradient: the exemplar re-encoding of Algorithm 1."""
        return self.mean_from_features(self.exemplar_features(self.model_input(images)))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_p) under the model's prior (the exemplar prior uses all exemplars, no leave-one-out)."""
        return self.prior.log_prob(z, self.encode)

    def elbo_terms(self, images: torch.Tensor, generator: torch.Generator | None = None) -> ElboTerms:
        """One-sample reconstruction and KL terms per example under the model's prior."""
        return self(images, generator=generator)

    @torch.no_grad()
    def iwae(self, images: torch.Tensor, num_samples: int = 5000, chunk_size: int = 500,
             generator: torch.Generator | None = None, prior_tolerance: float | None = 1e-3) -> torch.Tensor:
        """IWAE bound (Burda et al., 2015) on log p(x) per example, with ``num_samples`` importance samples.

        An evaluation, so no autograd graph is kept. Samples go through the networks ``chunk_size``
        at a time per image, so activations stay bounded however large ``num_samples`` is; only the
        ``num_samples`` log-weights of one image are held at once. A hierarchical model draws each sample's
        lower latent from q given its prior latent, so the bound is on the full joint.

        With the exemplar prior, each image's samples are scored against the exemplars near its posterior
        mean (:meth:`ExemplarPrior.log_prob_near`): the bound is then at most ``prior_tolerance`` nats below
        the one over all exemplars, certified; ``None`` scores every sample against every exemplar.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be >= 1")
        x = self.model_input(images)
        mu, log_var = self.posterior(x)
        bounds = []
        near = prior_tolerance is not None and isinstance(self.prior, ExemplarPrior)
        for x_row, mu_row, log_var_row in zip(x, mu, log_var):
            ranking = self.prior.rank_exemplars(mu_row) if near else None
            log_weights = []
            for start in range(0, num_samples, chunk_size):
                count = min(chunk_size, num_samples - start)
                z = reparameterize(mu_row.expand(count, -1), log_var_row.expand(count, -1), generator)
                log_rest = self.log_rest(x_row, z, generator)
                if near:
                    log_prior = self.prior.log_prob_near(z, mu_row, prior_tolerance, ranking=ranking)
                else:
                    log_prior = self.log_prior(z)
                log_weights.append(log_rest + log_prior - log_normal_diag(z, mu_row, log_var_row))
            bounds.append(torch.logsumexp(torch.cat(log_weights), 0) - math.log(num_samples))
        return torch.stack(bounds)

    # --------------------------------------------------------------------- generation
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n random images (Bernoulli means) from the prior: Fig. 9."""
        return self.decode_prior_latent(self.prior.sample(n, self.encode, generator), generator)

    @torch.no_grad()
    def generate(self, exemplars: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One new image per exemplar (grey, in [0, 1]): z_p ~ N(μ_p(x), σ² I), then the Bernoulli mean.

        With the exemplar prior σ² is its learned scalar (§5.4); other priors have no such
        kernel, so their posterior q(z_p|x) is sampled instead.
        """
        mu, log_var = self.encode(exemplars.to(self.device))
        noise = torch.randn(mu.shape[0], self.twin_noise_dim, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.decode_around(mu, log_var, noise)

    def decode_around(self, mu: torch.Tensor, log_var: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        """A twin around prior-latent means ``mu`` (B×C×H×W Bernoulli means) from standard-normal ``noise``
        (B×:attr:`twin_noise_dim`): z_p = μ + σ·noise[:, :d] with σ the exemplar kernel's (for other priors the
        posterior's, from ``log_var``), any further latent from the rest of ``noise``."""
        if noise.shape != (mu.shape[0], self.twin_noise_dim):
            raise ValueError(f"noise of shape {tuple(noise.shape)} does not fit {mu.shape[0]} twins of this generator, "
                             f"which take twin_noise_dim={self.twin_noise_dim} draws each")
        return self._decode_around(mu, log_var, noise)

    def kernel_std(self, log_var: torch.Tensor | None = None) -> torch.Tensor:
        """σ of the Gaussian placed around an exemplar mean: the exemplar prior's learned scalar, else q(z_p|x)'s."""
        if isinstance(self.prior, ExemplarPrior):
            return torch.exp(0.5 * self.prior.log_var)
        if log_var is None:
            raise ValueError("a prior without an exemplar kernel needs the posterior log-variance to sample around μ")
        return torch.exp(0.5 * log_var)

    # ---------------------------------------------------------------------- exemplars
    def encode_means(self, images: ImageRows, batch_size: int = 1000) -> torch.Tensor:
        """μ_p(x) for many images, in batches, without gradient. ``images`` may be uint8 or float in [0, 1], or an
        exemplar set out of RAM (read one batch at a time)."""
        return self._in_batches(lambda x: self.mean_from_features(self.exemplar_features(x)), images, batch_size)

    def encode_features(self, images: ImageRows, batch_size: int = 1000) -> torch.Tensor:
        """:meth:`exemplar_features` of many images, in batches, without gradient: what μ_p(x) is read from."""
        return self._in_batches(self.exemplar_features, images, batch_size)

    @torch.no_grad()
    def _in_batches(self, encode: Callable[[torch.Tensor], torch.Tensor], images: ImageRows,
                    batch_size: int) -> torch.Tensor:
        # An empty set still makes one (empty) pass, so the result has the right width.
        return torch.cat([encode(self.model_input(as_unit_float(images[start:start + batch_size]).to(self.device)))
                          for start in range(0, max(images.shape[0], 1), batch_size)])

    def set_exemplars(self, images: torch.Tensor | ExemplarImages | None, labels: torch.Tensor | None = None,
                      means: torch.Tensor | None = None) -> None:
        """Make ``images`` (uint8 or float in [0, 1], N×C×H×W) the exemplar set.

        A tensor, or an :class:`ExemplarImages` held in RAM, is kept as a uint8 tensor on the CPU. An
        :class:`ExemplarImages` read from disk or from a dataset is kept as it is, by reference: sampling, the plugin
        and a bundle read the images they need from it. The latent means are computed with the current encoder
        unless given; they become the components of the exemplar prior. ``images`` may be None when ``means`` are
        given (a bundle shipped without its images).
        """
        if images is None:
            if means is None:
                raise ValueError("set_exemplars needs the exemplar images, or their latent means")
            kept, count = None, means.shape[0]
        else:
            if isinstance(images, ExemplarImages):
                kept = images.to_tensor() if images.in_memory else images
            else:
                kept = as_uint8(images).cpu()
            count = kept.shape[0]
            if tuple(kept.shape[1:]) != self.config.input_shape:
                raise ValueError(f"exemplars of shape {tuple(kept.shape[1:])} do not match {self.config.input_shape}")
        if labels is not None and labels.shape != (count,):
            raise ValueError(f"labels have shape {tuple(labels.shape)}; expected ({count},)")
        self.exemplar_images = kept
        self.exemplar_labels = None if labels is None else labels.to(torch.int64).cpu()
        if means is None:
            means = self.encode_means(kept)
        self.exemplar_means = means.detach().to(device=self.device, dtype=self.dtype)
        if isinstance(self.prior, ExemplarPrior):
            self.prior.set_exemplar_means(self.exemplar_means)

    def without_exemplars(self) -> "ExemplarGenerator":
        """A copy with the networks and prior parameters only: small to pickle into DataLoader workers."""
        with torch.random.fork_rng(devices=[]):  # building runs the init: keep the caller's random stream
            slim = type(self)(self.config).to(device=self.device, dtype=self.dtype)
        slim.load_state_dict(self.state_dict())
        return slim.train(self.training)
