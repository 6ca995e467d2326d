"""The exemplar prior term of the training objective (eq. 13), exact or kNN-approximated (§3.1).

For a batch of training points i with latent samples z_i this computes

    log r(z_i) = log (1/M_i) Σ_{j ∈ π, j ≠ i} N(z_i; μ(x_j), σ² I)

with a fresh exemplar subset π of size M = fraction·N per batch (exemplar subsampling; from APPROXIMATE_FROM
exemplars drawn as a mask by `uniform_subset_mask`, which costs far less than the permutation drawn below it),
leave-one-out (a point never explains itself, and M_i counts only the exemplars that may
explain it), and either every exemplar of π ("exact") or only the k members of π nearest
to μ(x_i) in the latent cache ("knn", a lower bound by eq. 15).

The exemplar means come from the latent cache, or — with ``neighbour_gradient`` — are
re-encoded from the grey exemplar images with gradient (the generator's ``exemplar_mean``, the mean of its
prior latent), as Algorithm 1 does, and written back to the cache. ``gradient_neighbours`` = g < k (the default is all k) re-encodes only each
row's g nearest neighbours; the others keep their cached means. With ``trunk_features`` (``cached_trunk``) the
neighbours are re-encoded from the encoder-trunk features of the last end of epoch: the gradient
reaches the μ head only, at about the cost of the cache alone.
Any architecture works: the prior term sees only the generator's exemplar re-encoding.
"""

from __future__ import annotations

import math

import torch

from .config import TrainConfig
from .latent_cache import LatentCache, as_indices, as_mask, at_scale
from .priors import ExemplarPrior, isotropic_mixture_log_prob
from .models import ExemplarGenerator


class LeaveOneOutExemplarPrior:
    """Training-time log r(z) over a subsampled, leave-one-out exemplar set.

    Args:
        model: the generator: its exemplar prior owns the learned log σ², and it re-encodes exemplars with
            gradient (``exemplar_mean``, ``mean_from_features``).
        exemplars: N×C×H×W grey exemplar images in [0, 1] on the training device.
        cache: latent cache of the N exemplar means.
        config: the training recipe (search mode, k, subsampling fraction, gradient switch, kNN index). With the kNN
            search the cache is set to search the index ``config.knn_index`` names (built once, then kept).
        generator: random stream for drawing exemplar subsets.
        trunk_features: the exemplars' ``exemplar_features`` (N×H), required with ``config.cached_trunk``.
    """

    def __init__(self, model: ExemplarGenerator, exemplars: torch.Tensor, cache: LatentCache,
                 config: TrainConfig, generator: torch.Generator, trunk_features: torch.Tensor | None = None) -> None:
        if exemplars.shape[0] < 2:
            raise ValueError("leave-one-out needs at least 2 exemplars")
        if not isinstance(model.prior, ExemplarPrior):
            raise ValueError(f"the leave-one-out exemplar prior needs a generator with the exemplar prior; this one has "
                             f"{type(model.prior).__name__}")
        self.prior = model.prior
        self.model = model
        self.exemplars = exemplars
        self.cache = cache
        self.search = config.exemplar_search
        if self.search == "knn":
            cache.use_index(config.knn_index)
        self.knn = config.knn
        self.neighbour_gradient = config.neighbour_gradient
        self.gradient_neighbours = config.gradient_neighbours_in_use
        self.leave_one_out = config.leave_one_out
        self.generator = generator
        if config.cached_trunk and (trunk_features is None or trunk_features.shape[0] != exemplars.shape[0]):
            raise ValueError("cached_trunk needs the trunk features of every exemplar (trunk_features, N×H)")
        self.trunk_features = trunk_features if config.cached_trunk else None
        n = exemplars.shape[0]
        # M ≥ 2 so that every point keeps at least one exemplar after leaving itself out.
        self.subset_size = max(2, min(n, round(config.exemplar_fraction * n)))
        # Below the threshold π stays the prefix of a permutation, so that every run there keeps its numbers; a
        # permutation is cheap on a GPU at any size, where the mask's draws would only add host synchronisations.
        self.subset_as_mask = at_scale(n) and generator.device.type == "cpu"

    def __call__(self, z: torch.Tensor, batch_indices: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """log r(z_b) for each row b, where row b encodes training exemplar ``batch_indices[b]``.

        ``query``: where the kNN search looks, one point per row (the batch's current posterior means, as in the
        authors' code); None looks around each row's cached mean. The exact search ignores it.
        """
        subset = self._draw_subset()
        if self.leave_one_out:  # a row's own exemplar, when drawn into π, neither explains it nor counts
            in_subset = as_mask(subset, self.exemplars.shape[0])
            log_count = torch.log(self.subset_size - in_subset[batch_indices.to(in_subset.device)].to(z.device, z.dtype))
        else:
            log_count = math.log(self.subset_size)
        if self.search == "exact":
            members = as_indices(subset)
            mask = members.unsqueeze(0) != batch_indices.unsqueeze(1) if self.leave_one_out else None
            fresh = None
        else:
            members, mask, fresh = self._nearest_members(batch_indices, subset, query)
        centres = self._centres(members, fresh)
        return isotropic_mixture_log_prob(z, centres, self.prior.log_var, log_count, mask)

    def _draw_subset(self) -> torch.Tensor:
        """A uniformly drawn exemplar subset π of size M (exemplar subsampling, eq. 5): its indices (the first M of a
        permutation) below APPROXIMATE_FROM exemplars or on a GPU, from there on the CPU an N-long boolean mask
        (`uniform_subset_mask`)."""
        n = self.exemplars.shape[0]
        if self.subset_as_mask:
            subset = uniform_subset_mask(n, self.subset_size, self.generator)
        else:
            subset = torch.randperm(n, generator=self.generator, device=self.generator.device)[: self.subset_size]
        return subset.to(self.exemplars.device)

    def _nearest_members(self, batch_indices: torch.Tensor, subset: torch.Tensor, query: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The k members of π nearest to each row's query (default: its cached mean), other than the row itself
        (unless leave-one-out is off).

        Returns the unique neighbour indices U, a B×U mask of which row uses which, and which of U are some
        row's ``gradient_neighbours`` nearest (None when every one of them is re-encoded).
        Searching inside π (rather than filtering a global search) keeps every row at
        exactly k components and halves the search at M/N = 0.5.
        """
        cache_device = self.cache.values.device
        queries = self.cache.values[batch_indices.to(cache_device)] if query is None else query.detach().to(cache_device)
        neighbours = self.cache.search(queries, self.knn + 1, candidates=subset.to(cache_device))
        neighbours = neighbours.to(batch_indices.device)
        if self.leave_one_out:
            allowed = neighbours != batch_indices.unsqueeze(1)
        else:
            allowed = torch.ones_like(neighbours, dtype=torch.bool)
        rank = allowed.cumsum(1)  # 1 for a row's nearest allowed neighbour, 2 for the next, ...
        keep = allowed & (rank <= self.knn)
        rows, cols = keep.nonzero(as_tuple=True)
        members, positions = torch.unique(neighbours[rows, cols], return_inverse=True)
        mask = torch.zeros(neighbours.shape[0], members.shape[0], dtype=torch.bool, device=neighbours.device)
        mask[rows, positions] = True
        if self.gradient_neighbours is None:
            return members, mask, None
        fresh = torch.zeros(members.shape[0], dtype=torch.bool, device=neighbours.device)
        fresh[positions[rank[rows, cols] <= self.gradient_neighbours]] = True
        return members, mask, fresh

    def _centres(self, members: torch.Tensor, fresh: torch.Tensor | None = None) -> torch.Tensor:
        """The mixture's centres for ``members``: cached means, or with ``neighbour_gradient`` means re-encoded
        with gradient (only where ``fresh`` is True, when given), which also refresh the cache."""
        cache_device = self.cache.values.device
        if not self.neighbour_gradient:
            return self.cache.values[members.to(cache_device)].to(self.prior.log_var.device)
        if self.trunk_features is not None:
            # The gradient reaches the μ head, not the trunk. Unlike a re-encoding from the images these centres
            # are not written back: read from epoch-old features, they would make the cache staler, not fresher.
            return self.model.mean_from_features(self.trunk_features[members])
        if fresh is None:
            centres = self.model.exemplar_mean(self.exemplars[members])
            self.cache.update(members.to(cache_device), centres)
            return centres
        encoded = self.model.exemplar_mean(self.exemplars[members[fresh]])
        self.cache.update(members[fresh].to(cache_device), encoded)
        cached = self.cache.values[members.to(cache_device)].to(encoded.device, encoded.dtype)
        return cached.index_put((fresh.nonzero(as_tuple=True)[0],), encoded)


def uniform_subset_mask(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """An N-long boolean mask of ``size`` rows drawn uniformly among all subsets of that size, from ``generator``.

    Every row joins on its own with probability about size/N (one random byte each, rather than a permutation of all
    N rows, which costs several times more: its writes land at random places in memory). Given how many joined,
    which ones did is uniform, so removing the surplus, or adding the shortfall, with rows drawn uniformly among
    the members (or the others) leaves a subset that is uniform among those of exactly ``size`` rows.
    """
    if not 0 < size <= n:
        raise ValueError(f"a subset of {size} rows out of {n} is not possible; expected 0 < size ≤ {n}")
    device = generator.device
    if size == n:
        return torch.ones(n, dtype=torch.bool, device=device)
    threshold = min(255, max(1, round(256 * size / n)))
    mask = torch.randint(0, 256, (n,), generator=generator, device=device, dtype=torch.uint8) < threshold
    joined = int(mask.count_nonzero())
    if joined != size:
        surplus = joined > size
        flipped = _distinct_rows_where(mask, surplus, abs(joined - size), joined if surplus else n - joined, generator)
        mask[flipped] = not surplus
    return mask


def _distinct_rows_where(mask: torch.Tensor, value: bool, count: int, eligible: int,
                         generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct rows drawn uniformly among the ``eligible`` rows where ``mask`` is ``value``: rows drawn
    uniformly from all, those that qualify kept in the order they first appeared until there are ``count``."""
    n = mask.shape[0]
    chosen = torch.empty(0, dtype=torch.int64, device=mask.device)
    while chosen.shape[0] < count:
        draws = math.ceil(1.25 * (count - chosen.shape[0]) * n / eligible) + 64
        rows = torch.randint(0, n, (draws,), generator=generator, device=generator.device).to(mask.device)
        chosen = _first_occurrences(torch.cat([chosen, rows[mask[rows] == value]]))[:count]
    return chosen


def _first_occurrences(values: torch.Tensor) -> torch.Tensor:
    """The distinct ``values``, each at the place it first appears, in that order."""
    distinct, inverse = torch.unique(values, return_inverse=True)
    places = torch.arange(values.shape[0], device=values.device)
    first = torch.full_like(distinct, values.shape[0]).scatter_reduce_(0, inverse, places, "amin")
    return values[first.sort().values]
