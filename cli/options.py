"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import click
import torch
from torch.utils.data import Dataset, random_split

from exaug import data

root_option = click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), envvar="EXAUG_DATA", default=None,
    help="Data root (env EXAUG_DATA; default ~/.cache/exaug/data).",
)


def generator_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--generator NAME|DIR``, passed on as ``generator_dir``: a bundled name or a bundle directory."""
    return click.option("--generator", "generator_dir", type=click.Path(path_type=Path), metavar="NAME|DIR",
                        required=True, help=f"{what}: a bundled name (mnist, fashion-mnist) or a bundle directory "
                                            "written by fit-generator.")


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch and faiss (default: all cores).",
)


def dataset_choice(value: str) -> str:
    """A bundled dataset name, or an existing folder in torchvision ImageFolder layout."""
    if value in data.DATASETS or Path(value).is_dir():
        return value
    raise click.BadParameter(f"{value!r} is neither one of {', '.join(data.DATASETS)} nor an existing folder")


@functools.lru_cache(maxsize=8)
def check_images_readable(root: str, paths: tuple[str, ...]) -> None:
    """Open and verify every image of a folder once, and refuse a file that is not an image, or images of
    different sizes, naming the file: found later, inside a DataLoader, either would end a run in a traceback."""
    from PIL import Image, UnidentifiedImageError

    sizes: dict[tuple[int, int], str] = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
                sizes.setdefault(image.size, path)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL raises SyntaxError for some bad PNGs
            raise ValueError(f"{path} cannot be read as an image ({error}); remove or replace it") from error
        if len(sizes) > 1:
            (first_size, first), (size, other) = list(sizes.items())[:2]
            raise ValueError(f"{root} holds images of different sizes: {first} is {first_size[0]}×{first_size[1]}, "
                             f"{other} is {size[0]}×{size[1]}; resize them all to one size first")


FOLDER_SPLIT_SEED = 0  # one fixed train/val split of a folder, whatever the training seed


def open_dataset(name: str, split: str, root: Path | None, channels: int | None = None,
                 val_fraction: float = 0.1) -> Dataset:
    """A split of MNIST / Fashion-MNIST, or of an ImageFolder tree split ``val_fraction`` for validation.

    Every command splits a folder the same way, so validation images are never a
    generator's exemplars.
    """
    if name in data.DATASETS:
        return data.load_split(name, split, root)
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    steps: list[Callable[[Any], Any]] = [v2.ToImage()]
    if channels is not None:
        steps.append(v2.Grayscale(num_output_channels=1) if channels == 1 else v2.RGB())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    try:
        folder = ImageFolder(os.fspath(name), transform=v2.Compose(steps))
    except FileNotFoundError as error:  # a class folder without images, or no class folders at all
        raise ValueError(f"{name}: {error}. Each class needs a folder with at least one image "
                         "(name/<class>/<image>): remove empty class folders") from error
    check_images_readable(folder.root, tuple(path for path, _ in folder.samples))
    if split in ("trainval", "test"):
        return folder
    val_size = max(1, int(round(val_fraction * len(folder))))
    train_part, val_part = random_split(folder, [len(folder) - val_size, val_size],
                                        generator=torch.Generator().manual_seed(FOLDER_SPLIT_SEED))
    return train_part if split == "train" else val_part
