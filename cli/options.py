"""Options and helpers shared by several commands."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import click
import torch
from torch.utils.data import Dataset, random_split

from exaug import data
from exaug.config import MAX_SEED
from exaug.distributed import current_group

root_option = click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), envvar="EXAUG_DATA", default=None,
    help="Data root (env EXAUG_DATA; default ~/.cache/exaug/data).",
)


def generator_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--generator NAME|DIR``, passed on as ``generator_dir``: a bundled name or a bundle directory.

    Passed on as typed (a string), so ``mnist`` stays the bundled name and ``./mnist`` a folder
    (`exaug.bundle.resolve_bundle`)."""
    return click.option("--generator", "generator_dir", type=click.Path(), metavar="NAME|DIR",
                        required=True, help=f"{what}: a bundled name (mnist, fashion-mnist) or a bundle directory "
                                            "written by fit-generator (./mnist for a folder named like a bundled "
                                            "generator).")


def echo_once(message: str, err: bool = False) -> None:
    """Print ``message`` from this process alone, or from rank 0 of a DDP run (so N processes print it once)."""
    group = current_group()
    if group is None or group.is_writer:
        click.echo(message, err=err)


def command_line(command: str) -> str | None:
    """The command line that ran ``command``, as ``exaug COMMAND ARGS…`` (however exaug was started: the console
    script, ``python -m exaug.cli``, torchrun); None when no command line ran it (click's test runner, a script)."""
    arguments = sys.argv[1:]
    if command not in arguments:
        return None
    return shlex.join(["exaug", *arguments[arguments.index(command):]])


seed_type = click.IntRange(min=0, max=MAX_SEED)  # what torch's generators take, with room for derived seeds

threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch and faiss (default: all cores).",
)


def dataset_choice(value: str) -> str:
    """A bundled dataset name, or an existing folder in torchvision ImageFolder layout."""
    if value in data.DATASETS or Path(value).is_dir():
        return value
    raise click.BadParameter(f"{value!r} is neither one of {', '.join(data.DATASETS)} nor an existing folder")


class ImageFileError(ValueError):
    """An image file that cannot be read, named with the fix: one line, even when a DataLoader worker raised it.

    The DataLoader rebuilds a worker's exception in the main process from the worker's whole traceback, whose
    last line is this error's own; only that line is kept, so the command line still reports one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message.rstrip().splitlines()[-1].split(f"{ImageFileError.__name__}: ", 1)[-1])


def unreadable_image(path: str, error: BaseException) -> ImageFileError:
    """The error for an image file PIL cannot open or decode (a decompression bomb included), naming the file."""
    return ImageFileError(f"{path} cannot be read as an image ({error}); remove or replace it")


def _pil_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for a file it cannot read: not an image, a decompression bomb, a damaged stream, and the
    SyntaxError some damaged PNGs give."""
    from PIL import Image, UnidentifiedImageError

    return UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError


def read_image(path: str) -> Any:
    """Load one image of a folder as torchvision's ImageFolder does, naming the file when it cannot be read:
    a file damaged after the check up front would otherwise end a run in a worker's traceback."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except _pil_errors() as error:
        raise unreadable_image(path, error) from error


@functools.lru_cache(maxsize=8)
def check_images_readable(root: str, paths: tuple[str, ...]) -> None:
    """Decode every image of a folder once, and refuse a file that is not an image, is too large for PIL (a
    decompression bomb) or does not decode, or images of different sizes, naming the file: found later,
    inside a DataLoader, any of them would end a run in a traceback. ``verify()`` alone checks the chunks'
    CRCs, not the compressed stream inside them, so each image is also decoded."""
    from PIL import Image

    sizes: dict[tuple[int, int], str] = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                image.load()
                sizes.setdefault(image.size, path)
        except _pil_errors() as error:
            raise unreadable_image(path, error) from error
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
        folder = ImageFolder(os.fspath(name), transform=v2.Compose(steps), loader=read_image)
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
