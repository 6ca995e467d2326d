"""load_generator: a generator by bundled name or bundle directory, ready to augment.

The bundle format (`exaug.bundle`) knows nothing of data sets. A bundle shipped without its exemplar images
(the bundled "mnist" and "fashion-mnist" generators, to keep the package small) gets them back here, from
the training split its config names, and only when that split's checksum matches the one recorded.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .bundle import load_bundle, resolve_bundle, trained_dataset
from .data import DATASETS, data_checksum, load_split
from .device import resolve_device
from .models import ExemplarGenerator


def load_generator(path_or_name: str | os.PathLike, device: str | torch.device = "cpu",
                   data_root: str | os.PathLike | None = None) -> ExemplarGenerator:
    """Load a generator from a bundle directory or a bundled name ("mnist", "fashion-mnist"); never unpickles.

    ``data_root`` is where a bundle saved without its exemplar images finds its training split to re-attach
    them (default: ``exaug.data.default_root()``, i.e. ``EXAUG_DATA`` or ``~/.cache/exaug/data``).
    """
    return load_bundle(resolve_bundle(path_or_name), device=resolve_device(device),
                       exemplar_images=lambda config: training_split_images(config, data_root))


def training_split_images(config: dict[str, Any], data_root: str | os.PathLike | None) -> torch.Tensor | None:
    """The exemplar images of a bundle saved without them, when its training split is at hand under ``data_root``
    and matches its recorded checksum; None otherwise."""
    dataset = trained_dataset(config)
    if dataset not in DATASETS or config.get("data_checksum") is None:
        return None
    try:
        split = load_split(dataset, "train", data_root, fetch_missing=False)
    except FileNotFoundError:
        return None
    return split.images if data_checksum(split) == config["data_checksum"] else None
