"""``exaug fit-generator``, ``exaug evaluate``, ``exaug sample``: train, measure and look at a generator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import torch
from click.core import ParameterSource

from exaug import data
from exaug.bundle_schema import MEANS_DTYPE_FORMAT_VERSIONS
from exaug.config import ARCHITECTURES, EXEMPLAR_SEARCHES, KNN_INDEXES, KNN_QUERIES, PRIORS, ModelConfig, TrainConfig
from exaug.device import apply_threads
from exaug.pretrained import load_generator
from exaug.sampling import SAMPLE_MODES
from exaug.train import RunProgress, fit_generator, run_progress

from .options import command_line, dataset_choice, echo_once, generator_option, open_dataset, root_option, seed_type, threads_option


def gradient_neighbours_choice(value: str) -> int | None:
    """``--gradient-neighbours``: a count (TrainConfig checks it), or ``all`` (None: every one of the k neighbours)."""
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a count of neighbours nor 'all'") from None


@click.command("fit-generator")
@click.option("--dataset", required=True, callback=lambda _c, _p, v: dataset_choice(v),
              help="mnist, fashion-mnist, or a folder in ImageFolder layout (10% held out for validation).")
@click.option("--arch", "architecture", type=click.Choice(ARCHITECTURES), default=ModelConfig.architecture,
              show_default=True, help="The MLP VAE (appendix D(a)), the two-level HVAE (D(b)) or the convolutional "
                                      "ConvHVAE (D(c)); the prior is on the top latent of the hierarchical ones.")
@click.option("--prior", type=click.Choice(PRIORS), default="exemplar", show_default=True)
@click.option("--search", "exemplar_search", type=click.Choice(EXEMPLAR_SEARCHES), default=TrainConfig.exemplar_search,
              show_default=True,
              help="Exemplar prior over all subsampled exemplars (exact) or their k nearest (knn).")
@click.option("--knn", type=int, default=TrainConfig.knn, show_default=True, help="k of the kNN prior.")
@click.option("--knn-query", type=click.Choice(KNN_QUERIES), default=TrainConfig.knn_query, show_default=True,
              help="Search the k neighbours around the batch's current posterior means (the authors' code) or "
                   "around each exemplar's cached mean (exaug's earlier behaviour, up to an epoch stale).")
@click.option("--knn-index", type=click.Choice(KNN_INDEXES), default=TrainConfig.knn_index, show_default=True,
              help="The kNN prior's search: exact, an approximate faiss IVF index calibrated on sample queries to "
                   "recall@10 0.97 (CPU only), or auto (exact below 200K exemplars or on a GPU): see "
                   "docs/exemplar-scale.md.")
@click.option("--neighbour-gradient/--no-neighbour-gradient", default=True, show_default=True,
              help="Re-encode the prior's exemplars with gradient each step (Algorithm 1), or take them from the "
                   "latent cache (faster, but the latent scale drifts).")
@click.option("--gradient-neighbours", callback=lambda _c, _p, v: gradient_neighbours_choice(v),
              default=str(TrainConfig.gradient_neighbours or "all"), show_default=True, metavar="G|all",
              help="With --search knn and --neighbour-gradient: re-encode only each row's G nearest neighbours "
                   "with gradient and take the other k - G from the cache (cheaper steps, but on long runs the "
                   "latent space grows: see docs/results.md); 'all' re-encodes all k, as the paper's Algorithm 1.")
@click.option("--cached-trunk/--no-cached-trunk", default=TrainConfig.cached_trunk, show_default=True,
              help="With --neighbour-gradient: re-encode the neighbours from encoder-trunk features cached once per "
                   "epoch, so the gradient reaches the mean head only (steps cost about what the cache costs).")
@click.option("--exemplar-fraction", type=float, default=TrainConfig.exemplar_fraction, show_default=True,
              help="M/N, the exemplar subsampling ratio.")
@click.option("--leave-one-out/--no-leave-one-out", default=True, show_default=True,
              help="Never explain a training image by its own exemplar (eq. 13); off only to reproduce the "
                   "paper's ablation (Table 1), where the prior overfits the training set.")
@click.option("--epochs", type=int, default=None,
              help=f"Epoch budget [default: {TrainConfig.epochs}; when resuming, the budget the run in --out was "
                   "started with]. A larger one trains a run that used up its budget further.")
@click.option("--warmup-epochs", type=int, default=TrainConfig.warmup_epochs, show_default=True)
@click.option("--patience", type=int, default=TrainConfig.patience, show_default=True)
@click.option("--patience-after-warmup/--patience-from-best", default=TrainConfig.patience_after_warmup,
              show_default=True, help="Count --patience from the end of the KL warm-up (the authors' rule) or from "
                                      "the best epoch alone (exaug's earlier rule).")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=TrainConfig.learning_rate,
              show_default=True)
@click.option("--latent-dim", type=int, default=ModelConfig.latent_dim, show_default=True)
@click.option("--hidden-dim", type=int, default=ModelConfig.hidden_dim, show_default=True)
@click.option("--pseudo-inputs", "num_pseudo_inputs", type=int,
              default=ModelConfig.num_pseudo_inputs, show_default=True, help="K of the VampPrior.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="Convert folder images to grey (1) or RGB (3); default: as stored.")
@click.option("--seed", type=seed_type, default=0, show_default=True)
@click.option("--init-from", default=None,
              help="Start from this generator's weights (a bundle directory or bundled name) instead of a random "
                   "init, to fine-tune it or train a bundle without a checkpoint longer (a run of your own trains on "
                   "with a larger --epochs instead); the architecture is the bundle's. Fresh optimiser: set "
                   "--warmup-epochs 0 to skip the KL warm-up.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Bundle directory; a run there with the same settings is resumed, and one that used up its "
                   "--epochs trains on when given a larger --epochs. It keeps an empty .exaug-run.lock: the guard "
                   "that refuses a second run into the folder while one trains (deleting it between runs is harmless).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@root_option
@threads_option
@click.pass_context
def fit_generator_command(context: click.Context, dataset: str, architecture: str, prior: str, latent_dim: int,
                          hidden_dim: int,
                          num_pseudo_inputs: int, channels: str | None, out: Path, progress: bool, root: Path | None,
                          threads: int | None, **train_options: object) -> None:
    """Train an Exemplar VAE of any architecture (or a Gaussian / VampPrior baseline) and write its bundle to OUT.

    Prints one JSON line per epoch; the bundle keeps the model with the best validation ELBO.
    """
    apply_threads(threads)
    so_far = run_progress(out)
    if train_options["epochs"] is None:
        train_options["epochs"] = TrainConfig.epochs if so_far is None else so_far.epoch_budget
    config = TrainConfig(**train_options, extra={"dataset": dataset})
    settings = {"architecture": architecture, "prior": prior, "latent_dim": latent_dim, "hidden_dim": hidden_dim,
                "num_pseudo_inputs": num_pseudo_inputs}
    if config.init_from is not None:  # the bundle's architecture, but for the options typed on the command line
        from exaug.bundle import read_bundle_config

        bundle_model = ModelConfig.from_dict(read_bundle_config(config.init_from)["model"]).to_dict()
        settings = {name: value if context.get_parameter_source(name) is not ParameterSource.DEFAULT
                    else bundle_model[name] for name, value in settings.items()}
    model_config = ModelConfig(**settings)
    channel_count = None if channels is None else int(channels)
    train = open_dataset(dataset, "train", root, channel_count)
    val = open_dataset(dataset, "val", root, channel_count)
    if so_far is not None and so_far.epochs_trained <= config.epochs:  # more trained than asked: the library refuses
        echo_once(_resume_message(out, so_far, config.epochs), err=True)
    fit_generator(train, val, config, out, model_config=model_config, progress=progress,
                  command=command_line("fit-generator"))
    echo_once(json.dumps({"bundle": str(out)}))


def _resume_message(out: Path, so_far: RunProgress, epochs: int) -> str:
    """What a rerun into ``out`` will do, so a run with nothing left to train does not look like one that trained."""
    if so_far.stopped_early:
        return (f"{out} stopped early at epoch {so_far.epochs_trained} (best epoch {so_far.best_epoch}; no better "
                f"validation ELBO within --patience epochs): nothing left to train. To train it further, start a "
                f"new --out with --init-from {out}.")
    if so_far.epochs_trained == epochs:
        return f"{out} has trained all {epochs} epochs: nothing left to train (a larger --epochs trains it further)."
    if so_far.epochs_trained > epochs:
        return (f"{out} has trained {so_far.epochs_trained} epochs, more than --epochs {epochs}: nothing left to "
                f"train (a larger --epochs trains it further).")
    changed = ("" if epochs == so_far.epoch_budget else
               f" (budget {'raised' if epochs > so_far.epoch_budget else 'lowered'} from {so_far.epoch_budget})")
    return f"resuming {out} at epoch {so_far.epochs_trained} of {epochs}{changed}"


@click.command("evaluate")
@generator_option("The generator to evaluate")
@click.option("--dataset", default=None, help="Dataset to test on (default: the one the bundle was trained on).")
@click.option("--samples", "num_samples", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Importance samples per image for the IWAE bound.")
@click.option("--subset", type=click.IntRange(min=1), default=1000, show_default=True,
              help="IWAE on the first SUBSET test images (ELBO, active units and kNN use all).")
@click.option("--exact-prior", is_flag=True,
              help="Score every IWAE sample against every exemplar; by default only against the exemplars near "
                   "each image, which keeps the NLL within 0.001 nat of the exact one (certified) in a "
                   "fraction of the time (docs/results.md, IWAE speed).")
@click.option("--device", default="auto", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON results file (default: GENERATOR/evaluation.json; a .md table is written beside it). The IWAE "
                   "part saves its progress beside it (the same name ending .iwae-checkpoint.pt); a rerun continues it.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@root_option
@threads_option
def evaluate_command(generator_dir: str, dataset: str | None, num_samples: int, subset: int, exact_prior: bool,
                     device: str, out: Path | None, progress: bool, root: Path | None, threads: int | None) -> None:
    """Test ELBO (KL / reconstruction), IWAE NLL, active units and latent kNN error of a generator."""
    from exaug.atomic import atomic_write_text
    from exaug.bundle import PRETRAINED_DIR, read_bundle_config, recorded_provenance, resolve_bundle, trained_dataset
    from exaug.evaluate import PRIOR_TOLERANCE, evaluate_generator, markdown_report
    from exaug.train import stack_dataset

    apply_threads(threads)
    bundle_dir = resolve_bundle(generator_dir)
    model = load_generator(bundle_dir, device=device, data_root=root)
    bundle_config = read_bundle_config(bundle_dir)
    dataset = dataset or trained_dataset(bundle_config)
    if dataset is None:
        raise click.UsageError("the bundle does not record its dataset; pass --dataset")
    dataset = dataset_choice(dataset)
    channels = model.config.input_shape[0]
    test_images, test_labels = stack_dataset(open_dataset(dataset, "test" if dataset in data.DATASETS else "val", root, channels))
    val_images, val_labels = (None, None)
    if dataset in data.DATASETS:
        val_images, val_labels = stack_dataset(open_dataset(dataset, "val", root))
    if out is None:  # beside the bundle, unless that is a bundled generator inside the package
        out = Path(f"evaluation-{generator_dir}.json") if bundle_dir.parent == PRETRAINED_DIR else bundle_dir / "evaluation.json"
    checkpoint = out.with_suffix(".iwae-checkpoint.pt")
    if checkpoint.exists():
        click.echo(f"continuing the IWAE evaluation saved in {checkpoint}", err=True)
    results = evaluate_generator(model, test_images, test_labels, val_images, val_labels,
                                 num_samples=num_samples, subset=subset, progress=progress,
                                 prior_tolerance=None if exact_prior else PRIOR_TOLERANCE, iwae_checkpoint=checkpoint)
    # which weights these figures belong to, by file hashes and the bundle's recorded version
    results.update(generator=str(generator_dir), dataset=dataset, generator_sha256=bundle_config["sha256"],
                   generator_provenance=recorded_provenance(bundle_config))
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    report = markdown_report(results)
    atomic_write_text(out.with_suffix(".md"), report)
    checkpoint.unlink(missing_ok=True)
    click.echo(report)
    click.echo(f"wrote {out} and {out.with_suffix('.md')}")


@click.command("sample")
@generator_option("The generator to sample from")
@click.option("--mode", type=click.Choice(SAMPLE_MODES), default="random", show_default=True,
              help="random: prior samples (Fig. 9); exemplars: plates of samples around exemplars (Fig. 3/10); "
                   "cyclic: each sample is the next exemplar (appendix B).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Images (random, default 100) or rows (exemplars and cyclic, default 10).")
@click.option("--per-row", type=click.IntRange(min=1), default=11, show_default=True,
              help="Samples per exemplar plate, or cyclic steps.")
@click.option("--seed", type=seed_type, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file to write.")
@root_option
@threads_option
def sample_command(generator_dir: str, mode: str, count: int | None, per_row: int, seed: int, device: str, out: Path,
                   root: Path | None, threads: int | None) -> None:
    """Write a grid of generated images to OUT (PNG).

    In exemplars and cyclic mode each row starts with its exemplar, framed in red.
    """
    from torchvision.utils import save_image

    from exaug.atomic import atomic_path
    from exaug.bundle import resolve_bundle
    from exaug.sampling import cyclic_generation, exemplar_plates, random_grid

    if out.suffix.lower() != ".png":
        raise click.BadParameter(f"{out} should end in .png", param_hint="--out")
    apply_threads(threads)
    count = count or (100 if mode == "random" else 10)
    bundle_dir = resolve_bundle(generator_dir)
    _check_grid_size(bundle_dir, count if mode == "random" else count * (per_row + 1))
    model = load_generator(bundle_dir, device=device, data_root=root)
    if mode != "random" and model.exemplar_images is None:
        raise click.ClickException(f"--mode {mode} starts from exemplar images, and {generator_dir} was saved "
                                   f"without them; {_images_advice(bundle_dir)}, or use --mode random")
    generator = torch.Generator(device=model.device).manual_seed(seed)
    if mode == "random":
        grid = random_grid(model, count, generator)
    else:
        picks = torch.randperm(model.exemplar_images.shape[0], generator=torch.Generator().manual_seed(seed))[:count]
        starts = model.exemplar_images[picks]
        grid = exemplar_plates(model, starts, per_row, generator) if mode == "exemplars" else \
            cyclic_generation(model, starts, per_row, generator)
    with atomic_path(out) as temporary:
        save_image(grid, temporary, format="png")
    click.echo(f"wrote {out}")


# The most pixel values one grid may hold: 2**26 floats, 256 MiB (85,000 MNIST images), one large PNG.
MAX_GRID_VALUES = 2**26


def _check_grid_size(bundle_dir: Path, images: int) -> None:
    """Refuse a grid of more images than one PNG should hold, before the generator is loaded: asked for
    millions, sampling would run out of memory."""
    from exaug.bundle import read_bundle_config

    shape = read_bundle_config(bundle_dir)["model"]["input_shape"]
    most = MAX_GRID_VALUES // math.prod(shape)
    if images > most:
        raise ValueError(f"--count and --per-row ask for a grid of {images} images of {'×'.join(map(str, shape))}, "
                         f"more than one PNG holds (at most {most} at that size): lower them, and run sample again "
                         "with another --seed for more")


def _images_advice(bundle_dir: Path) -> str:
    """How to get a bundle's exemplar images back: exaug re-attaches them only from a registered data set."""
    from exaug.bundle import read_bundle_config, trained_dataset

    dataset = trained_dataset(read_bundle_config(bundle_dir))
    if dataset in data.DATASETS:
        return (f"they are re-attached from its training split when that is at hand: fetch it with "
                f"`exaug data fetch {dataset}` (--root or EXAUG_DATA set the data folder)")
    trained_on = f"was trained on {dataset}" if dataset else "does not record its training data"
    return (f"they are re-attached only from {' or '.join(data.DATASETS)}, and it {trained_on}: use the bundle "
            "fit-generator wrote (it keeps them), or one exported from it without --no-images")


@click.command("export")
@generator_option("The generator to export")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New bundle directory (must not hold a bundle yet).")
@click.option("--images/--no-images", default=True, show_default=True,
              help="Keep the exemplar images; without them the bundle is small enough to ship in a package, and "
                   "loading re-attaches them from the training split when it is at hand.")
@click.option("--dataset", type=click.Choice(data.DATASETS), default=None,
              help="Record the training dataset, for bundles whose training run did not.")
@click.option("--version", "release", default=None, metavar="LABEL",
              help="Record the release label the copy is published under (e.g. 'mnist v2'), beside the provenance "
                   "its training recorded, so figures can name the bundle they used.")
@click.option("--means-dtype", type=click.Choice(list(MEANS_DTYPE_FORMAT_VERSIONS)), default="float32",
              show_default=True,
              help="Precision of the stored exemplar means: float16 halves them (a smaller bundle to ship); they load "
                   "back as float32, rounded, which moves the exemplar prior and the mixed loader's twins of the "
                   "exemplars a little (not the networks, nor ExemplarAugment's twins).")
@root_option
def export_command(generator_dir: str, out: Path, images: bool, dataset: str | None, release: str | None,
                   means_dtype: str, root: Path | None) -> None:
    """Copy a generator bundle, optionally without its exemplar images; its provenance goes with it."""
    import dataclasses

    from exaug.bundle import (CONFIG_FILE, bundle_provenance, bundle_size, read_bundle_config, resolve_bundle,
                              save_generator)

    if (out / CONFIG_FILE).exists():
        raise click.ClickException(f"{out} already holds a bundle; choose another --out")
    bundle_dir = resolve_bundle(generator_dir)
    config = read_bundle_config(bundle_dir)
    model = load_generator(bundle_dir, device="cpu", data_root=root)
    if images and model.exemplar_images is None:
        raise click.ClickException(f"{generator_dir} carries no exemplar images: pass --no-images, or get them back "
                                   f"({_images_advice(bundle_dir)})")
    training = TrainConfig.from_recorded(config["training"]) if config.get("training") else TrainConfig()
    if dataset is not None:
        training = dataclasses.replace(training, extra={**training.extra, "dataset": dataset})
    provenance = {**bundle_provenance(bundle_dir), **({} if release is None else {"version": release})}
    save_generator(model, out, training, config.get("data_checksum"), include_images=images,
                   provenance=provenance or None, means_dtype=getattr(torch, means_dtype))
    click.echo(f"wrote {out} ({bundle_size(out) / 2**20:.1f} MiB)")
