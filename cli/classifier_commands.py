"""``exaug fit-classifier`` and ``exaug lambda-sweep``: the §5.4 experiments from the command line."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

import click

from exaug import data
from exaug.atomic import atomic_path, atomic_write_text
from exaug.classifiers import ClassifierConfig, fit_classifier
from exaug.classifiers.config import TRAINING_DTYPES
from exaug.device import apply_threads

from .options import dataset_choice, open_dataset, root_option, threads_option, user_errors

PAPER_LAMBDA = {"mnist": 0.4, "fashion-mnist": 0.8}  # λ of §5.4, chosen on validation in the paper


def expand_multi_value_options(args: Sequence[str], names: Sequence[str]) -> list[str]:
    """Rewrite ``--hidden 1024 1024`` as ``--hidden 1024 --hidden 1024`` so click reads every value."""
    expanded: list[str] = []
    pending: str | None = None
    for arg in args:
        if arg in names:
            pending = arg
            continue
        if pending is not None and not arg.startswith("-"):
            expanded += [pending, arg]
            continue
        pending = None
        expanded.append(arg)
    return expanded


class MultiValueCommand(click.Command):
    """A command whose ``multiple`` options also take several values after one flag."""

    multi_value_options = ("--hidden", "--lams")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_value_options(args, self.multi_value_options))


def recipe_options(command: Any) -> Any:
    """The flags shared by both commands, mapped onto ClassifierConfig fields."""
    options = [
        click.option("--dataset", required=True, callback=lambda _c, _p, v: dataset_choice(v),
                     help="mnist, fashion-mnist, or an ImageFolder directory."),
        click.option("--generator", default="none", show_default=True,
                     help="Bundled generator name (mnist, fashion-mnist), a bundle directory, or none."),
        click.option("--model", default="mlp", show_default=True, help="mlp, or any timm model name."),
        click.option("--hidden", type=click.IntRange(min=1), multiple=True, default=(1024, 1024), show_default=True,
                     help="MLP hidden widths, e.g. --hidden 1024 1024 or --hidden 8192 8192."),
        click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True),
        click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=0.1,
                     show_default=True, help="η, decayed linearly to η/100."),
        click.option("--noise-scale", type=click.FloatRange(min=0), default=1.0, show_default=True,
                     help="Factor on the kernel σ of the synthetic twins; 1.0 is the paper's sampler. Choose on validation."),
        click.option("--dtype", type=click.Choice(TRAINING_DTYPES), default="float32", show_default=True,
                     help="Precision of the classifier's weights and inputs; the authors' code trains in float64."),
        click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True),
        click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
                     help="DataLoader worker processes."),
        click.option("--device", default="auto", show_default=True),
        click.option("--progress/--no-progress", default=True, show_default=True),
        root_option,
        threads_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("fit-classifier", cls=MultiValueCommand)
@recipe_options
@click.option("--lam", type=click.FloatRange(0, 1), default=None,
              help="Weight on real data in eq. 16 (default: 0.4 for mnist, 0.8 for fashion-mnist).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Independent runs.")
@click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Run seeds first-seed … first-seed+seeds−1, e.g. to split seeds across processes (their "
                   "summaries are named summary-seedsA-B). Once those calls have finished, a call covering every "
                   "seed from 0 resumes the finished runs and writes summary.json and summary.md (never replacing a "
                   "summary of more seeds).")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="test: train on train+val (60K), report test error; val: train on train (50K), report validation "
                   "error. A folder has no test split: it always trains on 90% and reports the error on the 10% held "
                   "out, recorded as val.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Results directory: seedN/ per run (resumable), summary.json and summary.md. Each seedN/ keeps an "
                   "empty .exaug-run.lock: the guard that refuses a second run into the folder while one trains "
                   "(deleting it between runs is harmless).")
def fit_classifier_command(dataset: str, generator: str, lam: float | None, seeds: int, first_seed: int, split: str,
                           out: Path, progress: bool, root: Path | None, threads: int | None, **recipe: Any) -> None:
    """Train classifiers with the §5.4 recipe, with Exemplar VAE augmentation unless --generator none.

    Prints a JSON line per epoch; writes per-seed results and a Markdown table (mean ± std over several seeds).
    """
    apply_threads(threads)
    _check_recipe(generator, recipe)
    lam = PAPER_LAMBDA.get(dataset, 0.4) if lam is None else lam
    scored_on = split if dataset in data.DATASETS else "val"  # runs keep --split in their identity, as before
    train, test = _splits(dataset, split, root, generator)
    seed_range = range(first_seed, first_seed + seeds)
    results = []
    for seed in seed_range:
        with user_errors():
            config = ClassifierConfig(lam=lam, seed=seed, extra={"dataset": dataset, "split": split}, **recipe)
            result = fit_classifier(train, test, config, generator=_generator(generator), out=out / f"seed{seed}",
                                    progress=progress)
        results.append(result["test_error"])
        click.echo(json.dumps({"seed": seed, "error": result["test_error"]}))
    summary = {
        "dataset": dataset, "generator": generator, "split": scored_on, "lam": lam, "hidden": list(recipe["hidden"]),
        "model": recipe["model"], "epochs": recipe["epochs"], "noise_scale": recipe["noise_scale"],
        "learning_rate": recipe["learning_rate"], "dtype": recipe["dtype"], "seeds": list(seed_range), "errors": results,
        "mean": statistics.fmean(results), "std": statistics.stdev(results) if len(results) > 1 else None,
    }
    name = _summary_name(out, seed_range)
    atomic_write_text(out / f"{name}.json", json.dumps(summary, indent=2) + "\n")
    scale = "" if recipe["noise_scale"] == 1.0 else f", noise scale {recipe['noise_scale']:g}"
    eta = f"η={recipe['learning_rate']:g}" + ("" if recipe["dtype"] == "float32" else f", {recipe['dtype']}")
    what = f"LS alone ({eta})" if summary["generator"] == "none" else f"LS + Exemplar VAE aug (λ={lam}, {eta}{scale})"
    spread = "" if summary["std"] is None else f" ± {summary['std']:.2f}"
    heading = f"seed {seed_range[0]}" if seeds == 1 else f"mean ± std, seeds {seed_range[0]}–{seed_range[-1]}"
    table = (f"| dataset | model | method | {scored_on} error % ({heading}) |\n|---|---|---|---|\n"
             f"| {dataset} | {_model_name(recipe)} | {what} | {summary['mean']:.2f}{spread} |\n")
    atomic_write_text(out / f"{name}.md", table)
    click.echo(table)


@click.command("lambda-sweep", cls=MultiValueCommand)
@recipe_options
@click.option("--lams", type=click.FloatRange(0, 1), multiple=True,
              default=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), show_default=True, help="λ values to try.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for lam*/ runs (resumable), sweep.json and sweep.png.")
def lambda_sweep_command(dataset: str, generator: str, lams: tuple[float, ...], seed: int, out: Path,
                         progress: bool, root: Path | None, threads: int | None, **recipe: Any) -> None:
    """Validation error against λ (Figure 5): train on train (50K), measure on validation (10K)."""
    apply_threads(threads)
    if generator == "none":
        raise click.UsageError("a λ sweep needs a generator: pass --generator NAME or DIR")
    _check_recipe(generator, recipe)
    train, val = _splits(dataset, "val", root, generator)
    errors = {}
    for lam in sorted(lams):
        with user_errors():
            config = ClassifierConfig(lam=lam, seed=seed, extra={"dataset": dataset, "split": "val"}, **recipe)
            result = fit_classifier(train, val, config, generator=_generator(generator), out=out / f"lam{lam:g}",
                                    progress=progress)
        errors[lam] = result["test_error"]
        click.echo(json.dumps({"lam": lam, "val_error": errors[lam]}))
    atomic_write_text(out / "sweep.json", json.dumps(
        {"dataset": dataset, "generator": generator, "model": _model_name(recipe),
         "noise_scale": recipe["noise_scale"], "learning_rate": recipe["learning_rate"], "dtype": recipe["dtype"],
         "val_error": {f"{lam:g}": error for lam, error in errors.items()}}, indent=2) + "\n")
    # Two lines: a generator given as a path, or a longer dataset name, overflows one.
    title = (f"{dataset}, {_model_name(recipe)}, generator {generator}\n"
             f"η={recipe['learning_rate']:g}, noise scale {recipe['noise_scale']:g}, {recipe['dtype']}")
    _plot_sweep(errors, title, out / "sweep.png")
    click.echo(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")


def _summary_name(out: Path, seed_range: range) -> str:
    """Base name of this call's summary files.

    It is ``summary`` for a call covering every seed from 0 and at least the seeds already summarised
    there, else ``summary-seedsA-B``: a call for part of the seeds never replaces the summary of a larger one.
    """
    partial = f"summary-seeds{seed_range[0]}-{seed_range[-1]}"
    if seed_range[0] != 0:
        return partial
    existing = out / "summary.json"
    if existing.exists():
        try:
            summarised = set(json.loads(existing.read_text())["seeds"])
        except (ValueError, KeyError, TypeError):
            return partial  # unreadable: keep it for the user to look at rather than replace it
        if not summarised <= set(seed_range):
            return partial
    return "summary"


def _check_recipe(generator: str, recipe: dict[str, Any]) -> None:
    """Refuse a misspelt generator, model or device before any data is read or any run is started."""
    from exaug.bundle import read_bundle_config
    from exaug.classifiers.factory import check_model_name
    from exaug.device import resolve_device
    from exaug.twins import check_noise_scale

    with user_errors():
        check_noise_scale(recipe["noise_scale"])
        if generator != "none":
            read_bundle_config(generator)
        elif recipe["noise_scale"] != 1.0:
            raise ValueError("--noise-scale shapes the synthetic twins, and --generator none makes none; "
                             "drop --noise-scale or pass a generator")
        check_model_name(recipe["model"])
        resolve_device(recipe["device"])


def _splits(dataset: str, split: str, root: Path | None, generator: str) -> tuple[Any, Any]:
    """(training set, evaluation set); a folder dataset has no test split and is always split train/val.

    Folder images are converted to the generator's channel count, when there is a generator.
    """
    if split == "test" and dataset in data.DATASETS:
        return open_dataset(dataset, "trainval", root), open_dataset(dataset, "test", root)
    channels = None
    if generator != "none" and dataset not in data.DATASETS:
        from exaug.bundle import read_bundle_config

        channels = read_bundle_config(generator)["model"]["input_shape"][0]
    return open_dataset(dataset, "train", root, channels), open_dataset(dataset, "val", root, channels)


def _generator(value: str) -> str | None:
    return None if value == "none" else value


def _model_name(recipe: dict[str, Any]) -> str:
    if recipe["model"] != "mlp":
        return recipe["model"]
    return "MLP " + "×".join(str(width) for width in recipe["hidden"])


def _plot_sweep(errors: dict[float, float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=120)
    axes.plot(list(errors), list(errors.values()), marker="o")
    axes.set_xlabel("λ (weight on real data)")
    axes.set_ylabel("validation error (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
