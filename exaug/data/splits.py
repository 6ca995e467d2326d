"""The fixed splits exaug uses throughout, as uint8 datasets, and the subsets and checksums built on them.

``train`` is the first 50K of the 60K training set, ``val`` its last 10K, ``test`` the 10K test set and
``trainval`` all 60K.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import torch

from .catalog import dataset_info, raw_files_present, resolve_root
from .fetching import fetch, files_failing_pins
from .staging import RANDOM_PART, staging_area

SPLITS = ("train", "val", "test", "trainval")
_NUM_TRAIN = 50_000  # train/val boundary inside the 60K training set (the classic MNIST split)


class ImageTensorDataset(torch.utils.data.Dataset):
    """Images kept as uint8 in memory, served as float32 in [0, 1] (``x / 255``, no binarisation).

    uint8 storage is 4x smaller than float and exactly reproducible (see `data_checksum`).

    Args:
        images: uint8 tensor N×C×H×W.
        labels: int64 tensor of length N, or None for unlabelled images; those are served with
            label -1, as torchvision's STL10 does for its unlabelled split, so batches still
            unpack as ``(x, y)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 N×C×H×W tensor, got dtype={images.dtype} "
                f"shape={tuple(images.shape)}; convert with (x * 255).round().to(torch.uint8)"
            )
        if labels is not None and (labels.dtype != torch.int64 or labels.shape != images.shape[:1]):
            raise ValueError(
                f"labels must be an int64 tensor of shape ({images.shape[0]},) to match the images, "
                f"got dtype={labels.dtype} shape={tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].to(torch.float32) / 255
        label = -1 if self.labels is None else int(self.labels[index])
        return image, label


def load_split(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    fetch_missing: bool = True,
) -> ImageTensorDataset:
    """Open one fixed split of a data set, through torchvision's reader.

    Args:
        name: One of `DATASETS`.
        split: One of `SPLITS`: ``train`` (first 50K of the training set), ``val`` (its last
            10K), ``test`` (the 10K test set) or ``trainval`` (all 60K).
        root: Data root; `default_root()` when None.
        fetch_missing: Call `fetch` first; if False, missing files raise FileNotFoundError.

    Returns:
        The split with images 1×28×28.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    root = resolve_root(root)
    if fetch_missing:
        fetch(name, root)
    elif not raw_files_present(info, root):
        raise FileNotFoundError(
            f"{name} is not under {root}; run exaug.data.fetch({name!r}, {str(root)!r}) "
            "or call load_split with fetch_missing=True"
        )
    else:
        damaged = files_failing_pins(info, root)
        if damaged:
            raise ValueError(f"{', '.join(str(path) for path in damaged)} do not match their pinned sha256 (damaged or "
                             f"altered); run `exaug data fetch {name}` (or exaug.data.fetch({name!r})), which "
                             "replaces them with verified copies")

    source = info.torchvision_class(root, train=split != "test", download=False)
    rows = {"train": slice(None, _NUM_TRAIN), "val": slice(_NUM_TRAIN, None)}.get(split, slice(None))
    # clone so that a 10K split does not keep the whole 60K tensor alive
    return ImageTensorDataset(source.data[rows].unsqueeze(1).clone(), source.targets[rows].clone())


def balanced_subset_rows(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Sorted row numbers of a class-balanced subset: ``size / classes`` rows of each class, drawn by ``seed``.

    The low-data regimes of the drop-in benchmark and ``exaug data subset`` draw with this one rule, so a
    generator fitted on a written subset and a classifier trained on the same (size, seed) see the same images.
    """
    classes = int(labels.max()) + 1
    if size < classes or size % classes:
        raise ValueError(f"a balanced subset of {size} images cannot split evenly over {classes} classes; "
                         f"pick a multiple of {classes}")
    per_class = size // classes
    draw = torch.Generator().manual_seed(seed)
    picked = []
    for label in range(classes):
        rows = torch.nonzero(labels == label).flatten()
        if len(rows) < per_class:
            raise ValueError(f"class {label} has {len(rows)} images, fewer than the {per_class} a balanced subset "
                             f"of {size} needs; pick a smaller size")
        picked.append(rows[torch.randperm(len(rows), generator=draw)[:per_class]])
    return torch.cat(picked).sort().values


def write_image_folder(images: torch.Tensor, labels: torch.Tensor, out: str | os.PathLike[str]) -> Path:
    """Write uint8 images N×1×H×W as PNGs in torchvision's ImageFolder layout (``out/<label>/<row>.png``).

    The folder appears whole or not at all: it is written beside ``out`` (in ``.<name>.<random>``) and renamed
    into place, and an existing ``out`` is refused rather than mixed with. What a killed write left there is
    removed by the next call for the same ``out``, even one refused (`exaug.data.staging`).
    """
    from PIL import Image

    out = Path(out)
    with staging_area(out.parent, re.compile(re.escape(f".{out.name}.") + RANDOM_PART)):
        if out.exists():
            raise ValueError(f"{out} already exists; pass a new folder (nothing was written)")
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            for row, (image, label) in enumerate(zip(images, labels.tolist())):
                folder = staging / str(label)
                folder.mkdir(exist_ok=True)
                Image.fromarray(image[0].numpy()).save(folder / f"{row:05d}.png")
            os.replace(staging, out)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return out


def data_checksum(dataset: ImageTensorDataset) -> str:
    """sha256 hex of the uint8 image bytes, then the int64 label bytes if any.

    Recorded beside a trained model to say exactly which data it saw.
    """
    return streamed_checksum([dataset.images], dataset.labels)


def streamed_checksum(image_chunks: Iterable[torch.Tensor], labels: torch.Tensor | None) -> str:
    """:func:`data_checksum` of images given chunk after chunk (uint8, in row order), so a set read by index
    need not be held in RAM whole to be checked."""
    digest = hashlib.sha256()
    for chunk in image_chunks:
        digest.update(chunk.cpu().contiguous().numpy())
    if labels is not None:
        digest.update(labels.cpu().contiguous().numpy())
    return digest.hexdigest()
