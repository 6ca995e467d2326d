"""How far the §5.4 twins of two bundles of one generator lie apart, drawn with the same noise.

``MixedBatchLoader`` (the loader of ``exaug fit-classifier`` and the paper's §5.4 recipe) builds the twin of a
training image that is one of the generator's exemplars around that exemplar's stored latent mean, not around a
fresh encoding. Two bundles of the same weights whose stored means differ (float32 against float16, for example)
therefore give different twins. This script passes the first N training images through a MixedBatchLoader of each
bundle with the same seed, so each twin pair shares its noise, and reports how many twin pixels differ and by how
much (in steps of 1/255, the twins' rounding).

    python benchmarks/twin_shift.py --generator float32=carry/means-precision/hvae-e311-float32 \
        --generator float16=carry/means-precision/hvae-e311-float16 --images 10000 --threads 1 \
        --out benchmarks/results/hvae_50k/means_precision_twins.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from exaug import MixedBatchLoader, load_generator
from exaug.atomic import atomic_write_text
from exaug.data import load_split
from exaug.device import apply_threads

from paired_nll import generator_sources  # a sibling script: benchmarks/ is on the path when this one runs


def twins(source: str, dataset: Dataset, seed: int, batch_size: int) -> torch.Tensor:
    """The §5.4 twins of every image of ``dataset`` from the bundle at ``source``, in steps of 1/255."""
    loader = MixedBatchLoader(DataLoader(dataset, batch_size=batch_size), load_generator(source), device="cpu",
                              seed=seed)
    return torch.cat([(batch.synthetic * 255).round() for batch in loader])


def shift(first: torch.Tensor, second: torch.Tensor) -> dict[str, float]:
    """How the pixels of two equally shaped twin sets (in steps of 1/255) differ."""
    steps = (second - first).abs()
    changed_images = (steps.flatten(1) > 0).any(dim=1)
    return {"pixels_changed_share": (steps > 0).double().mean().item(),
            "images_changed_share": changed_images.double().mean().item(),
            "mean_abs_steps": steps.double().mean().item(), "max_abs_steps": steps.max().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", action="append", required=True, metavar="NAME=BUNDLE",
                        help="a label and a bundle; exactly two, the first the baseline")
    parser.add_argument("--images", type=int, default=10_000, help="the first IMAGES training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sources, dataset = generator_sources(parser, args.generator, count=2)
    apply_threads(args.threads)
    train = Subset(load_split(dataset, "train"), range(args.images))
    (baseline, first), (other, second) = ((name, twins(source, train, args.seed, args.batch_size))
                                          for name, source in sources.items())
    report = {"benchmark": "twin_shift", "images": args.images, "seed": args.seed, "threads": args.threads,
              "baseline": baseline, "other": other, "sources": sources, **shift(first, second),
              "torch": torch.__version__, "machine": platform.machine()}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"{other} against {baseline}, {args.images} twins: {100 * report['images_changed_share']:.2f} % of twins "
          f"and {100 * report['pixels_changed_share']:.4f} % of pixels differ; mean |change| "
          f"{report['mean_abs_steps']:.5f}, largest {report['max_abs_steps']:.0f} steps of 1/255")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
