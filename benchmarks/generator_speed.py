"""Seconds per training epoch of the Gaussian, exact-exemplar and kNN-exemplar generators, side by side, for each
generator architecture (the MLP VAE, the HVAE, the ConvHVAE).

Each variant runs the trainer's own ``train_step`` on real MNIST (50K training images,
batch 100) for a number of timed steps after a warm-up; an epoch-equivalent is the mean
step time × steps per epoch, plus the end-of-epoch re-encoding of the exemplar means that
the exemplar prior needs. All variants run in one process, one after the other, so their
ratios are comparable even on a noisy machine. With several ``--architectures`` each variant's epoch time is
also given relative to the MLP VAE's.

    python benchmarks/generator_speed.py --steps 60 --out benchmarks/results/generator_speed.json
    python benchmarks/generator_speed.py --architectures vae hvae convhvae --variants gaussian knn_neighbour_gradient \
        --steps 20 --threads 1 --out benchmarks/results/generator_speed_architectures.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from exaug.atomic import atomic_write_text
from exaug.config import ARCHITECTURES, ModelConfig, TrainConfig
from exaug.device import apply_threads
from exaug.data import load_split
from exaug.train import GeneratorTrainer

VARIANTS = {
    "gaussian": dict(prior="gaussian"),
    "knn": dict(prior="exemplar", exemplar_search="knn", neighbour_gradient=False),
    # Algorithm 1: gradient through all k = 10 neighbours
    "knn_neighbour_gradient": dict(prior="exemplar", exemplar_search="knn", neighbour_gradient=True,
                                   gradient_neighbours=None),
    # through each row's g nearest of the k = 10 only, the rest from the cache; g = 3 is the default (issue 17 §3)
    "knn_neighbour_gradient_g3": dict(prior="exemplar", exemplar_search="knn", neighbour_gradient=True,
                                      gradient_neighbours=3),
    "knn_neighbour_gradient_g1": dict(prior="exemplar", exemplar_search="knn", neighbour_gradient=True,
                                      gradient_neighbours=1),
    # the neighbours re-encoded from cached encoder-trunk features: gradient into the μ head only
    "knn_neighbour_gradient_cached_trunk": dict(prior="exemplar", exemplar_search="knn", neighbour_gradient=True,
                                                cached_trunk=True),
    "exact": dict(prior="exemplar", exemplar_search="exact", neighbour_gradient=False),
    "exact_neighbour_gradient": dict(prior="exemplar", exemplar_search="exact", neighbour_gradient=True),
}


def time_variant(images: torch.Tensor, architecture: str, prior: str, steps: int, warmup: int,
                 **train_options) -> dict[str, float]:
    config = TrainConfig(**train_options)
    with tempfile.TemporaryDirectory() as out:
        trainer = GeneratorTrainer(images, None, None, ModelConfig(architecture=architecture, prior=prior), config,
                                   Path(out))
        prior_term = trainer.prior_term()
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))
        batches = order.split(config.batch_size)
        for batch in batches[:warmup]:
            trainer.train_step(batch, 1.0, prior_term)
        started = time.perf_counter()
        for batch in batches[warmup:warmup + steps]:
            trainer.train_step(batch, 1.0, prior_term)
        step_seconds = (time.perf_counter() - started) / steps
        refresh_seconds = 0.0
        if trainer.cache is not None:
            started = time.perf_counter()
            trainer.cache.refresh(trainer.encode_exemplars())
            refresh_seconds = time.perf_counter() - started
    steps_per_epoch = len(batches)
    return {
        "step_ms": 1000 * step_seconds,
        "refresh_seconds": refresh_seconds,
        "epoch_seconds": step_seconds * steps_per_epoch + refresh_seconds,
        "timed_steps": steps,
    }


def add_ratios_to_gaussian(results: dict[str, dict[str, float]]) -> None:
    """Give every result its epoch time relative to the Gaussian prior's of the same architecture
    (``gaussian`` for the MLP VAE, ``ARCH/gaussian`` for the others)."""
    for name, figures in results.items():
        architecture, _, _ = name.rpartition("/")
        base = results["gaussian" if not architecture else f"{architecture}/gaussian"]["epoch_seconds"]
        figures["ratio_to_gaussian"] = figures["epoch_seconds"] / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per variant")
    parser.add_argument("--exact-gradient-steps", type=int, default=3,
                        help="timed steps for the exact prior with gradient (each re-encodes 25K exemplars)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--architectures", nargs="+", default=["vae"], choices=ARCHITECTURES,
                        help="each variant is timed for each architecture; results of the others are keyed ARCH/VARIANT")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generator_speed.json"))
    args = parser.parse_args()
    apply_threads(args.threads)

    images = load_split("mnist", "train").images.float() / 255.0
    results = {}
    for architecture in args.architectures:
        for variant in args.variants:
            steps = args.exact_gradient_steps if variant == "exact_neighbour_gradient" else args.steps
            options = dict(VARIANTS[variant])
            name = variant if architecture == "vae" else f"{architecture}/{variant}"
            results[name] = time_variant(images, architecture, options.pop("prior"), steps, min(args.warmup, steps),
                                         **options)
            print(f"{name:36s} {results[name]['step_ms']:9.2f} ms/step  {results[name]['epoch_seconds']:9.1f} s/epoch",
                  flush=True)
    if len(args.architectures) > 1 and "vae" in args.architectures:
        print("\nepoch time relative to the MLP VAE with the same prior and search:")
        for name, figures in results.items():
            variant = name.split("/")[-1]
            figures["ratio_to_vae"] = figures["epoch_seconds"] / results[variant]["epoch_seconds"]
            print(f"  {name:36s} {figures['ratio_to_vae']:.2f}x")
    if "gaussian" in args.variants:
        add_ratios_to_gaussian(results)
        print("\nepoch time relative to the Gaussian prior of the same architecture:")
        for name, figures in results.items():
            print(f"  {name:36s} {figures['ratio_to_gaussian']:.2f}x")
    report = {
        "benchmark": "generator_speed",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "train_images": int(images.shape[0]),
        "architectures": args.architectures,
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
