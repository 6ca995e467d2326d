"""ExemplarCollate: Exemplar VAE twins for a whole batch in one generator call, inside the DataLoader.

A per-image transform pays the generator's fixed cost once per image; a ``collate_fn`` pays it once per
batch, in the worker that builds the batch. Two modes:

* replace (default): each image is replaced by its twin with probability ``p``, exactly what
  :class:`~exaug.ExemplarAugment` does per image, batched;
* append: the batch keeps every real image, and twins of a random ``p``-share of it are appended, each
  with its exemplar's label (B real images → about B·(1 + p) in the batch).

Classic per-image augmentation given as ``transform`` runs after generation, on real images and twins
alike, so the generator always sees the untransformed images it was trained on.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import default_collate

from .augment import ExemplarAugment


class ExemplarCollate:
    """A DataLoader ``collate_fn`` that adds Exemplar VAE twins batch by batch.

    The dataset must yield ``(image, label)`` pairs whose images the generator takes: C×H×W tensors,
    uint8 or float in [0, 1] (``v2.ToImage()`` alone, or ``v2.ToImage()`` and
    ``v2.ToDtype(torch.float32, scale=True)``). Batches come out as ``(images, labels)``.

    Args:
        augment: the transform whose generator, ``p`` and ``noise_scale`` are used.
        append: False replaces images (each with probability ``p``); True keeps them and appends twins.
        transform: applied to each image of the batch after generation (e.g. ``v2.RandomAffine``), or None.
        collate_fn: turns the list of samples into ``(images, labels)`` (default: torch's ``default_collate``).

    Example::

        augment = ExemplarAugment.from_pretrained("mnist", p=0.5)
        loader = DataLoader(train, batch_size=64, shuffle=True, collate_fn=ExemplarCollate(augment, append=True))
    """

    def __init__(self, augment: ExemplarAugment, append: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 collate_fn: Callable[[Sequence[Any]], Any] = default_collate) -> None:
        if not isinstance(augment, ExemplarAugment):
            raise TypeError(f"augment must be an ExemplarAugment, got {type(augment).__name__}; "
                            "build one with ExemplarAugment.from_pretrained(name_or_path, p=...)")
        self.augment = augment
        self.append = bool(append)
        self.transform = transform
        self.collate_fn = collate_fn

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.augment!r}, append={self.append}, transform={self.transform!r})"

    def __call__(self, samples: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.collate_fn(samples)
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise ValueError("ExemplarCollate needs a dataset of (image, label) pairs; got samples that collate to "
                             f"a {type(batch).__name__}" + (f" of {len(batch)} parts" if isinstance(batch, (list, tuple)) else ""))
        images, labels = batch
        images = torch.as_tensor(images).as_subclass(torch.Tensor)  # a tv_tensors.Image batch is still images
        labels = torch.as_tensor(labels)
        if self.append:
            chosen = torch.rand(images.shape[0], generator=self.augment.stream()) < self.augment.p
            if chosen.any():
                twins = self.augment.twins(images[chosen.to(images.device)])
                images = torch.cat([images, twins])
                labels = torch.cat([labels, labels[chosen.to(labels.device)]])
        else:
            images = self.augment(images)
        if self.transform is not None:
            images = torch.stack([self.transform(image) for image in images])
        return images, labels
