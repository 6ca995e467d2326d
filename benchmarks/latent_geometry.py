"""Where a generator's latent space sits: its kernel against the spacing of its exemplars, and how many
posterior log-variances rest on the encoder's clamp.

The ELBO cannot see a uniform rescaling of the latent space: the encoder may spread its means out and
the prior's σ follow, with the bound unchanged. Two things do see it. Twins are drawn at the kernel width
σ around an exemplar mean, so what matters for augmentation is σ against the distance between
neighbouring exemplars, not σ itself. And the encoder clamps its log-variances at ``LOG_VAR_MAX``, so a
space that has grown far enough pins some of them there. This script reports both for each generator,
side by side, on the exemplars and on validation images (the test split is not read).

    python benchmarks/latent_geometry.py --generators mnist runs/ttq-50k-default runs/ttq-50k-all \\
        --out benchmarks/results/latent_geometry.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path
from typing import Any

import torch

from exaug.atomic import atomic_write_text
from exaug.data import load_split
from exaug.device import apply_threads
from exaug.evaluate import binarize_once, posterior_log_variances
from exaug.models import ExemplarGenerator
from exaug.models.base import LOG_VAR_MAX
from exaug.pretrained import load_generator
from exaug.priors import squared_distances

from twin_label_agreement import recorded_dataset  # the same check of what the generator trained on


def nearest_other_distances(queries: int, means: torch.Tensor, rows_per_chunk: int = 500) -> torch.Tensor:
    """For each of the first ``queries`` rows of ``means``: the distance to its nearest *other* row."""
    nearest = []
    for start in range(0, queries, rows_per_chunk):
        rows = torch.arange(start, min(start + rows_per_chunk, queries))
        distances = squared_distances(means[rows], means)
        distances[torch.arange(len(rows)), rows] = math.inf
        nearest.append(distances.min(dim=1).values.sqrt())
    return torch.cat(nearest)


@torch.no_grad()
def latent_geometry(model: ExemplarGenerator, images: torch.Tensor, exemplars: int) -> dict[str, Any]:
    """The kernel against the exemplar spacing (over the first ``exemplars``) and the posterior log-variances
    of ``images`` (binary)."""
    means = model.exemplar_means
    sigma = model.kernel_std().item()
    spacing = nearest_other_distances(min(exemplars, means.shape[0]), means).median().item()
    return {
        "kernel_sigma": sigma,
        "exemplar_spread_per_dimension": means.std(dim=0).median().item(),
        "nearest_exemplar_distance": spacing,
        # A twin lies about σ·√d from its exemplar: this compares that offset with the gap to the nearest
        # other exemplar, and does not change when the whole space is rescaled.
        "twin_offset_to_spacing": sigma * math.sqrt(means.shape[1]) / spacing,
        **posterior_log_variances(model, images),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generators", nargs="+", default=["mnist"],
                        help="bundled names or generator folders (exaug fit-generator --out)")
    parser.add_argument("--exemplars", type=int, default=5000, help="exemplars whose nearest neighbour is measured")
    parser.add_argument("--images", type=int, default=2000, help="validation images encoded (the first N)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latent_geometry.json"))
    args = parser.parse_args()
    apply_threads(args.threads)

    results = {}
    for name in args.generators:
        dataset = recorded_dataset(name)
        model = load_generator(name).eval()
        if model.config.prior != "exemplar":
            raise SystemExit(f"{name} has a {model.config.prior} prior: this measures exemplar-prior generators only")
        images = binarize_once(load_split(dataset, "val").images[: args.images])
        results[name] = {"dataset": dataset, **latent_geometry(model, images, args.exemplars)}

    print(f"| generator | kernel σ | exemplar spread per dimension | nearest-exemplar distance | σ·√d / that "
          f"distance | posterior log σ², median | share at the +{LOG_VAR_MAX:g} clamp |")
    print("|---|---|---|---|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['kernel_sigma']:.3f} | {row['exemplar_spread_per_dimension']:.3f} | "
              f"{row['nearest_exemplar_distance']:.3f} | {row['twin_offset_to_spacing']:.2f} | "
              f"{row['posterior_log_var_median']:.2f} | {100 * row['posterior_log_var_at_clamp_share']:.1f} % |")
    report = {"benchmark": "latent_geometry", "torch_threads": torch.get_num_threads(), "exemplars": args.exemplars,
              "validation_images": args.images,
              "log_var_clamp": LOG_VAR_MAX, "torch": torch.__version__, "machine": platform.machine(),
              "generators": results}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
