"""``exaug fit-classifier`` and ``exaug lambda-sweep``: the §5.4 experiments from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from exaug import data
from exaug.atomic import atomic_write_text
from exaug.classifiers import ClassifierConfig, fit_classifier
from exaug.classifiers.config import TRAINING_DTYPES
from exaug.classifiers.report import model_name, plot_lambda_sweeps, seed_summary, summary_markdown, summary_name
from exaug.device import apply_threads
from exaug.distributed import current_group

from .options import dataset_choice, echo_once, open_dataset, root_option, seed_type, threads_option


def expand_multi_value_options(args: Sequence[str], examples: Mapping[str, str]) -> list[str]:
    """Rewrite ``--hidden 1024 1024`` as ``--hidden 1024 --hidden 1024`` so click reads every value.

    ``examples`` maps each multi-value flag to example values for the message. A flag with no value after it
    (another option, or the end) is refused: dropped, it would leave the default in force without a word.
    Negative numbers are values, so the config, not the parser, says what is wrong with them.
    """
    expanded: list[str] = []
    reading: str | None = None  # the multi-value flag whose values are being read
    unanswered: str | None = None  # ``reading`` while it has no value yet
    for arg in args:
        if reading is not None and (not arg.startswith("-") or _is_number(arg)):
            expanded += [reading, arg]
            unanswered = None
            continue
        if unanswered is not None:
            _refuse_empty(unanswered, examples[unanswered], before=arg)
        reading = unanswered = arg if arg in examples else None
        if reading is None:
            expanded.append(arg)
    if unanswered is not None:
        _refuse_empty(unanswered, examples[unanswered], before=None)
    return expanded


def _is_number(arg: str) -> bool:
    """Whether ``arg`` reads as a number (``-5`` is a value, not an option)."""
    try:
        float(arg)
    except ValueError:
        return False
    return True


def _refuse_empty(flag: str, example: str, before: str | None) -> None:
    """Refuse a multi-value flag that got no value, saying where and how to give them."""
    where = f"before {before}" if before is not None else "at the end of the command"
    raise click.BadOptionUsage(flag, f"{flag} takes one or more values and got none {where}; give them right "
                                     f"after it, e.g. {flag} {example}")


class MultiValueCommand(click.Command):
    """A command whose ``multiple`` options also take several values after one flag."""

    multi_value_options = {"--hidden": "1024 1024", "--lams": "0.2 0.4 0.6"}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_multi_value_options(args, self.multi_value_options))


def recipe_options(command: Any) -> Any:
    """The flags shared by both commands, mapped onto ClassifierConfig fields. Click only parses them:
    ClassifierConfig checks every value, once, and its message names the flag's field and the fix."""
    options = [
        click.option("--dataset", required=True, callback=lambda _c, _p, v: dataset_choice(v),
                     help="mnist, fashion-mnist, or an ImageFolder directory."),
        click.option("--generator", default="none", show_default=True,
                     help="Bundled generator name (mnist, fashion-mnist), a bundle directory, or none."),
        click.option("--model", default="mlp", show_default=True, help="mlp, or any timm model name."),
        click.option("--hidden", type=int, multiple=True, default=(1024, 1024), show_default=True,
                     help="MLP hidden widths, e.g. --hidden 1024 1024 or --hidden 8192 8192."),
        click.option("--epochs", type=int, default=100, show_default=True),
        click.option("--batch-size", type=int, default=100, show_default=True),
        click.option("--lr", "learning_rate", type=float, default=0.1,
                     show_default=True, help="η, decayed linearly to η/100."),
        click.option("--noise-scale", type=float, default=1.0, show_default=True,
                     help="Factor on the kernel σ of the synthetic twins; 1.0 is the paper's sampler. Choose on validation."),
        click.option("--dtype", type=click.Choice(TRAINING_DTYPES), default="float32", show_default=True,
                     help="Precision of the classifier's weights and inputs; the authors' code trains in float64."),
        click.option("--label-smoothing", type=float, default=0.1, show_default=True),
        click.option("--workers", type=int, default=2, show_default=True,
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
@click.option("--lam", type=float, default=None,
              help="Weight on real data in eq. 16 (default: 0.4 for mnist, 0.8 for fashion-mnist).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Independent runs.")
@click.option("--first-seed", type=seed_type, default=0, show_default=True,
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
    if lam is None:  # the paper's λ for its data sets; the recipe's default for a folder
        lam = data.dataset_info(dataset).paper_lambda if dataset in data.DATASETS else ClassifierConfig.lam
    seed_range = range(first_seed, first_seed + seeds)
    # every setting is checked, by its config, before any data is read or run started
    configs = [ClassifierConfig(lam=lam, seed=seed, extra={"dataset": dataset, "split": split}, **recipe)
               for seed in seed_range]
    _check_recipe(generator, configs[0])
    scored_on = split if dataset in data.DATASETS else "val"  # runs keep --split in their identity, as before
    train, test = _splits(dataset, split, root, generator)
    errors = {}
    for config in configs:
        result = fit_classifier(train, test, config, generator=_generator(generator),
                                out=out / f"seed{config.seed}", progress=progress)
        errors[config.seed] = result["test_error"]
        echo_once(json.dumps({"seed": config.seed, "error": result["test_error"]}))
    group = current_group()
    if group is not None and not group.is_writer:  # rank 0 writes the summary
        return
    summary = seed_summary(configs[0], dataset, generator, scored_on, errors)
    name = summary_name(out, seed_range)
    atomic_write_text(out / f"{name}.json", json.dumps(summary, indent=2) + "\n")
    table = summary_markdown(summary)
    atomic_write_text(out / f"{name}.md", table)
    click.echo(table)


@click.command("lambda-sweep", cls=MultiValueCommand)
@recipe_options
@click.option("--lams", type=float, multiple=True,
              default=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), show_default=True, help="λ values to try.")
@click.option("--seed", type=seed_type, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for lam*/ runs (resumable), sweep.json and sweep.png.")
def lambda_sweep_command(dataset: str, generator: str, lams: tuple[float, ...], seed: int, out: Path,
                         progress: bool, root: Path | None, threads: int | None, **recipe: Any) -> None:
    """Validation error against λ (Figure 5): train on train (50K), measure on validation (10K)."""
    apply_threads(threads)
    if generator == "none":
        raise click.UsageError("a λ sweep needs a generator: pass --generator NAME or DIR")
    # every λ is checked, by its config, before any data is read or run started
    configs = [ClassifierConfig(lam=lam, seed=seed, extra={"dataset": dataset, "split": "val"}, **recipe)
               for lam in sorted(lams)]
    _check_recipe(generator, configs[0])
    train, val = _splits(dataset, "val", root, generator)
    errors = {}
    for config in configs:
        result = fit_classifier(train, val, config, generator=_generator(generator), out=out / f"lam{config.lam:g}",
                                progress=progress)
        errors[config.lam] = result["test_error"]
        click.echo(json.dumps({"lam": config.lam, "val_error": errors[config.lam]}))
    name = model_name(recipe["model"], recipe["hidden"])
    atomic_write_text(out / "sweep.json", json.dumps(
        {"dataset": dataset, "generator": generator, "model": name,
         "noise_scale": recipe["noise_scale"], "learning_rate": recipe["learning_rate"], "dtype": recipe["dtype"],
         "val_error": {f"{lam:g}": error for lam, error in errors.items()}}, indent=2) + "\n")
    # Two lines: a generator given as a path, or a longer dataset name, overflows one.
    title = (f"{dataset}, {name}, generator {generator}\n"
             f"η={recipe['learning_rate']:g}, noise scale {recipe['noise_scale']:g}, {recipe['dtype']}")
    plot_lambda_sweeps({"": errors}, title, out / "sweep.png")
    click.echo(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")


@click.command("lambda-plot")
@click.argument("sweeps", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--label", "labels", multiple=True,
              help="A legend label per SWEEP, in order [default: each sweep's generator].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The PNG to write.")
def lambda_plot_command(sweeps: tuple[Path, ...], labels: tuple[str, ...], out: Path) -> None:
    """Several lambda-sweep folders in one plot (Figure 5 in full: one line per generator).

    The sweeps must share a dataset and classifier, or their errors do not compare."""
    if labels and len(labels) != len(sweeps):
        raise click.UsageError(f"{len(labels)} --label for {len(sweeps)} sweeps: give one per sweep, or none")
    records = [_read_sweep(sweep) for sweep in sweeps]
    for field in ("dataset", "model"):
        values = {record[field] for record in records}
        if len(values) > 1:
            raise click.UsageError(f"the sweeps differ in {field} ({', '.join(sorted(values))}), so their errors do "
                                   "not compare: plot sweeps of one dataset and classifier together")
    curves = {label: {float(lam): error for lam, error in record["val_error"].items()}
              for label, record in zip(labels or [str(record["generator"]) for record in records], records)}
    if len(curves) < len(records):
        raise click.UsageError("two sweeps share a legend label: pass --label for each")
    plot_lambda_sweeps(curves, f"{records[0]['dataset']}, {records[0]['model']}: validation error against λ", out)
    click.echo(f"wrote {out}")


def _read_sweep(sweep: Path) -> dict[str, Any]:
    """The sweep.json of a lambda-sweep folder, checked for what lambda-plot reads: a damaged or hand-edited file
    is refused in one line naming it, not with a KeyError traceback."""
    path = sweep / "sweep.json"
    if not path.is_file():
        raise click.UsageError(f"{sweep} holds no sweep.json: is it the --out of a finished exaug lambda-sweep?")
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        record, problem = None, f"not JSON: {error}"
    else:
        problem = _sweep_problem(record)
    if problem:
        raise ValueError(f"{path} is not a sweep exaug lambda-sweep wrote ({problem}); run that lambda-sweep again "
                         "into its folder (its finished runs are resumed, not retrained), or leave the folder out")
    return record


def _sweep_problem(record: Any) -> str | None:
    """What is wrong with a parsed sweep.json for lambda-plot, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [key for key in ("dataset", "model", "generator", "val_error") if key not in record]
    if missing:
        return f"no {', '.join(missing)}"
    if not isinstance(record["dataset"], str) or not isinstance(record["model"], str):
        return "dataset and model are not both text"
    if not isinstance(record["val_error"], dict) or not record["val_error"]:
        return "val_error is not a mapping from λ to error"
    for lam, error in record["val_error"].items():
        if not _is_number(lam) or isinstance(error, bool) or not isinstance(error, (int, float)):
            return f"val_error holds {lam!r}: {error!r}, not a λ and its error"
    return None


def _check_recipe(generator: str, config: ClassifierConfig) -> None:
    """Refuse a misspelt generator, model or device before any data is read or any run is started
    (the config has checked its own values)."""
    from exaug.bundle import read_bundle_config
    from exaug.classifiers.factory import check_model_name
    from exaug.device import resolve_device

    if generator != "none":
        read_bundle_config(generator)
    elif config.noise_scale != 1.0:
        raise ValueError("--noise-scale shapes the synthetic twins, and --generator none makes none; "
                         "drop --noise-scale or pass a generator")
    check_model_name(config.model)
    resolve_device(config.device)


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
