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
from .data import DATASETS, data_checksum, load_split, verify_files
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
    and matches its recorded checksum; None otherwise.

    Raises:
        ValueError: the split's files are damaged; the message names them and the command that repairs them.
    """
    dataset = trained_dataset(config)
    if dataset not in DATASETS or config.get("data_checksum") is None:
        return None
    try:
        split = load_split(dataset, "train", data_root, fetch_missing=False)
    except FileNotFoundError:
        return None
    if data_checksum(split) == config["data_checksum"]:
        return split.images
    # load_split trusts a file whose size and modification time are those it was verified with; damage that kept
    # both would pass as another data set, so the files are hashed again before the images are given up.
    damaged = verify_files(dataset, data_root)
    if damaged:
        raise ValueError(f"{', '.join(str(path) for path in damaged)} do not match their pinned sha256 although their "
                         "size and modification time are unchanged (damaged on disk); run `exaug data fetch --verify "
                         f"{dataset}` (or exaug.data.fetch({dataset!r}, verify=True)), which hashes every file again "
                         "and replaces the damaged ones with verified copies")
    return None
