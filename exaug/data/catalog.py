"""The data sets exaug knows, one registry entry each, and where their files live.

Everything that names a data set (the fetcher, the splits, the CLI's choices, a bundle re-attaching its
exemplar images, the paper's λ) reads it here. A data set beyond these two also needs an offline source in
`fetching` and, if its images are not 28×28 with 60K/10K splits, the size checks there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torchvision


@dataclass(frozen=True)
class DatasetInfo:
    """One data set: its torchvision reader, the pins its raw files must match, and the paper's λ for it."""

    name: str
    torchvision_class: type[torchvision.datasets.MNIST]
    # sha256 of the uncompressed raw files as published upstream; every source must reproduce these
    # bytes exactly. (torchvision pins the md5 of the .gz files instead, but Debian's .gz differ from
    # upstream's in their gzip header, which its package build normalises, not in their content.)
    raw_sha256: dict[str, str]
    # The label histogram of one split of the genuine data: with the sizes, a wrong file fails readably.
    label_counts: tuple[str, tuple[int, ...]]
    paper_lambda: float  # λ of eq. 16 the paper picked on validation for this data set (§5.4)


REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo(
        "mnist", torchvision.datasets.MNIST,
        {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        ("test", (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)),
        paper_lambda=0.4,
    ),
    DatasetInfo(
        "fashion-mnist", torchvision.datasets.FashionMNIST,
        {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        ("train", (6000,) * 10),  # balanced by construction
        paper_lambda=0.8,
    ),
)}
DATASETS = tuple(REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; an unknown name is refused, listing the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    return REGISTRY[name]


def default_root() -> Path:
    """Where data lives unless a root is given: ``$EXAUG_DATA`` if set, else ``~/.cache/exaug/data``."""
    env = os.environ.get("EXAUG_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "exaug" / "data"



def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` as a path, or `default_root()` when None."""
    return default_root() if root is None else Path(root).expanduser()


def raw_folder(info: DatasetInfo, root: Path) -> Path:
    """Where torchvision's reader looks for the raw idx files of ``info`` under ``root``."""
    return root / info.torchvision_class.__name__ / "raw"


def raw_files_present(info: DatasetInfo, root: Path) -> bool:
    return all((raw_folder(info, root) / name).is_file() for name in info.raw_sha256)
