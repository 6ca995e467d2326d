"""How much blurrier twins are than the real images they come from.

A twin is the decoder's Bernoulli mean rounded to 1/255 (§5.4), not a binary draw, so its strokes may
carry more grey than a real digit's. This benchmark makes one twin per real training image through
``ExemplarAugment.twins`` (the path every plugin uses) and reports, for the real images and the twins:
the share of grey pixels (strictly between 0.1 and 0.9), of saturated ones (≥ 0.9), the mean intensity
("ink"), and the mean absolute difference between a twin and its exemplar.

    python benchmarks/twin_sharpness.py --generator mnist --out benchmarks/results/twin_sharpness_mnist.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from exaug import ExemplarAugment
from exaug.atomic import atomic_write_text
from exaug.bundle import read_bundle_config, trained_dataset
from exaug.data import load_split
from exaug.device import apply_threads


def pixel_statistics(images: torch.Tensor) -> dict[str, float]:
    """Shares (%) of grey and saturated pixels and the mean intensity of uint8 images."""
    values = images.float() / 255
    return {"grey_pixels_percent": 100 * ((values > 0.1) & (values < 0.9)).float().mean().item(),
            "saturated_pixels_percent": 100 * (values >= 0.9).float().mean().item(),
            "mean_intensity": values.mean().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="mnist", help="bundled name or bundle directory")
    parser.add_argument("--count", type=int, default=5000, help="training images used (the first COUNT)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    apply_threads(1)
    dataset = trained_dataset(read_bundle_config(args.generator))
    real = load_split(dataset, "train").images[: args.count]
    torch.manual_seed(args.seed)
    twins = ExemplarAugment.from_pretrained(args.generator).twins(real)
    report = {"benchmark": "twin_sharpness", "torch_threads": torch.get_num_threads(), "generator": args.generator,
              "dataset": dataset, "count": args.count,
              "real": pixel_statistics(real), "twins": pixel_statistics(twins),
              "mean_abs_difference_to_exemplar": (twins.float() - real.float()).abs().mean().item() / 255}
    for name in ("real", "twins"):
        stats = report[name]
        print(f"{name:>5}: grey {stats['grey_pixels_percent']:.2f} %, saturated {stats['saturated_pixels_percent']:.2f} %, "
              f"mean intensity {stats['mean_intensity']:.4f}")
    print(f"mean |twin − exemplar| per pixel: {report['mean_abs_difference_to_exemplar']:.4f}")
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
