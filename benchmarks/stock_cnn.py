"""The stock PyTorch MNIST example with ExemplarAugment dropped in exactly as a user would, seed by seed.

The issue that opened the drop-in question tried this once per cell: the example's network, Adadelta lr 1.0,
batch 64, ``v2.Normalize((0.1307,), (0.3081,))``, and ``ExemplarAugment.from_pretrained("mnist", p=...)``
placed before ``ToImage``/``ToDtype`` on the PIL images of ``torchvision.datasets.MNIST``, trained on the
first 10,000 training images. This script repeats it over seeds, with and without augmentation side by side
in one process, and scores the validation images (the last 10K of the training set) unless ``--test``.
It checks two things the main grid (dropin.py) does differently: the per-image PIL path instead of the batched
collate, and input normalisation.

    python benchmarks/stock_cnn.py --epochs 1 --no-dropout --seeds 0 1 2 3 4 --out benchmarks/results/stock_cnn_e1.json
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import click
import torch
import torchvision
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from exaug import ExemplarAugment
from exaug.atomic import atomic_write_text
from exaug.data import default_root, fetch
from exaug.device import apply_threads

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def example_network(dropout: bool) -> torch.nn.Module:
    """The PyTorch MNIST example's network, with its two dropout layers or without them."""
    drop = (lambda rate: torch.nn.Dropout(rate)) if dropout else (lambda rate: torch.nn.Identity())
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), drop(0.25), torch.nn.Flatten(), torch.nn.Linear(9216, 128), torch.nn.ReLU(),
        drop(0.5), torch.nn.Linear(128, 10))


def train_and_score(seed: int, p: float | None, epochs: int, dropout: bool, normalize: bool, test: bool,
                    root: Path, train_images: int = 10_000) -> float:
    """Error in % after ``epochs`` epochs on the first ``train_images`` training images (the issue's 10K); ``p`` None
    trains without augmentation."""
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)] + ([v2.Normalize(MNIST_MEAN, MNIST_STD)]
                                                                     if normalize else [])
    augment = [] if p is None else [ExemplarAugment.from_pretrained("mnist", p=p)]
    train = Subset(torchvision.datasets.MNIST(root, train=True, transform=v2.Compose(augment + tail)),
                   range(train_images))
    scored = torchvision.datasets.MNIST(root, train=not test, transform=v2.Compose(tail))
    if not test:
        scored = Subset(scored, range(50_000, 60_000))
    torch.manual_seed(seed)
    model = example_network(dropout)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        wrong = sum((model(x).argmax(1) != y).sum().item() for x, y in DataLoader(scored, batch_size=1000))
    return 100.0 * wrong / len(scored)


@click.command()
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--p", "ps", type=float, multiple=True, default=(0.5,), show_default=True, help="ExemplarAugment's p.")
@click.option("--seeds", type=int, multiple=True, default=(0, 1, 2, 3, 4), show_default=True)
@click.option("--dropout/--no-dropout", default=True, show_default=True)
@click.option("--normalize/--no-normalize", default=True, show_default=True)
@click.option("--test", is_flag=True, help="Score the test set instead of validation.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def main(epochs: int, ps: tuple[float, ...], seeds: tuple[int, ...], dropout: bool, normalize: bool, test: bool,
         out: Path) -> None:
    """Without and with ExemplarAugment at each p, paired by seed; prints the table and writes JSON."""
    apply_threads(1)
    root = fetch("mnist", default_root())
    rows: dict[str, list[float]] = {}
    started = time.perf_counter()
    for seed in seeds:
        for p in (None, *ps):
            name = "none" if p is None else f"p={p:g}"
            rows.setdefault(name, []).append(train_and_score(seed, p, epochs, dropout, normalize, test, root))
            print(f"seed {seed} {name}: {rows[name][-1]:.2f} %", flush=True)
    scored_on = "test" if test else "validation"
    print(f"\n{epochs} epoch(s), first 10K images, dropout {dropout}, normalize {normalize}, {scored_on} error %")
    for name, errors in rows.items():
        paired = [a - b for a, b in zip(errors, rows["none"])]
        mean = sum(errors) / len(errors)
        print(f"{name:>8}: mean {mean:.2f}  per seed {errors}" +
              ("" if name == "none" else f"  paired vs none {sum(paired) / len(paired):+.2f}"))
    atomic_write_text(out, json.dumps({
        "benchmark": "stock_cnn", "epochs": epochs, "dropout": dropout, "normalize": normalize, "scored_on": scored_on,
        "seeds": list(seeds), "errors": rows, "seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
