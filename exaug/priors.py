"""Latent priors p(z) behind one interface: standard Gaussian, VampPrior, Exemplar prior.

Every prior is an ``nn.Module`` with

* ``log_prob(z, encoder)`` — log p(z) per row of ``z`` (B×d), and
* ``sample(n, encoder, generator)`` — n latent codes.

``encoder`` maps images to the posterior ``(mu, log_var)`` of the latent the prior is on (the generator's
``encode``); the VampPrior needs it to place its components, the others ignore it. The log-densities are pure functions at the top
of the module so tests can check them against brute force.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

Encoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

LOG_2PI = math.log(2 * math.pi)
# Rows of z per chunk when scoring against many components, so B×N stays ~64 MB.
_MAX_CHUNK_ELEMENTS = 1 << 24


def log_normal_diag(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(log_var))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_var + (x - mean).pow(2) * torch.exp(-log_var)).sum(-1)


def log_standard_normal(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, I), summed over the last dimension."""
    return -0.5 * (LOG_2PI + x.pow(2)).sum(-1)


def squared_distances(z: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """||z_b - c_j||² for all pairs (B×M) with one matrix product, never a B×M×d tensor."""
    # In-place adds after a plain mm: on CPU this is faster than addmm with a broadcast input.
    distances = (z @ centres.t()).mul_(-2.0)
    return distances.add_(z.pow(2).sum(-1, keepdim=True)).add_(centres.pow(2).sum(-1)).clamp_min_(0.0)


def isotropic_mixture_log_prob(
    z: torch.Tensor,
    centres: torch.Tensor,
    log_var: torch.Tensor,
    log_count: torch.Tensor | float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 14: log (1/count) Σ_j N(z; c_j, σ² I), over the components ``mask`` allows.

    Args:
        z: B×d latent codes.
        centres: M×d component means (the exemplars' latent means).
        log_var: scalar log σ², shared by all components.
        log_count: log of the mixture's normaliser, a scalar or one value per row (B).
            With leave-one-out it counts only the exemplars that may explain the row.
        mask: optional B×M boolean; False removes a component from that row's sum.

    Returns:
        log r(z) per row (B).
    """
    # -||z - c||²/2σ² = z·c/σ² - ||c||²/2σ² - ||z||²/2σ²: the last term is constant along a row, so it
    # leaves the logsumexp, and the rest is one matrix product plus an in-place bias. This form
    # makes a single pass over the B×M logits before the logsumexp, which matters at test time
    # (5000 importance samples × 50K exemplars per image).
    dim = z.shape[-1]
    precision = torch.exp(-log_var)
    logits = (z * precision) @ centres.t()
    logits.add_(centres.pow(2).sum(-1) * (-0.5 * precision))
    row_term = z.pow(2).sum(-1) * (-0.5 * precision)
    log_norm = 0.5 * dim * (LOG_2PI + log_var)
    return masked_logsumexp(logits, mask) + row_term - log_norm - log_count


# exp(x) for x < -87 is a float32 denormal, and denormal arithmetic is ~5× slower on CPUs.
# Terms below e^-80 of the largest one change a sum of ≤ 10^6 terms by < 10^-28: drop them.
_NEGLIGIBLE_LOG_RATIO = -80.0


def masked_logsumexp(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """log Σ_j exp(logits_j) over the last dimension, over entries ``mask`` allows (all when None).

    Same value as ``torch.logsumexp`` to float precision, but it never produces denormal
    numbers, which made the test-time prior (thousands of samples × tens of thousands of
    exemplars, most of them far away) several times slower.
    """
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    peak = logits.amax(-1, keepdim=True).detach()
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    shifted = logits - peak
    if shifted.requires_grad:
        weights = shifted.clamp_min(_NEGLIGIBLE_LOG_RATIO).exp()
    else:
        weights = shifted.clamp_min_(_NEGLIGIBLE_LOG_RATIO).exp_()
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights.sum(-1).log() + peak.squeeze(-1)


def diagonal_mixture_log_prob(z: torch.Tensor, means: torch.Tensor, log_vars: torch.Tensor) -> torch.Tensor:
    """log (1/K) Σ_k N(z; means_k, diag exp(log_vars_k)) per row of z, via two matrix products.

    Expanding the square keeps memory at B×K instead of B×K×d, which matters when
    scoring thousands of importance samples against hundreds of pseudo-inputs.
    """
    precision = torch.exp(-log_vars)  # K×d
    quadratic = (
        z.pow(2) @ precision.t()
        - 2.0 * z @ (means * precision).t()
        + (means.pow(2) * precision).sum(-1)
    )
    log_dets = log_vars.sum(-1)
    log_components = -0.5 * (z.shape[-1] * LOG_2PI + log_dets + quadratic)
    return masked_logsumexp(log_components) - math.log(means.shape[0])


class GaussianPrior(nn.Module):
    """The standard normal prior N(0, I) of a plain VAE."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        # Holds no value: it follows .to(), so samples come out on the model's device and dtype.
        self.register_buffer("placement", torch.empty(0), persistent=False)

    def log_prob(self, z: torch.Tensor, encoder: Encoder | None = None) -> torch.Tensor:
        return log_standard_normal(z)

    def sample(self, n: int, encoder: Encoder | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=self.placement.device,
                           dtype=self.placement.dtype)


class VampPrior(nn.Module):
    """Tomczak & Welling (2018): a uniform mixture of the posteriors of K learned pseudo-inputs.

    Args:
        latent_dim: d_z (kept for the interface; the components come from the encoder).
        input_shape: C×H×W of one image; the pseudo-inputs are stored flattened (K×C·H·W) and handed to the
            encoder as images.
        num_pseudo_inputs: K.
    """

    def __init__(self, latent_dim: int, input_shape: Sequence[int], num_pseudo_inputs: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.input_shape = tuple(input_shape)
        self.pseudo_inputs = nn.Parameter(torch.empty(num_pseudo_inputs, math.prod(self.input_shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0.05, 0.01) as in the VampPrior code; must run after the network's He init."""
        nn.init.normal_(self.pseudo_inputs, mean=0.05, std=0.01)

    def pseudo_images(self) -> torch.Tensor:
        """Pseudo-inputs clipped to the data range [0, 1] (hardtanh), as K×C×H×W images for the encoder."""
        return F.hardtanh(self.pseudo_inputs, 0.0, 1.0).reshape(-1, *self.input_shape)

    def log_prob(self, z: torch.Tensor, encoder: Encoder | None = None) -> torch.Tensor:
        if encoder is None:
            raise ValueError("VampPrior.log_prob needs the encoder that maps its pseudo-inputs to the latent space")
        means, log_vars = encoder(self.pseudo_images())
        return _chunked_rows(z, means.shape[0], lambda rows: diagonal_mixture_log_prob(rows, means, log_vars))

    def sample(self, n: int, encoder: Encoder | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        if encoder is None:
            raise ValueError("VampPrior.sample needs the encoder that maps its pseudo-inputs to the latent space")
        means, log_vars = encoder(self.pseudo_images())
        picks = torch.randint(means.shape[0], (n,), generator=generator, device=means.device)
        noise = torch.randn(n, means.shape[1], generator=generator, device=means.device)
        return means[picks] + torch.exp(0.5 * log_vars[picks]) * noise


# ExemplarPrior.log_prob_near: rows are sorted by the radius they need and scored in this many equal groups,
# each against the exemplars inside its largest radius (more groups: fewer pairs, smaller matrix products).
NEAR_ROW_GROUPS = 8


class ExemplarPrior(nn.Module):
    """Eq. 10/14: isotropic Gaussians N(μ(x_j), σ² I) around the latent means of the exemplars.

    The single learned scalar ``log_var`` (log σ²) is a parameter; the exemplar means are a
    non-persistent buffer set with :meth:`set_exemplar_means` (a bundle stores them beside
    the weights). This module scores with *all* exemplars and no leave-one-out, which is
    the test-time prior; the training objective with leave-one-out, subsampling and kNN
    lives in :mod:`exaug.exemplar_objective`.

    Args:
        latent_dim: d_z.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.log_var = nn.Parameter(torch.zeros(()))
        self.register_buffer("means", torch.empty(0, latent_dim), persistent=False)

    def set_exemplar_means(self, means: torch.Tensor) -> None:
        if means.ndim != 2 or means.shape[1] != self.latent_dim:
            raise ValueError(f"exemplar means have shape {tuple(means.shape)}; expected N×{self.latent_dim}")
        self.means = means.detach().to(device=self.log_var.device, dtype=self.log_var.dtype)

    def _require_means(self) -> torch.Tensor:
        if self.means.shape[0] == 0:
            raise RuntimeError(
                "the exemplar prior has no exemplars yet; call the generator's set_exemplars(images) "
                "or load a bundle with exaug.load_generator(dir)"
            )
        return self.means

    def log_prob(self, z: torch.Tensor, encoder: Encoder | None = None) -> torch.Tensor:
        means = self._require_means()
        log_count = math.log(means.shape[0])
        return _chunked_rows(z, means.shape[0], lambda rows: isotropic_mixture_log_prob(rows, means, self.log_var, log_count))

    def rank_exemplars(self, anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exemplars by distance from ``anchor``: (sorted distances, exemplar indices in that order)."""
        distances = squared_distances(anchor.reshape(1, -1), self._require_means())[0].sqrt()
        order = distances.argsort()
        return distances[order], order

    def log_prob_near(self, z: torch.Tensor, anchor: torch.Tensor, tolerance: float = 1e-3,
                      first_candidates: int = 2048, ranking: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> torch.Tensor:
        """log r(z) for rows z near one ``anchor`` (e.g. importance samples of one image around its posterior
        mean), at most ``tolerance`` nats below :meth:`log_prob`, certified, at a fraction of its cost.

        The sum runs over the exemplars nearest the anchor only. An exemplar at distance ≥ R from the anchor
        lies at least R − ||z − anchor|| from z, so together those add at most one component's density at
        that distance (their mixture weights sum to less than 1). A first pass over the ``first_candidates``
        nearest gives each row a lower bound on its sum; the exemplars inside the radius R at which the bound
        on the rest falls below ``tolerance`` times that sum (log(1 + x) ≤ x) are added. Rows are sorted by
        the radius they need and scored in :data:`NEAR_ROW_GROUPS` groups, each against the exemplars inside
        its group's largest radius. Leaving mass out only lowers the value, so an IWAE bound built on it moves
        down by at most ``tolerance``. ``ranking``: :meth:`rank_exemplars` of the anchor, when several calls
        share it.
        """
        if not tolerance > 0 or first_candidates < 1:
            raise ValueError(f"tolerance={tolerance} must be > 0 and first_candidates={first_candidates} >= 1")
        means = self._require_means()
        count = means.shape[0]
        if z.shape[0] == 0:
            return z.new_empty(0)
        distances, order = ranking if ranking is not None else self.rank_exemplars(anchor)
        first = min(count, first_candidates)

        def score(rows: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:  # a share of the mixture, in chunks
            return _chunked_rows(rows, centres.shape[0],
                                 lambda chunk: isotropic_mixture_log_prob(chunk, centres, self.log_var, math.log(count)))

        near = score(z, means[order[:first]])
        if first == count:
            return near
        # The rest is ≤ exp(-(R - ρ)²/2σ² - log_norm) for a row at ρ from the anchor; it must be ≤
        # exp(near) · tolerance, i.e. R ≥ ρ + sqrt(2σ² · (-log_norm - near - log tolerance)).
        log_norm = 0.5 * self.latent_dim * (LOG_2PI + self.log_var)
        slack = (-log_norm - near - math.log(tolerance)).clamp_min(0.0)
        radii = (z - anchor).norm(dim=-1) + torch.sqrt(2 * torch.exp(self.log_var) * slack)
        needed = torch.searchsorted(distances, radii)  # per row: how many of the nearest exemplars it needs
        # The exemplars past the first pass that any row needs, nearest first, so each group takes a slice.
        rest = means[order[first:int(needed.max())]]
        result = near.clone()
        for group in needed.argsort().tensor_split(NEAR_ROW_GROUPS):
            inside = int(needed[group].max()) if group.numel() else 0
            if inside > first:
                result[group] = torch.logaddexp(near[group], score(z[group], rest[: inside - first]))
        return result

    def sample(self, n: int, encoder: Encoder | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        means = self._require_means()
        picks = torch.randint(means.shape[0], (n,), generator=generator, device=means.device)
        return self.sample_around(means[picks], generator)

    def sample_around(self, centres: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(centre, σ² I) for each row: the exemplar-conditioned draw of §3 and §5.4."""
        noise = torch.randn(centres.shape, generator=generator, device=centres.device, dtype=centres.dtype)
        return centres + torch.exp(0.5 * self.log_var) * noise


def build_prior(name: str, latent_dim: int, input_shape: Sequence[int], num_pseudo_inputs: int) -> nn.Module:
    """The prior module named ``name`` ("gaussian", "vamp" or "exemplar") over a ``latent_dim`` latent of a
    generator of ``input_shape`` (C×H×W) images."""
    if name == "gaussian":
        return GaussianPrior(latent_dim)
    if name == "vamp":
        return VampPrior(latent_dim, input_shape, num_pseudo_inputs)
    if name == "exemplar":
        return ExemplarPrior(latent_dim)
    raise ValueError(f"prior={name!r} is not known; expected 'gaussian', 'vamp' or 'exemplar'")


def _chunked_rows(z: torch.Tensor, num_components: int, score: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    rows_per_chunk = max(1, _MAX_CHUNK_ELEMENTS // max(1, num_components))
    if z.shape[0] <= rows_per_chunk:
        return score(z)
    return torch.cat([score(chunk) for chunk in z.split(rows_per_chunk)])
