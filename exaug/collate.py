"""ExemplarCollate: Exemplar VAE twins for a whole batch in one generator call, inside the DataLoader.

A per-image transform pays the generator's fixed cost once per image; a ``collate_fn`` pays it once per
batch, in the worker that builds the batch. It runs :class:`~exaug.ExemplarTwins` on the collated batch, in
either of its modes:

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
from .batch_twins import ExemplarTwins


class ExemplarCollate:
    """A DataLoader ``collate_fn`` that adds Exemplar VAE twins batch by batch.

    The dataset must yield ``(image, label)`` pairs whose images the generator takes: C×H×W tensors,
    uint8 or float in [0, 1] (``v2.ToImage()`` alone, or ``v2.ToImage()`` and
    ``v2.ToDtype(torch.float32, scale=True)``). Batches come out as ``(images, labels)``.

    Args:
        augment: the transform whose generator, ``noise_scale`` and random stream are used.
        append: False replaces images (each with probability ``p``); True keeps them and appends twins.
        transform: applied to each image of the batch after generation (e.g. ``v2.RandomAffine``), or None.
        collate_fn: turns the list of samples into ``(images, labels)`` (default: torch's ``default_collate``).
        p: this collate's probability that an image gets a twin; by default the ``p`` ``augment`` was built
            with, so one transform can serve a per-image ``p`` and a batched one.

    Example::

        augment = ExemplarAugment.from_pretrained("mnist")
        loader = DataLoader(train, batch_size=64, shuffle=True,
                            collate_fn=ExemplarCollate(augment, append=True, p=0.5))
    """

    def __init__(self, augment: ExemplarAugment, append: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 collate_fn: Callable[[Sequence[Any]], Any] = default_collate, p: float | None = None) -> None:
        if not isinstance(augment, ExemplarAugment):
            raise TypeError(f"augment must be an ExemplarAugment, got {type(augment).__name__}; "
                            "build one with ExemplarAugment.from_pretrained(name_or_path, p=...)")
        self.twins = ExemplarTwins(augment, p=augment.p if p is None else p, append=append)
        self.transform = transform
        self.collate_fn = collate_fn

    @property
    def augment(self) -> ExemplarAugment:
        return self.twins.augment

    @property
    def p(self) -> float:
        return self.twins.p

    @property
    def append(self) -> bool:
        return self.twins.append

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.twins.augment!r}, append={self.append}, p={self.p}, "
                f"transform={self.transform!r})")

    def __call__(self, samples: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.collate_fn(samples)
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise ValueError("ExemplarCollate needs a dataset of (image, label) pairs; got samples that collate to "
                             f"a {type(batch).__name__}" + (f" of {len(batch)} parts" if isinstance(batch, (list, tuple)) else ""))
        images, labels = self.twins(*batch)
        if self.transform is not None:
            images = torch.stack([self.transform(image) for image in images])
        return images, labels
