"""Real + synthetic batches for the λ-weighted loss of eq. 16.

``MixedBatchLoader`` wraps any DataLoader of ``(images, labels)`` and, batch by batch in the
main process and on the training device, makes one synthetic twin per real image.
``mixed_loss`` is eq. 16 with label smoothing:

    λ · CE(f(x), y) + (1 − λ) · CE(f(x̃), y)
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator, NamedTuple

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from .pretrained import load_generator
from .device import resolve_device
from .distributed import current_group, rank_seed
from .exemplar_lookup import ExemplarLookup
from .images import as_uint8, as_unit_float, check_images, check_labels
from .twins import check_noise_scale, twin_noise, twins_around
from .models import ExemplarGenerator


class MixedBatch(NamedTuple):
    """One training step's data.

    Attributes:
        real: the loader's images, on the generator's device.
        synthetic: one Exemplar VAE sample per real image, same shape, dtype and range.
        target: the labels, shared by each real image and its twin.
    """

    real: torch.Tensor
    synthetic: torch.Tensor
    target: torch.Tensor


def check_lam(lam: float) -> float:
    """λ of eq. 16, the weight on the real images, checked to lie in [0, 1]."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam={lam} is the weight on real data and must lie in [0, 1]")
    return lam


def mixed_loss(logits_real: torch.Tensor, logits_syn: torch.Tensor, target: torch.Tensor, lam: float,
               label_smoothing: float = 0.1) -> torch.Tensor:
    """Eq. 16: ``lam`` · CE on real images + (1 − ``lam``) · CE on their synthetic twins (batch means).

    Args:
        lam: weight on the real data, in [0, 1] (the paper uses 0.4 on MNIST, 0.8 on Fashion-MNIST).
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.
    """
    lam = check_lam(lam)
    real = F.cross_entropy(logits_real, target, label_smoothing=label_smoothing)
    synthetic = F.cross_entropy(logits_syn, target, label_smoothing=label_smoothing)
    return lam * real + (1.0 - lam) * synthetic


class MixedBatchLoader:
    """Wrap a DataLoader of ``(images, labels)`` so it yields :class:`MixedBatch` es.

    Images may be float in [0, 1] or uint8, of the generator's C×H×W (flattened images of
    the same size are accepted too). When the exemplar prior's latent cache holds a
    batch image (an untransformed image of the generator's own exemplar set, found by its
    bytes), its cached mean is used and only the other images are encoded. ``len()``, ``set_epoch()``,
    ``sampler`` and ``dataset`` pass through, so a ``DistributedSampler`` works under DDP.

    Args:
        loader: any iterable of ``(images, labels)`` batches, usually a DataLoader.
        generator: a generator of any architecture, a bundle directory, or a bundled name. A generator object
            passed in is used as it is: moved to ``device``, put in eval mode and frozen.
        device: where batches and generation go (default: the generator's device).
        seed: seeds this loader's own random stream, for reproducible synthetic batches.
            Under ``torch.distributed`` each rank derives its own seed from it
            (:func:`exaug.distributed.rank_seed`), so the ranks of a DDP run draw different noise, and no
            rank of one seed draws what a rank of another seed draws.
        noise_scale: multiplies the kernel's σ (for a non-exemplar prior, the posterior's); 1.0, the
            default, is the paper's sampler.
    """

    def __init__(self, loader: DataLoader | Any, generator: ExemplarGenerator | str | os.PathLike,
                 device: str | torch.device | None = None, seed: int | None = None, noise_scale: float = 1.0) -> None:
        self.loader = loader
        self.noise_scale = check_noise_scale(noise_scale)
        self.generator = generator if isinstance(generator, ExemplarGenerator) else load_generator(generator)
        if device is not None:
            self.generator.to(resolve_device(device))
        self.generator.eval().requires_grad_(False)
        self.device = self.generator.device
        self.random = torch.Generator(device=self.device)
        if seed is None:
            self.random.seed()
        else:
            group = current_group()
            self.random.manual_seed(seed if group is None else rank_seed(seed, group.rank))
        self._lookup = self._exemplar_lookup()

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self) -> Any:
        return self.loader.dataset

    @property
    def sampler(self) -> Any:
        return self.loader.sampler

    def set_epoch(self, epoch: int) -> None:
        """Forward to the sampler (e.g. ``DistributedSampler``) so every epoch reshuffles."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[MixedBatch]:
        for batch in self.loader:
            if not isinstance(batch, (list, tuple)) or len(batch) < 2:
                raise ValueError(f"MixedBatchLoader needs a loader of (images, labels) batches; got a "
                                 f"{type(batch).__name__}{f' of length {len(batch)}' if isinstance(batch, (list, tuple)) else ''}")
            if not isinstance(batch[0], torch.Tensor):
                raise TypeError(f"MixedBatchLoader needs each batch's images as one tensor B×C×H×W, got a "
                                f"{type(batch[0]).__name__}; give the dataset tensor images (v2.ToImage()) so the "
                                "DataLoader stacks them")
            images = batch[0].to(self.device, non_blocking=True)
            synthetic = self.synthesize(images)  # checks the images first: a bad image says so, not its label count
            target = check_labels(batch[1], images.shape[0]).to(self.device, non_blocking=True)
            yield MixedBatch(images, synthetic, target)

    @torch.no_grad()
    def synthesize(self, images: torch.Tensor) -> torch.Tensor:
        """One synthetic twin per image: z ~ N(μ(x), (s·σ)² I) with s = ``noise_scale``, Bernoulli mean rounded to
        1/255, in ``images``' format."""
        shape = self.generator.config.input_shape
        if images.ndim == 2 and images.shape[1] == math.prod(shape):
            grid = images.reshape(images.shape[0], *shape)  # flattened images of the generator's size
        else:
            grid = images
        if not check_images(grid, shape):
            raise ValueError(f"MixedBatchLoader needs a batch B×C×H×W, got one image of shape {tuple(grid.shape)}")
        unit = as_unit_float(grid).to(self.generator.dtype)
        mu, log_var = self._means(grid, unit)
        noise = twin_noise(self.generator, mu.shape[0], self.noise_scale, self.random, self.device, mu.dtype)
        return twins_around(self.generator, mu, log_var, noise, like=images).reshape(images.shape)

    def _means(self, grid: torch.Tensor, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """μ(x) per image: from the latent cache for exemplars of the generator, from the encoder otherwise."""
        if self._lookup is None:
            return self.generator.encode(unit)
        found = self._lookup.find(as_uint8(grid)).to(self.device)
        cached = found >= 0
        if not cached.any():
            return self.generator.encode(unit)
        mu = torch.empty(grid.shape[0], self.generator.config.latent_dim, device=self.device, dtype=self.generator.dtype)
        mu[cached] = self.generator.exemplar_means[found[cached]]
        if not cached.all():
            mu[~cached] = self.generator.encode(unit[~cached])[0]
        return mu, None  # the exemplar kernel's σ is a scalar: no posterior variance needed

    def _exemplar_lookup(self) -> ExemplarLookup | None:
        """What finds the generator's exemplars in a batch, when the cached means can stand in for the encoder."""
        images = self.generator.exemplar_images
        has_kernel = self.generator.config.prior == "exemplar"
        if images is None or not has_kernel or self.generator.exemplar_means is None:
            return None
        return ExemplarLookup(images)
