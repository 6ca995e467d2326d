"""Seconds per image of the test IWAE bound (S importance samples) with the exemplar prior, scored against
every exemplar or only against those near each image's posterior mean (``prior_tolerance``), side by side.

Both estimators see the same binarised images and the same noise, image by image in turn, in one process,
so the ratio holds on a noisy machine; the table also gives the largest change of the bound.

    python benchmarks/iwae_speed.py --generator mnist --images 20 --samples 5000 --threads 1 \
        --out benchmarks/results/iwae_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from exaug import load_generator
from exaug.atomic import atomic_write_text
from exaug.bundle import read_bundle_config, trained_dataset
from exaug.data import load_split
from exaug.device import apply_threads

TOLERANCE = 1e-3


def timed_bounds(model, images: torch.Tensor, samples: int, tolerance: float | None, seed: int
                 ) -> tuple[torch.Tensor, list[float]]:
    """The bound of each image and the seconds it took, each image drawing its noise from ``seed + row``."""
    bounds, seconds = [], []
    for row, image in enumerate(images):
        started = time.perf_counter()
        bounds.append(model.iwae(image[None], samples, generator=torch.Generator().manual_seed(seed + row),
                                 prior_tolerance=tolerance))
        seconds.append(time.perf_counter() - started)
    return torch.cat(bounds), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="mnist")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/iwae_speed.json"))
    args = parser.parse_args()
    apply_threads(args.threads)

    model = load_generator(args.generator)
    dataset = trained_dataset(read_bundle_config(args.generator)) or "mnist"
    grey = load_split(dataset, "test").images[: args.images].float() / 255
    images = torch.bernoulli(grey, generator=torch.Generator().manual_seed(0))
    timed_bounds(model, images[:1], args.samples, TOLERANCE, seed=0)  # warm-up: allocations, faiss, caches
    exact, exact_seconds, near, near_seconds = [], [], [], []
    for row in range(args.images):  # alternate, so both see the same load on a noisy machine
        bound, seconds = timed_bounds(model, images[row:row + 1], args.samples, None, seed=row)
        exact.append(bound), exact_seconds.extend(seconds)
        bound, seconds = timed_bounds(model, images[row:row + 1], args.samples, TOLERANCE, seed=row)
        near.append(bound), near_seconds.extend(seconds)
    exact, near = torch.cat(exact), torch.cat(near)
    change = exact - near
    result = {
        "generator": args.generator, "images": args.images, "samples": args.samples, "threads": args.threads,
        "exemplars": int(model.exemplar_means.shape[0]), "tolerance": TOLERANCE,
        "seconds_per_image": {"all_exemplars": sum(exact_seconds) / args.images,
                              "near_exemplars": sum(near_seconds) / args.images},
        "speed_up": sum(exact_seconds) / sum(near_seconds),
        "bound_change_nats": {"max": float(change.max()), "mean": float(change.mean()), "min": float(change.min())},
        "mean_bound": {"all_exemplars": float(exact.mean()), "near_exemplars": float(near.mean())},
        "torch": torch.__version__, "machine": platform.machine(),
    }
    print(f"all exemplars:  {result['seconds_per_image']['all_exemplars']:.3f} s/image, "
          f"near exemplars: {result['seconds_per_image']['near_exemplars']:.3f} s/image "
          f"({result['speed_up']:.1f}× faster); bound change ≤ {result['bound_change_nats']['max']:.2e} nat")
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
