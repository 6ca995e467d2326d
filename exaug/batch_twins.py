"""ExemplarTwins: Exemplar VAE twins for a whole labelled batch, after the DataLoader, on the batch's device.

The batch form GPU users know from torchvision's ``MixUp`` and ``CutMix``: ``(images, labels) → (images,
labels)``, called in the training loop on a batch already on the GPU, so the generator runs there once per
batch. Two modes:

* replace: each image is replaced by its twin with probability ``p``, the same draws
  :class:`~exaug.ExemplarAugment` makes for a batch tensor;
* append: every real image stays, and twins of a random ``p``-share of the batch are appended, each with its
  exemplar's label (B real images → about B·(1 + p) in the batch).

:class:`~exaug.ExemplarCollate` runs the same code inside the DataLoader's workers.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torchvision import tv_tensors

from .augment import DROP_IN_P, ExemplarAugment
from .images import check_images, check_labels
from .models import ExemplarGenerator
from .twins import check_probability


class ExemplarTwins:
    """Add Exemplar VAE twins to a batch of ``(images, labels)``, replacing images or appending to them.

    Args:
        source: a trained generator, a bundle directory or bundled name, or an :class:`~exaug.ExemplarAugment`
            whose generator, ``noise_scale`` and ``rng`` are reused (its ``p`` is not: this object has its own).
        p: probability that an image gets a twin (replace mode: is replaced by it).
        append: False replaces images; True keeps them and appends the twins with their exemplars' labels.
        noise_scale, rng: as in :class:`~exaug.ExemplarAugment` (ignored when ``source`` is one).

    Images are B×C×H×W, uint8 or float in [0, 1], on any device; labels are any tensor (or list) with one entry
    per image, class indices or one-hot/soft rows. The result keeps the images' dtype and device and the
    labels' dtype and device.

    Example::

        twins = ExemplarTwins("mnist", p=0.5, append=True)
        for images, labels in loader:
            images, labels = twins(images.cuda(), labels.cuda())
    """

    def __init__(self, source: ExemplarAugment | ExemplarGenerator | str | os.PathLike, p: float = DROP_IN_P,
                 append: bool = False, noise_scale: float = 1.0, rng: torch.Generator | None = None) -> None:
        self.p = check_probability(p)
        if isinstance(source, ExemplarAugment):
            self.augment = source
        elif isinstance(source, ExemplarGenerator):
            self.augment = ExemplarAugment(source, noise_scale=noise_scale, rng=rng)
        elif isinstance(source, (str, os.PathLike)):
            self.augment = ExemplarAugment.from_pretrained(source, noise_scale=noise_scale, rng=rng)
        else:
            raise TypeError(f"source must be a generator, a bundle directory or name, or an ExemplarAugment; got "
                            f"{type(source).__name__}")
        self.append = bool(append)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(p={self.p}, append={self.append}, noise_scale={self.augment.noise_scale}, "
                f"input_shape={self.augment.input_shape})")

    def __call__(self, *batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``twins(images, labels)`` or ``twins((images, labels))`` → ``(images, labels)``."""
        if len(batch) == 1 and isinstance(batch[0], (list, tuple)):
            batch = tuple(batch[0])
        if len(batch) != 2:
            raise TypeError(f"{type(self).__name__} takes a batch (images, labels); got {len(batch)} argument(s)")
        images, labels = batch
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"the images must be one tensor B×C×H×W, got a {type(images).__name__}; stack them with "
                            "torch.stack or use a DataLoader's default collate")
        given, images = images, images.as_subclass(torch.Tensor)  # a tv_tensors.Image batch is still images
        if not check_images(images, self.augment.input_shape, allow_empty=True):
            raise ValueError(f"{type(self).__name__} takes a batch B×C×H×W, got one image of shape "
                             f"{tuple(images.shape)}; add a batch axis with images.unsqueeze(0)")
        labels = check_labels(labels, images.shape[0])
        if self.append:
            chosen = torch.rand(images.shape[0], generator=self.augment.stream()) < self.p
            if chosen.any():  # the twins' noise is drawn for the chosen images only
                twins = self.augment.twins(images[chosen.to(images.device)])
                images = torch.cat([images, twins])
                labels = torch.cat([labels, labels[chosen.to(labels.device)]])
        else:
            replace, noise = self.augment.draws(images.shape[0], self.p)
            images = self.augment.replace_with_twins(images, replace, noise)
        return (tv_tensors.wrap(images, like=given) if isinstance(given, tv_tensors.TVTensor) else images), labels

