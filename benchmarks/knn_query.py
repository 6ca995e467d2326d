"""Where the kNN prior searches, side by side (issue 17 (a)): around the batch's current posterior means (the
authors' code, exaug's default now) or around each exemplar's cached mean (exaug's earlier behaviour).

For each seed, two generators train with the same recipe, data and seed, differing only in ``knn_query``;
the validation ELBO is compared at equal epochs and paired by seed. Each run is a resumable fit_generator
folder under ``--runs``, so a killed benchmark picks up where it stopped.

    python benchmarks/knn_query.py --train 10000 --epochs 40 --warmup 10 --seeds 0 1 2 \
        --out benchmarks/results/knn_query.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from exaug import TrainConfig, fit_generator
from exaug.atomic import atomic_write_text
from exaug.data import load_split
from exaug.device import apply_threads
from exaug.train import training_log

QUERIES = ("cache", "posterior")


def validation_elbos(out: Path) -> dict[int, float]:
    """Epoch → validation ELBO, read from a run's log (the whole history, resumed runs included)."""
    records = training_log(out)
    return {record["epoch"]: record["val_elbo"] for record in records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--train", type=int, default=10_000, help="the first N training images")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10, help="KL warm-up epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/knn-query"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/knn_query.json"))
    args = parser.parse_args()
    apply_threads(args.threads)

    train = Subset(load_split(args.dataset, "train"), range(args.train))
    val = load_split(args.dataset, "val")
    curves: dict[str, dict[int, dict[int, float]]] = {query: {} for query in QUERIES}
    for seed in args.seeds:
        for query in QUERIES:
            out = args.runs / f"{query}-seed{seed}"
            config = TrainConfig(epochs=args.epochs, warmup_epochs=args.warmup, patience=args.epochs, seed=seed,
                                 knn_query=query, gradient_neighbours=None, device="cpu")  # all k, as it ran
            fit_generator(train, val, config, out, progress=False, log=lambda record: None)
            curves[query][seed] = validation_elbos(out)

    checkpoints = sorted({epoch for epoch in range(10, args.epochs + 1, 10)} | {args.epochs})
    rows = []
    for epoch in checkpoints:
        differences = [curves["posterior"][seed][epoch] - curves["cache"][seed][epoch] for seed in args.seeds]
        rows.append({"epoch": epoch,
                     "cache": float(np.mean([curves["cache"][seed][epoch] for seed in args.seeds])),
                     "posterior": float(np.mean([curves["posterior"][seed][epoch] for seed in args.seeds])),
                     "difference_mean": float(np.mean(differences)),
                     "difference_std": float(np.std(differences, ddof=1)) if len(differences) > 1 else None})
    print("| epoch | val ELBO, cache query | val ELBO, posterior query | posterior − cache (paired) |")
    print("|---|---|---|---|")
    for row in rows:
        spread = "" if row["difference_std"] is None else f" ± {row['difference_std']:.2f}"
        print(f"| {row['epoch']} | {row['cache']:.2f} | {row['posterior']:.2f} | {row['difference_mean']:+.2f}{spread} |")
    atomic_write_text(args.out, json.dumps({
        "dataset": args.dataset, "train_images": args.train, "epochs": args.epochs, "warmup_epochs": args.warmup,
        "seeds": args.seeds, "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
        "rows": rows, "curves": {query: {str(seed): curve for seed, curve in by_seed.items()}
                                 for query, by_seed in curves.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
