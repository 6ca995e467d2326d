"""The generator's ablations of the paper (issue 17 §2), every variant on the same budget, side by side.

A study trains one generator per variant and seed, differing from the default recipe only in what the study
varies, with the same data, epochs, warm-up and seed; then it scores each on the same test images (one-sample
ELBO, and the IWAE bound with S importance samples) and plots train against validation ELBO per epoch.

| study | paper | variants |
|---|---|---|
| leave-one-out | Table 1, Figure 2 | with, without |
| exemplar-fraction | Table 2 | M/N = 1, 0.5, 0.2, 0.1 |
| search | Table 4 | the exact prior, kNN with k = 10 |
| prior | Figure 5's generators | Gaussian, VampPrior, exemplar |

Every run is a resumable fit_generator folder under ``--runs``: a killed study picks up where it stopped. Its
IWAE scores are saved there as they go, in a file named by the test images, S and the epoch of the weights
scored, so a rerun reads them back (redoing at most the last few images of a stopped scoring) and a run
trained further is scored afresh.
``--arch`` runs a study on another generator architecture (the prior study on the HVAE is Table 3's HVAE row);
its runs, results and plot are named STUDY-ARCH.

    python benchmarks/ablations.py --study leave-one-out --train 10000 --epochs 40 --warmup 10 --seeds 0 1 2 \
        --test-images 500 --samples 1000
    python benchmarks/ablations.py --study prior --arch hvae --train 10000 --epochs 30 --warmup 10 --seeds 0 1 2 \
        --test-images 500 --samples 1000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from exaug import ModelConfig, TrainConfig, fit_generator
from exaug.config import ARCHITECTURES
from exaug.atomic import atomic_write_text
from exaug.bundle import bundle_provenance
from exaug.figures import pyplot, save_png
from exaug.data import load_split
from exaug.device import apply_threads, resolve_device
from exaug.train import training_log
from exaug.evaluate import evaluate_generator

# Every study varies the paper's recipe: Algorithm 1's neighbour gradient on all k neighbours (exaug's default
# re-encodes the 3 nearest since the time-to-quality study, which came after these).
PAPER_RECIPE: dict[str, Any] = {"gradient_neighbours": None}
# variant name → (TrainConfig fields, ModelConfig fields) that differ from the paper's recipe
STUDIES: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {
    "leave-one-out": {"with": ({}, {}), "without": ({"leave_one_out": False}, {})},
    "exemplar-fraction": {f"M/N {fraction:g}": ({"exemplar_fraction": fraction}, {})
                          for fraction in (1.0, 0.5, 0.2, 0.1)},
    "search": {"exact": ({"exemplar_search": "exact"}, {}), "kNN, k = 10": ({"exemplar_search": "knn", "knn": 10}, {})},
    "prior": {"Gaussian": ({}, {"prior": "gaussian"}), "VampPrior": ({}, {"prior": "vamp"}),
              "exemplar": ({}, {"prior": "exemplar"})},
}


def folder_name(variant: str) -> str:
    return "".join(character if character.isalnum() else "-" for character in variant).strip("-").lower()


def curves(out: Path) -> dict[str, list[float]]:
    """Per epoch: the training objective as an ELBO (−train loss, β-weighted inside warm-up), the validation
    ELBO, and the seconds the epoch took, read from the run's log."""
    records = training_log(out)
    return {"epoch": [r["epoch"] for r in records], "train_elbo": [-r["train_loss"] for r in records],
            "val_elbo": [r["val_elbo"] for r in records], "seconds": [r["seconds"] for r in records]}


def plot(study: str, results: dict[str, Any], path: Path) -> None:
    """Train (dashed) and validation ELBO of each variant's first seed, against the epoch."""
    figure, axes = pyplot().subplots(figsize=(6, 4), dpi=120)
    for index, (variant, by_seed) in enumerate(results["variants"].items()):
        first = by_seed[min(by_seed)]["curves"]
        colour = f"C{index}"
        axes.plot(first["epoch"], first["train_elbo"], linestyle="--", color=colour, label=f"{variant}, train")
        axes.plot(first["epoch"], first["val_elbo"], color=colour, label=f"{variant}, validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel("ELBO (nats)")
    axes.set_title(f"{study}: train (dashed) and validation ELBO, seed {min(results['seeds'])}", fontsize=9)
    runs = [run["curves"] for by_seed in results["variants"].values() for run in by_seed.values()]
    later = [value for run in runs for name in ("train_elbo", "val_elbo")
             for value in run[name][len(run[name]) // 4:]]
    if later:  # the first epochs lie far below the rest: show where the variants differ
        axes.set_ylim(min(later) - 2, max(later) + 2)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    save_png(figure, path)


def scores_file(folder: Path, test_images: int, samples: int) -> Path:
    """Where a run's IWAE scores are kept: one file per test set, S and epoch of the weights scored."""
    epoch = bundle_provenance(folder)["epochs_trained"]
    return folder / f"test{test_images}-S{samples}-epoch{epoch}.iwae-checkpoint.pt"


def spread(values: list[float]) -> str:
    """" ± std" over seeds, or nothing for one seed."""
    return "" if len(values) < 2 else f" ± {np.std(values, ddof=1):.2f}"


def device_name(device: torch.device) -> str:
    """The device in words for the result file: "cpu", or the GPU's own name (e.g. "cuda: NVIDIA H100 ...")."""
    return "cpu" if device.type == "cpu" else f"{device.type}: {torch.cuda.get_device_name(device)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=sorted(STUDIES), required=True)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="vae", help="generator architecture")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="run only these of the study's variants (default: all)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--train", type=int, default=10_000, help="the first N training images")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10, help="KL warm-up epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000, help="IWAE importance samples")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu",
                        help="cpu (the default: every committed study ran there), cuda, cuda:N or auto; recorded in "
                             "the result file, so a GPU study's figures name their device")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablations"))
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/ablations/STUDY.json")
    parser.add_argument("--plot", type=Path, default=None, help="default: docs/figures/ablation-STUDY.png")
    args = parser.parse_args()
    apply_threads(args.threads)
    name = args.study if args.arch == "vae" else f"{args.study}-{args.arch}"
    out = args.out or Path("benchmarks/results/ablations") / f"{name}.json"
    figure = args.plot or Path("docs/figures") / f"ablation-{name}.png"
    variants = STUDIES[args.study]
    unknown = sorted(set(args.variants or ()) - set(variants))
    if unknown:
        parser.error(f"--variants {unknown} are not variants of the {args.study} study; it has {sorted(variants)}")
    if args.variants:
        variants = {variant: options for variant, options in variants.items() if variant in args.variants}

    device = resolve_device(args.device)
    train = Subset(load_split(args.dataset, "train"), range(args.train))
    val = load_split(args.dataset, "val")
    test = load_split(args.dataset, "test")
    results: dict[str, Any] = {"study": args.study, "architecture": args.arch, "dataset": args.dataset,
                               "train_images": args.train,
                               "epochs": args.epochs, "warmup_epochs": args.warmup, "seeds": args.seeds,
                               "test_images": args.test_images, "iwae_samples": args.samples,
                               "threads": args.threads, "device": device_name(device), "torch": torch.__version__,
                               "machine": platform.machine(),
                               "variants": {}}
    for variant, (train_options, model_options) in variants.items():
        results["variants"][variant] = {}
        for seed in args.seeds:
            folder = args.runs / name / folder_name(variant) / f"seed{seed}"
            config = TrainConfig(epochs=args.epochs, warmup_epochs=args.warmup, patience=args.epochs, seed=seed,
                                 device=str(device), **{**PAPER_RECIPE, **train_options})
            architecture = ModelConfig(architecture=args.arch, **model_options)
            model = fit_generator(train, val, config, folder, model_config=architecture,
                                  progress=False, log=lambda record: None)
            scores = evaluate_generator(model, test.images[: args.test_images], num_samples=args.samples,
                                        subset=None, ks=(), progress=False,
                                        iwae_checkpoint=scores_file(folder, args.test_images, args.samples))
            results["variants"][variant][seed] = {
                "test_elbo": scores["test_elbo"], "iwae_nll": scores["iwae_nll"], "curves": curves(folder)}
    print(f"| {args.study} | test ELBO | test NLL (IWAE, S = {args.samples}) | s per epoch, median |")
    print("|---|---|---|---|")
    for variant, by_seed in results["variants"].items():
        elbo = [run["test_elbo"] for run in by_seed.values()]
        nll = [run["iwae_nll"] for run in by_seed.values()]
        # The median over every epoch of every seed: an epoch that spans a pause of the study (SIGSTOP while
        # something else is timed) would pull a mean far up.
        seconds = statistics.median(second for run in by_seed.values() for second in run["curves"]["seconds"])
        print(f"| {variant} | {np.mean(elbo):.2f}{spread(elbo)} | {np.mean(nll):.2f}{spread(nll)} | {seconds:.1f} |")
    atomic_write_text(out, json.dumps(results, indent=1) + "\n")
    plot(args.study, results, figure)
    print(f"wrote {out} and {figure}")


if __name__ == "__main__":
    main()
