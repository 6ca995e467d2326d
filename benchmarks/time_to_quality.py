"""Time to quality (issue 17 §3): validation ELBO against training time for the generator's training variants.

A variant changes the per-epoch cost, the progress per epoch, or both. Every variant gets the same training
time: the time the paper's recipe takes for ``--epochs`` epochs. Cost and progress are measured apart, so
that neither depends on what else the machine is doing:

- ``time`` runs a few real epochs of each variant (``fit_generator``, validation and exemplar refresh
  included) one after another in one process, at each thread count asked for. Run it with the machine
  otherwise idle: its ratios are side by side, its seconds are this machine's.
- ``train`` gives each variant as many epochs as fit in the paper recipe's time at ``--threads`` (by those
  timings), for every seed, and records validation ELBO per epoch. Epochs are deterministic for a seed, so
  these runs may share the cores with anything; they resume from their checkpoints (and extend in place
  when a budget grows), and two processes may split the variants between them.
- ``report`` charges each epoch of a curve the variant's timed seconds. It reports every variant's
  validation ELBO at the end of the shared time, its seconds per epoch, and the minutes it needs to reach
  the quality the paper's recipe reaches at the end, and plots the frontier.
- ``reach`` does the same for any finished or running generator folders (``exaug fit-generator --out``),
  one per variant, against a fixed target: the epochs and minutes each needs to reach it, where each stands
  at a wall-clock budget and at equal time, and a plot.

Everything is chosen on validation: the test split is never read.

    python benchmarks/time_to_quality.py time --train 10000 --threads 1 2
    python benchmarks/time_to_quality.py train --train 10000 --epochs 30 --warmup 10 --threads 2 --seeds 0 1 2
    python benchmarks/time_to_quality.py report --train 10000 --epochs 30 --threads 2
    python benchmarks/time_to_quality.py reach --train 50000 --timings T.json --run "paper recipe=runs/a" \
        --run "gradient on 3 nearest=runs/b" --target -87.6 --budget-minutes 90
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from exaug import TrainConfig, fit_generator
from exaug.atomic import atomic_write_text
from exaug.bundle import trained_dataset
from exaug.figures import pyplot, save_png
from exaug.data import load_split
from exaug.device import apply_threads
from exaug.train import training_log

from ablations import folder_name, spread  # the ablations' run folders and seed spread, the same here

BASE_LEARNING_RATE = TrainConfig.learning_rate
BASE_BATCH = TrainConfig.batch_size

# variant name → its TrainConfig fields beyond the shared budget. The first is the paper's recipe: Algorithm 1's
# neighbour gradient on all k neighbours. Every field a variant relies on is spelled out, so a later change of
# exaug's defaults (gradient_neighbours was 3 for a while after this study) leaves the variants as they ran. A larger
# batch scales Adam's learning rate by the square root of the batch ratio.
VARIANTS: dict[str, dict[str, Any]] = {
    "paper recipe": {"gradient_neighbours": None},
    "gradient on 3 nearest": {"gradient_neighbours": 3},
    "gradient on the nearest": {"gradient_neighbours": 1},
    "gradient into the μ head (cached trunk)": {"cached_trunk": True},
    "cached centres only": {"neighbour_gradient": False},
    "batch 250": {"gradient_neighbours": None, "batch_size": 250,
                  "learning_rate": BASE_LEARNING_RATE * math.sqrt(250 / BASE_BATCH)},
    "batch 500": {"gradient_neighbours": None, "batch_size": 500,
                  "learning_rate": BASE_LEARNING_RATE * math.sqrt(500 / BASE_BATCH)},
}
REFERENCE = "paper recipe"


def variant_config(variant: str, epochs: int, warmup: int, seed: int, patience: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, warmup_epochs=warmup, patience=patience, seed=seed, device="cpu",
                       **VARIANTS[variant])


def equal_time_epochs(variant: str, reference_epochs: int, seconds: dict[str, float]) -> int:
    """The whole epochs of ``variant`` that fit in the time the reference takes for ``reference_epochs``."""
    return max(1, math.floor(reference_epochs * seconds[REFERENCE] / seconds[variant] + 1e-9))


def timed_seconds(timings_path: Path, dataset: str, train_images: int, variants: list[str],
                  threads: int) -> dict[str, float]:
    """Seconds per epoch at ``threads`` of the reference and each variant, from a ``time`` stage's JSON."""
    timing = json.loads(timings_path.read_text())
    if (timing["dataset"], timing["train_images"]) != (dataset, train_images):
        raise SystemExit(f"{timings_path} timed {timing['train_images']} {timing['dataset']} images, not "
                         f"{train_images} {dataset}: time the same scale the curves are trained at")
    seconds = {}
    for variant in dict.fromkeys([REFERENCE, *variants]):
        if str(threads) not in timing["seconds_per_epoch"].get(variant, {}):
            raise SystemExit(f"{timings_path} has no timing of {variant!r} at {threads} thread(s); "
                             f"run: time_to_quality.py time --threads {threads}")
        seconds[variant] = timing["seconds_per_epoch"][variant][str(threads)]
    return seconds


def datasets(dataset: str, train_images: int) -> tuple[Subset, Any]:
    return Subset(load_split(dataset, "train"), range(train_images)), load_split(dataset, "val")


def run_folder(runs: Path, dataset: str, train_images: int, variant: str, seed: int) -> Path:
    return runs / f"{dataset}-{train_images}" / folder_name(variant) / f"seed{seed}"


def train(args: argparse.Namespace) -> None:
    """Every asked-for variant and seed for the reference's time; a finished run only loads. Patience is the
    reference's epoch budget: a run stops early only if it stalls for as long as the whole reference run."""
    seconds = timed_seconds(args.timings, args.dataset, args.train, args.variants, args.threads)
    apply_threads(1)
    train_set, val = datasets(args.dataset, args.train)
    for variant in args.variants:
        epochs = equal_time_epochs(variant, args.epochs, seconds)
        for seed in args.seeds:
            folder = run_folder(args.runs, args.dataset, args.train, variant, seed)
            fit_generator(train_set, val, variant_config(variant, epochs, args.warmup, seed, patience=args.epochs),
                          folder, progress=False, log=lambda record: None)
            print(f"{variant}, seed {seed}, {epochs} epochs: validation ELBO "
                  f"{training_log(folder)[-1]['val_elbo']:.2f}", flush=True)


def seconds_per_epoch(train_set: Subset, val: Any, variant: str, threads: int, epochs: int, warmup: int) -> float:
    """The median seconds of a real epoch after the first (which also builds what later epochs reuse)."""
    apply_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        fit_generator(train_set, val, variant_config(variant, epochs, warmup, seed=0, patience=epochs), out,
                      progress=False, log=lambda record: None)
        return statistics.median(record["seconds"] for record in training_log(out)[1:])


def time_variants(args: argparse.Namespace) -> None:
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2: the first epoch is not timed")
    train_set, val = datasets(args.dataset, args.train)
    timings: dict[str, dict[str, float]] = {}
    for variant in args.variants:
        timings[variant] = {}
        for threads in args.threads:
            timings[variant][str(threads)] = seconds_per_epoch(train_set, val, variant, threads, args.epochs,
                                                               args.warmup)
            print(f"{variant:26s} {threads} thread(s): {timings[variant][str(threads)]:7.2f} s/epoch", flush=True)
    report = {"benchmark": "time_to_quality.time", "dataset": args.dataset, "train_images": args.train,
              "timed_epochs": args.epochs - 1, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "seconds_per_epoch": timings}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


def epoch_reaching(val_elbo: list[float], threshold: float) -> int | None:
    """The first epoch (from 1) whose validation ELBO reaches ``threshold`` (None: never)."""
    return next((epoch for epoch, elbo in enumerate(val_elbo, start=1) if elbo >= threshold), None)


def minutes_to_reach(val_elbo: list[float], threshold: float, epoch_seconds: float) -> float | None:
    """Training minutes until the first epoch whose validation ELBO reaches ``threshold`` (None: never)."""
    epoch = epoch_reaching(val_elbo, threshold)
    return None if epoch is None else epoch * epoch_seconds / 60


def summarise(curves: dict[str, dict[int, list[float]]], seconds: dict[str, float], threads: int) -> dict[str, Any]:
    """Per variant: validation ELBO at the end of the shared time, seed by seed, and the minutes (at
    ``threads``) each seed needs to reach the reference's mean final validation ELBO."""
    threshold = float(np.mean([curve[-1] for curve in curves[REFERENCE].values()]))
    rows = {}
    for variant, by_seed in curves.items():
        rows[variant] = {
            "epochs": len(next(iter(by_seed.values()))),
            "final_val_elbo": [curve[-1] for curve in by_seed.values()],
            "seconds_per_epoch": seconds[variant],
            "minutes_to_threshold": [minutes_to_reach(curve, threshold, seconds[variant]) for curve in by_seed.values()],
        }
    return {"threshold_val_elbo": threshold, "threads": threads, "rows": rows}


def finish_minutes_plot(figure: Any, axes: Any, threads: int, ylabel: str, title: str, path: Path) -> None:
    """Label a plot of validation ELBO against timed training minutes and write it to ``path``."""
    axes.set_xlabel(f"training minutes, {threads} thread(s) (timed seconds per epoch × epochs)")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    save_png(figure, path)


def plot(curves: dict[str, dict[int, list[float]]], summary: dict[str, Any], path: Path, title: str) -> None:
    """Mean validation ELBO over seeds against training minutes at the report's thread count."""
    threads = summary["threads"]
    figure, axes = pyplot().subplots(figsize=(6, 4), dpi=120)
    later = []
    for index, (variant, by_seed) in enumerate(curves.items()):
        mean = np.mean(list(by_seed.values()), axis=0)
        minutes = np.arange(1, len(mean) + 1) * summary["rows"][variant]["seconds_per_epoch"] / 60
        axes.plot(minutes, mean, color=f"C{index}", label=variant, marker="." if len(mean) < 60 else None)
        later.extend(mean[len(mean) // 3:])
    axes.axhline(summary["threshold_val_elbo"], color="grey", linestyle=":", linewidth=1,
                 label=f"{REFERENCE}, final ({summary['threshold_val_elbo']:.2f})")
    axes.set_ylim(min(later) - 1, max(later) + 1)  # the warm-up epochs lie far below: show where they differ
    finish_minutes_plot(figure, axes, threads, "validation ELBO (nats), mean over seeds", title, path)


def report(args: argparse.Namespace) -> None:
    if REFERENCE not in args.variants:
        raise SystemExit(f"the report measures against {REFERENCE!r}: include it in --variants")
    seconds = timed_seconds(args.timings, args.dataset, args.train, args.variants, args.threads)
    curves: dict[str, dict[int, list[float]]] = {}
    for variant in args.variants:
        epochs = equal_time_epochs(variant, args.epochs, seconds)
        curves[variant] = {}
        for seed in args.seeds:
            folder = run_folder(args.runs, args.dataset, args.train, variant, seed)
            log = training_log(folder) if folder.exists() else []
            if len(log) < epochs:
                raise SystemExit(f"{folder} has {len(log)} of its {epochs} epochs; run the train stage first")
            curves[variant][seed] = [record["val_elbo"] for record in log[:epochs]]
    summary = summarise(curves, seconds, args.threads)
    print(f"| variant | epochs | validation ELBO after {args.epochs * seconds[REFERENCE] / 60:.1f} min | "
          f"s/epoch | minutes to {summary['threshold_val_elbo']:.2f}, per seed |  ({args.threads} thread(s))")
    print("|---|---|---|---|---|")
    for variant, row in summary["rows"].items():
        finals = row["final_val_elbo"]
        reached = ", ".join("not reached" if value is None else f"{value:.1f}" for value in row["minutes_to_threshold"])
        print(f"| {variant} | {row['epochs']} | {np.mean(finals):.2f}{spread(finals)} | {row['seconds_per_epoch']:.2f} | "
              f"{reached} |")
    result = {"benchmark": "time_to_quality", "dataset": args.dataset, "train_images": args.train,
              "reference_epochs": args.epochs, "budget_minutes": args.epochs * seconds[REFERENCE] / 60,
              "seeds": args.seeds, "timings": str(args.timings), **summary,
              "curves": {variant: {str(seed): curve for seed, curve in by_seed.items()}
                         for variant, by_seed in curves.items()}}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    plot(curves, summary, args.plot,
         f"{args.dataset}, {args.train} images; each variant gets the {REFERENCE}'s {args.epochs} epochs' time; "
         f"seeds {', '.join(map(str, args.seeds))}")
    print(f"wrote {args.out} and {args.plot}")


def reach_folders(pairs: list[str], dataset: str, train_images: int) -> dict[str, Path]:
    """``VARIANT=FOLDER`` pairs → folders, each checked to be a generator of that variant on that data."""
    folders = {}
    for pair in pairs:
        variant, _, folder = pair.partition("=")
        if variant not in VARIANTS or not folder:
            raise SystemExit(f"--run {pair!r}: expected VARIANT=FOLDER with VARIANT one of {', '.join(VARIANTS)}")
        config_path = Path(folder) / "config.json"
        if not config_path.is_file():
            raise SystemExit(f"--run {pair!r}: {config_path} does not exist; start the run with exaug fit-generator")
        config = json.loads(config_path.read_text())
        training = config["training"]
        recorded_dataset = trained_dataset(config) or dataset  # the CLI records it, the API may not
        if (recorded_dataset, config.get("exemplar_count")) != (dataset, train_images):
            raise SystemExit(f"--run {pair!r}: {folder} trains on {config.get('exemplar_count')} {recorded_dataset} "
                             f"images, not {train_images} {dataset}: pass the matching --dataset and --train")
        departures = {field: training.get(field) for field, value in VARIANTS[variant].items()
                      if training.get(field) != value}
        if departures:
            raise SystemExit(f"--run {pair!r}: {folder} is not that variant ({departures} against "
                             f"{VARIANTS[variant]})")
        folders[variant] = Path(folder)
    return folders


def reach_summary(curves: dict[str, list[float]], seconds: dict[str, float], target: float,
                  budget_minutes: float) -> dict[str, Any]:
    """Per run: when it reaches ``target`` and where it stands after ``budget_minutes``; and every run's
    validation ELBO at the longest time all of them have trained (equal time)."""
    equal_minutes = min(len(curve) * seconds[variant] / 60 for variant, curve in curves.items())
    rows = {}
    for variant, curve in curves.items():
        epoch_seconds = seconds[variant]
        budget_epochs = math.floor(budget_minutes * 60 / epoch_seconds + 1e-9)
        equal_epochs = math.floor(equal_minutes * 60 / epoch_seconds + 1e-9)
        rows[variant] = {
            "epochs": len(curve), "seconds_per_epoch": epoch_seconds,
            "best_val_elbo": max(curve), "best_epoch": curve.index(max(curve)) + 1,
            "epochs_to_target": epoch_reaching(curve, target),
            "minutes_to_target": minutes_to_reach(curve, target, epoch_seconds),
            "epochs_in_budget": budget_epochs,
            "val_elbo_at_budget": curve[budget_epochs - 1] if 0 < budget_epochs <= len(curve) else None,
            "equal_time_epochs": equal_epochs,
            "val_elbo_at_equal_time": curve[equal_epochs - 1] if equal_epochs > 0 else None,
        }
    return {"target_val_elbo": target, "budget_minutes": budget_minutes, "equal_minutes": equal_minutes, "rows": rows}


def plot_reach(curves: dict[str, list[float]], summary: dict[str, Any], path: Path, title: str) -> None:
    """Validation ELBO against training minutes for each run, with the target and the budget marked."""
    figure, axes = pyplot().subplots(figsize=(6, 4), dpi=120)
    later = [summary["target_val_elbo"]]
    for index, (variant, curve) in enumerate(curves.items()):
        minutes = np.arange(1, len(curve) + 1) * summary["rows"][variant]["seconds_per_epoch"] / 60
        axes.plot(minutes, curve, color=f"C{index}", label=variant)
        later.extend(curve[len(curve) // 4:])
    axes.axhline(summary["target_val_elbo"], color="grey", linestyle=":", linewidth=1,
                 label=f"target ({summary['target_val_elbo']:.2f})")
    axes.axvline(summary["budget_minutes"], color="grey", linestyle="--", linewidth=1,
                 label=f"budget ({summary['budget_minutes']:.0f} min)")
    axes.set_ylim(min(later) - 1, max(later) + 0.5)  # the warm-up lies far below: show where the runs differ
    finish_minutes_plot(figure, axes, summary["threads"], "validation ELBO (nats)", title, path)


def reach(args: argparse.Namespace) -> None:
    folders = reach_folders(args.run, args.dataset, args.train)
    seconds = timed_seconds(args.timings, args.dataset, args.train, list(folders), args.threads)
    curves = {}
    for variant, folder in folders.items():
        curves[variant] = [record["val_elbo"] for record in training_log(folder)]
        if not curves[variant]:
            raise SystemExit(f"{folder} has no finished epoch yet; let exaug fit-generator run first")
    summary = {"threads": args.threads, **reach_summary(curves, seconds, args.target, args.budget_minutes)}
    print(f"| variant | epochs run | best validation ELBO (epoch) | s/epoch | epochs, minutes to {args.target:.2f} | "
          f"validation ELBO after {args.budget_minutes:.0f} min | after {summary['equal_minutes']:.1f} min (equal "
          f"time) |  ({args.threads} thread(s))")
    print("|---|---|---|---|---|---|---|")
    for variant, row in summary["rows"].items():
        reached = ("not reached" if row["minutes_to_target"] is None
                   else f"{row['epochs_to_target']}, {row['minutes_to_target']:.1f}")
        at_budget = ("not trained that long" if row["val_elbo_at_budget"] is None
                     else f"{row['val_elbo_at_budget']:.2f} (epoch {row['epochs_in_budget']})")
        at_equal_time = ("not one whole epoch" if row["val_elbo_at_equal_time"] is None
                         else f"{row['val_elbo_at_equal_time']:.2f} (epoch {row['equal_time_epochs']})")
        print(f"| {variant} | {row['epochs']} | {row['best_val_elbo']:.2f} ({row['best_epoch']}) | "
              f"{row['seconds_per_epoch']:.2f} | {reached} | {at_budget} | {at_equal_time} |")
    result = {"benchmark": "time_to_quality.reach", "dataset": args.dataset, "train_images": args.train,
              "timings": str(args.timings), "folders": {variant: str(folder) for variant, folder in folders.items()},
              **summary, "curves": curves}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    plot_reach(curves, summary, args.plot,
               f"{args.dataset}, {args.train} images; each epoch charged its variant's timed seconds")
    print(f"wrote {args.out} and {args.plot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stages = parser.add_subparsers(dest="stage", required=True)
    results = Path("benchmarks/results/time_to_quality")
    for name, help_text in (("train", "train every variant and seed (resumable)"),
                            ("time", "time each variant's epoch, side by side (machine otherwise idle)"),
                            ("report", "combine curves and timings into the table, JSON and plot"),
                            ("reach", "minutes to a target for generator folders, one per variant")):
        stage = stages.add_parser(name, help=help_text)
        stage.add_argument("--dataset", default="mnist")
        stage.add_argument("--train", type=int, default=10_000, help="the first N training images")
        if name == "reach":
            continue
        stage.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
        if name != "report":
            stage.add_argument("--warmup", type=int, default=10, help="KL warm-up epochs")
        if name != "time":
            stage.add_argument("--runs", type=Path, default=Path("runs/time-to-quality"))
    for name in ("train", "report"):
        stages.choices[name].add_argument("--epochs", type=int, default=30,
                                          help="the paper recipe's epochs: their time is every variant's budget")
        stages.choices[name].add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        stages.choices[name].add_argument("--threads", type=int, default=2,
                                          help="the thread count whose timings set the budgets and the time axis")
        stages.choices[name].add_argument("--timings", type=Path, default=results / "timings.json")
    stages.choices["time"].add_argument("--epochs", type=int, default=3, help="real epochs per timing; the first is not counted")
    stages.choices["time"].add_argument("--threads", type=int, nargs="+", default=[1, 2])
    stages.choices["time"].add_argument("--out", type=Path, default=results / "timings.json")
    stages.choices["report"].add_argument("--out", type=Path, default=results / "frontier.json")
    stages.choices["report"].add_argument("--plot", type=Path, default=Path("docs/figures/time-to-quality.png"))
    reach_stage = stages.choices["reach"]
    reach_stage.add_argument("--run", action="append", required=True, metavar="VARIANT=FOLDER",
                             help="a generator folder and the variant it trains; repeat for each run")
    reach_stage.add_argument("--timings", type=Path, required=True, help="a time stage's JSON at this scale")
    reach_stage.add_argument("--threads", type=int, default=2, help="the thread count whose timings set the time axis")
    reach_stage.add_argument("--target", type=float, required=True, help="the validation ELBO to reach")
    reach_stage.add_argument("--budget-minutes", type=float, default=90.0)
    reach_stage.add_argument("--out", type=Path, default=results / "reach.json")
    reach_stage.add_argument("--plot", type=Path, default=Path("docs/figures/time-to-quality-reach.png"))
    args = parser.parse_args()
    {"train": train, "time": time_variants, "report": report, "reach": reach}[args.stage](args)


if __name__ == "__main__":
    main()
