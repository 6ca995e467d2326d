"""fit_generator: the resumable training loop of a generator of any architecture (paper §5, appendix D.2).

One epoch: shuffle, dynamically binarise each batch (exemplars stay grey), one-sample
ELBO with linear KL warm-up, gradient-normalised Adam. After each epoch the exemplar
means are re-encoded (they refresh the latent cache and place the validation prior),
the validation ELBO decides early stopping, the best model is written as a bundle, and
a checkpoint with the full training state is written atomically, so a killed run
resumes exactly where it stopped, and a run that used up its epoch budget can be given
a larger one and train on.

Under ``torch.distributed`` (:mod:`exaug.distributed`) each rank trains on its shard of one shared permutation per
epoch, with ``batch_size`` per rank, through ``DistributedDataParallel``: the leave-one-out prior term, and with it
the neighbours re-encoded with gradient, runs inside the model's ``forward`` (as its ``log_prior``), so DDP averages
every gradient over the ranks. The exemplar subsets π come from one stream shared by the ranks, the binarisation
and reparameterisation noise from each rank's own; the latent cache is replayed on every rank after each step, and
the end-of-epoch means and validation score are rank 0's, handed to every rank.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .atomic import atomic_write_text
from .checkpoint import (CHECKPOINT_FILE, IDENTITY_KEY, CheckpointError, checked_state, load_checkpoint,
                         read_checkpoint, restore_random_stream, restoring)
from .bundle import load_weights, read_bundle_config, save_generator
from .bundle_schema import CONFIG_FILE, EXEMPLARS_FILE, MODEL_FILE
from .config import TRAIN_SETTINGS_ADDED_SINCE_FIRST_RELEASE, ModelConfig, TrainConfig
from .data import ImageTensorDataset, data_checksum
from .distributed import (ReplicatedLatentCache, broadcast_tensor, data_parallel, decided_by_writer, rank_seed,
                          shard_of_permutation, summed, training_device)
from .epochs import EpochCallback, EpochLog, EpochTrainer
from .exemplar_images import ExemplarImages
from .evaluate import binarize_once, elbo_parts, posterior_log_variances
from .exemplar_objective import LeaveOneOutExemplarPrior
from .latent_cache import LatentCache, resolve_knn_index
from .optim import NormalizedAdam
from .version import __version__
from .priors import ExemplarPrior
from .images import as_uint8
from .models import ExemplarGenerator, build_generator

LOG_FILE = "train_log.jsonl"
# Written before any other file of a fresh run: the files beside it are that run's (see GeneratorTrainer.start).
RUN_MARKER = ".exaug-generator-run"
RUN_FILES = (CONFIG_FILE, MODEL_FILE, EXEMPLARS_FILE, LOG_FILE)
# Recipe fields newer than some checkpoints, with the value those checkpoints were trained under.
SETTINGS_ADDED_SINCE_FIRST_RELEASE = {"train_config": TRAIN_SETTINGS_ADDED_SINCE_FIRST_RELEASE,
                                      "model_config": {"architecture": "vae"}}
# What a generator checkpoint holds, by type (checked before any of it is used).
CHECKPOINT_STRUCTURE = {"epoch": int, "model": dict, "optimizer": dict, "generator": torch.Tensor,
                        "cache": (torch.Tensor, type(None)), "best_elbo": float, "best_epoch": int,
                        "best_state": dict, "best_means": torch.Tensor}


def stack_dataset(dataset: Dataset, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All images of ``dataset`` as one float32 N×C×H×W tensor in [0, 1], plus labels when it has them.

    Accepts any dataset yielding ``(image, label)`` or bare images, images being tensors in
    [0, 1] of one C×H×W shape. Datasets exposing uint8 ``images`` (and ``labels``), like
    :class:`exaug.data.ImageTensorDataset`, are read without iterating.
    """
    if isinstance(getattr(dataset, "images", None), torch.Tensor) and dataset.images.dtype == torch.uint8:
        return dataset.images.float() / 255.0, getattr(dataset, "labels", None)
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; a generator needs at least 2 training images")
    first = dataset[0]
    first_image = first[0] if isinstance(first, (list, tuple)) else first
    if not isinstance(first_image, torch.Tensor) or first_image.ndim != 3:
        raise ValueError(
            f"dataset items must be C×H×W image tensors (optionally with a label), got {type(first_image).__name__}: "
            "add transform=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])"
        )
    images, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if isinstance(batch, (list, tuple)):
            images.append(batch[0])
            if len(batch) > 1:
                labels.append(torch.as_tensor(batch[1]))
        else:
            images.append(batch)
    stacked = torch.cat(images)
    if not isinstance(stacked, torch.Tensor) or not stacked.is_floating_point() or stacked.ndim != 4:
        raise ValueError(
            f"dataset images must be float tensors C×H×W in [0, 1] (got {stacked.dtype} of shape "
            f"{tuple(stacked.shape[1:])}); add torchvision.transforms.v2.ToImage() and ToDtype(torch.float32, scale=True)"
        )
    if not torch.isfinite(stacked).all() or stacked.min() < 0 or stacked.max() > 1:
        raise ValueError(
            f"dataset images must lie in [0, 1]; found values in [{stacked.min():.3g}, {stacked.max():.3g}]: "
            "scale them with ToDtype(torch.float32, scale=True)"
        )
    return stacked.float(), (torch.cat(labels).to(torch.int64) if labels else None)


def training_log(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The epoch records of the generator run in ``out``, from its ``train_log.jsonl``; a line a kill cut
    short (which resuming writes again) is skipped."""
    records = []
    for line in (Path(out) / LOG_FILE).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def kl_weight(epoch: int, warmup_epochs: int) -> float:
    """Linear KL warm-up β for 1-based ``epoch``: epoch/warmup, capped at 1 (1 when warm-up is off)."""
    return 1.0 if warmup_epochs == 0 else min(1.0, epoch / warmup_epochs)


def fit_generator(
    train: Dataset | ExemplarImages,
    val: Dataset | ExemplarImages | None = None,
    config: TrainConfig | None = None,
    out: str | os.PathLike = "runs/generator",
    model_config: ModelConfig | None = None,
    progress: bool = True,
    log: EpochLog | None = None,
    callbacks: Iterable[EpochCallback] = (),
    command: str | None = None,
) -> ExemplarGenerator:
    """Train a generator (``model_config.architecture``, the MLP VAE by default) on ``train`` and write it to the
    bundle directory ``out``.

    Args:
        train: dataset of images in [0, 1] (any C×H×W), optionally with labels; it becomes
            the exemplar set and is stored in the bundle. A dataset is read into RAM whole; an
            :class:`~exaug.exemplar_images.ExemplarImages` (a memory-mapped array, an ``ImageFolder``) is read by
            index as training needs its images (docs/exemplar-storage.md).
        val: dataset for early stopping on the validation ELBO, read into RAM; without it training runs
            ``config.epochs`` epochs and keeps the last model.
        config: training recipe (defaults to the paper's).
        out: bundle directory; also holds ``checkpoint.pt`` and ``train_log.jsonl``. A run there
            with the same configuration and data is resumed. Its epoch budget may differ: a run
            that used up its budget trains on to a larger ``config.epochs`` (exactly as if that
            had been asked for at the start), while one stopped early on validation stays stopped.
        model_config: architecture; ``input_shape`` is always taken from the data.
        progress: show a progress bar on stderr.
        log: called with each epoch's record (default: print it as a JSON line on stdout).
        callbacks: each called with the trainer (its ``model``, ``epoch``) and each epoch's record once that
            epoch's checkpoint is on disk; an exception raised in one stops the run there, and the same call
            later resumes it.
        command: the command line that started the run, recorded in the bundle's provenance (the CLI passes
            its own; None for the Python API).

    Returns:
        The best model (by validation ELBO), in eval mode, with its exemplar set.
    """
    config = config or TrainConfig()
    exemplars = train if isinstance(train, ExemplarImages) else ExemplarImages(*stack_dataset(train))
    if len(exemplars) < 2:
        raise ValueError(f"the training set has {len(exemplars)} image(s); a generator needs at least 2")
    input_shape = exemplars.image_shape
    if config.init_from is not None:
        config, model_config = _warm_start_settings(config, model_config, input_shape)
    model_config = dataclasses.replace(model_config or ModelConfig(), input_shape=input_shape)
    val_images = None
    if val is not None:
        val_images = val.unit_float(slice(None)) if isinstance(val, ExemplarImages) else stack_dataset(val)[0]
        if tuple(val_images.shape[1:]) != model_config.input_shape:
            raise ValueError(f"validation images are {tuple(val_images.shape[1:])} but training images are {model_config.input_shape}")
    trainer = GeneratorTrainer(exemplars, None, val_images, model_config, config, Path(out), command)
    trainer.fit(progress=progress, log=log, callbacks=callbacks)
    return trainer.best_model()


def _warm_start_settings(config: TrainConfig, model_config: ModelConfig | None,
                         input_shape: tuple[int, ...]) -> tuple[TrainConfig, ModelConfig]:
    """Check that ``config.init_from`` fits this run; return the config with its weights' sha256 and its architecture.

    The architecture is the bundle's. A ``model_config`` given as well must agree with it, and an
    ``init_sha256`` given by the caller (to pin the start weights) must match the bundle's.
    """
    bundle = read_bundle_config(config.init_from)
    source = ModelConfig.from_dict(bundle["model"])
    if source.input_shape != input_shape:
        raise ValueError(f"init_from={config.init_from!r} was trained on images {source.input_shape} (C×H×W) but "
                         f"this data is {input_shape}; warm-start only from a generator of the same image size")
    if model_config is not None:
        asked = dataclasses.replace(model_config, input_shape=input_shape)
        clashes = [f"{name} {getattr(source, name)!r} (asked for {getattr(asked, name)!r})"
                   for name in ("architecture", "prior", "latent_dim", "hidden_dim", "num_pseudo_inputs")
                   if getattr(source, name) != getattr(asked, name)]
        if clashes:
            raise ValueError(f"init_from={config.init_from!r} has {', '.join(clashes)}; a warm start keeps the "
                             "bundle's architecture, so leave these settings at the bundle's values")
    sha256 = bundle["sha256"][MODEL_FILE]
    if config.init_sha256 is not None and config.init_sha256 != sha256:
        raise ValueError(f"init_from={config.init_from!r} no longer holds the weights this run started from "
                         f"(sha256 {config.init_sha256[:12]}…, now {sha256[:12]}…); restore that bundle or start afresh")
    return dataclasses.replace(config, init_sha256=sha256), source


@dataclasses.dataclass(frozen=True)
class RunProgress:
    """How far the generator run in a directory got, read from its checkpoint."""

    epochs_trained: int
    epoch_budget: int  # the ``epochs`` it was last started with
    best_epoch: int
    stopped_early: bool  # by patience on the validation ELBO; more epochs will not train it further


def run_progress(out: str | os.PathLike) -> RunProgress | None:
    """The progress of the run in ``out``, or None when it holds no checkpoint. Its settings are not checked."""
    path = Path(out) / CHECKPOINT_FILE
    if not path.exists():
        return None
    state = read_checkpoint(path)
    identity = state[IDENTITY_KEY]
    settings = identity.get("train_config")
    if settings is None or "best_epoch" not in state:
        raise ValueError(f"{path} is not the checkpoint of a generator run (a classifier's?); "
                         "pass an output directory of its own")
    checked_state(state, path, CHECKPOINT_STRUCTURE)
    with restoring(path):  # recorded settings of the wrong type or missing fail where they are read
        # Checkpoints from before the budget was saved beside the state kept it in their identity.
        budget = state.get("epoch_budget", settings.get("epochs"))
        counted_from = settings["warmup_epochs"] if settings.get("patience_after_warmup", False) else 0
        stopped = stopped_early(state["epoch"], state["best_epoch"], settings["patience"], counted_from,
                                has_validation=identity.get("val_checksum") is not None)
    return RunProgress(state["epoch"], budget, state["best_epoch"], stopped)


def canonical_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """A run's identity with ``gradient_neighbours`` as the choice it makes: None wherever it changes nothing (all
    k, the exact search, no neighbour gradient, a cached trunk, a prior without exemplars), so runs that differ
    only there resume as one another, whichever way their checkpoint recorded it."""
    recorded = identity["train_config"]
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    recipe = TrainConfig.from_dict({key: value for key, value in recorded.items() if key in known})
    in_use = recipe.gradient_neighbours_in_use if identity["model_config"].get("prior") == "exemplar" else None
    return {**identity, "train_config": {**recorded, "gradient_neighbours": in_use}}


def stopped_early(epoch: int, best_epoch: int, patience: int, counted_from: int, has_validation: bool) -> bool:
    """Early stopping: ``patience`` epochs after ``counted_from`` (the end of the KL warm-up, in the authors'
    rule) without a better validation ELBO; never without validation data. Inside the warm-up the model
    trains on a β-weighted bound, so a plateau of the true ELBO says little."""
    return has_validation and epoch - max(best_epoch, counted_from) >= patience


class GeneratorTrainer(EpochTrainer):
    """State of one training run: model, optimiser, random stream, cache, early-stopping book-keeping.

    The exemplar set ``train`` is an :class:`ExemplarImages` (it carries its labels), or a tensor N×C×H×W with
    ``train_labels``. RAM holds what a step needs of it, by exemplar: its latent mean in the cache, its label; its
    images are read by index, each batch and each step's neighbours, unless the set is itself held in RAM.
    """

    def __init__(self, train: ExemplarImages | torch.Tensor, train_labels: torch.Tensor | None,
                 val_images: torch.Tensor | None, model_config: ModelConfig, config: TrainConfig, out: Path,
                 command: str | None = None) -> None:
        super().__init__(out, config.epochs)
        self.config = config
        self.command = command
        self.model_config = model_config
        self.device = training_device(config.device, self.group)
        if isinstance(train, ExemplarImages) and train_labels is not None:
            raise ValueError("train_labels go with a tensor of images; an ExemplarImages carries its own labels "
                             "(ExemplarImages(images, labels))")
        self.exemplars = train if isinstance(train, ExemplarImages) else ExemplarImages(train, train_labels)
        self.train_labels = self.exemplars.labels
        self.data_checksum = self.exemplars.checksum()
        self.val_checksum = None if val_images is None else data_checksum(ImageTensorDataset(as_uint8(val_images)))
        torch.manual_seed(config.seed)
        self.model = build_generator(model_config).to(self.device)
        if config.init_from is not None:
            self.model.load_state_dict(load_weights(config.init_from))
        self.optimizer = NormalizedAdam(self.model.parameters(), lr=config.learning_rate, foreach=True)
        # Alone, one stream draws everything. Under DDP it draws only the exemplar subsets π, alike on every rank;
        # ``noise`` draws this rank's binarisation and reparameterisation, and each step runs through the wrapper.
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.noise = self.generator
        self.stepped: torch.nn.Module = self.model
        if self.group is not None:
            self.noise = torch.Generator(device=self.device).manual_seed(rank_seed(config.seed, self.group.rank))
            # The exemplar set is fixed for the run: its buffers are alike on every rank, nothing to broadcast.
            self.stepped = data_parallel(self.model, self.device, sync_buffers=False)
        # Images keep their C×H×W shape: each architecture takes them as its layers need. A set held in RAM is
        # copied to the device once; one out of RAM is read batch by batch.
        self.train_images = self.exemplars.as_float(self.device, self.model.dtype)
        self.val_images = None if val_images is None else binarize_once(val_images).to(self.device)
        # Algorithm 1's latent cache, filled by one pass of the encoder; only the exemplar prior uses it.
        self.trunk_features: torch.Tensor | None = None  # with cached_trunk: the exemplars' encoder-trunk features
        if self.uses_exemplar_prior and config.exemplar_search == "knn":  # refused before the costly first encoding
            resolve_knn_index(config.knn_index, len(self.exemplars), self.device)
        self.cache = self._latent_cache(self.encode_exemplars()) if self.uses_exemplar_prior else None
        self.best_elbo = -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_means: torch.Tensor | None = None

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        train_record = self._train_epoch(epoch, self.prior_term(), progress)
        self._refuse_divergence(epoch, "training loss", train_record["train_loss"])
        return {**train_record, **self._end_of_epoch(epoch)}

    def progress_fields(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"val_elbo": record.get("val_elbo"), "best_epoch": self.best_epoch}

    def _train_epoch(self, epoch: int, prior_term: LeaveOneOutExemplarPrior | None, progress: bool) -> dict[str, Any]:
        self.model.train()
        beta = kl_weight(epoch, self.config.warmup_epochs)
        size = len(self.exemplars)
        if self.group is None:
            order = torch.randperm(size, generator=self.generator, device=self.generator.device)
        else:
            order = shard_of_permutation(size, self.config.seed, epoch, self.group)
        totals = torch.zeros(3, dtype=torch.float64)
        batches = tqdm(order.split(self.config.batch_size), desc=f"epoch {epoch}", leave=False,
                       disable=not progress, file=sys.stderr)
        for batch_indices in batches:
            totals += self.train_step(batch_indices.to(self.device), beta, prior_term) * len(batch_indices)
        if self.group is not None:  # every rank's images, padding included, as DistributedSampler pads
            totals, size = summed(totals), len(order) * self.group.world_size
        loss, reconstruction, kl = (totals / size).tolist()
        return {"beta": beta, "train_loss": loss, "train_reconstruction": reconstruction, "train_kl": kl}

    def train_step(self, batch_indices: torch.Tensor, beta: float,
                   prior_term: LeaveOneOutExemplarPrior | None) -> torch.Tensor:
        """One optimiser step on training exemplars ``batch_indices``; returns (loss, reconstruction, KL) means."""
        x = torch.bernoulli(self.train_images[batch_indices], generator=self.noise)
        log_prior = None
        if prior_term is not None:
            def log_prior(z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
                return prior_term(z, batch_indices, query=mu if self.config.knn_query == "posterior" else None)
        # The prior term runs inside forward(), so under DDP the gradients of the neighbours it re-encodes are
        # averaged over the ranks with the rest.
        terms = self.stepped(x, log_prior=log_prior, generator=self.noise)
        loss = (beta * terms.kl - terms.reconstruction).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.cache is not None:
            self.cache.update(batch_indices.to(self.cache.values.device), terms.posterior_mean)
            if isinstance(self.cache, ReplicatedLatentCache):
                self.cache.synchronise()
        return torch.tensor([loss.item(), terms.reconstruction.mean().item(), terms.kl.mean().item()],
                            dtype=torch.float64)

    def _end_of_epoch(self, epoch: int) -> dict[str, Any]:
        """Refresh exemplar means, score validation, keep the best model (the caller checkpoints)."""
        self.model.eval()
        means = self.encode_exemplars()
        if self.group is not None:  # bit for bit rank 0's, so the caches stay alike
            means = broadcast_tensor(means)
        if self.cache is not None:
            self.cache.refresh(means)
        self.model.set_exemplars(self.exemplars, self.train_labels, means=means)
        record: dict[str, Any] = {}
        if isinstance(self.model.prior, ExemplarPrior):
            record["prior_log_var"] = self.model.prior.log_var.item()
        if self.val_images is not None:
            # elbo_parts draws from its own fixed noise stream: every epoch is scored on the same ε,
            # and the training random stream is untouched.
            scores = decided_by_writer(self.group, lambda: {**elbo_parts(self.model, self.val_images),
                                                            **posterior_log_variances(self.model, self.val_images)})
            record.update({f"val_{name}": value for name, value in scores.items()})
            self._refuse_divergence(epoch, "validation ELBO", record["val_elbo"])
            improved = record["val_elbo"] > self.best_elbo
        else:
            improved = True  # without validation data the latest model is the best we know
        if improved:
            self.best_elbo = record.get("val_elbo", -math.inf)
            self.best_epoch = epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.best_means = means.clone()
            if self.writes_files:
                save_generator(self.model, self.out, self.config, self.data_checksum, provenance=self._provenance())
        record["best_epoch"] = self.best_epoch
        return record

    def _refuse_divergence(self, epoch: int, what: str, value: float) -> None:
        """Stop a diverged run before it saves anything: its checkpoint and best bundle stay as they were."""
        if not math.isfinite(value):
            kept = (f"{self.out} keeps the checkpoint of epoch {self.epoch} and the best bundle (epoch {self.best_epoch})"
                    if self.epoch > 0 else "nothing of the run was saved")
            raise ValueError(f"epoch {epoch}: the {what} is {value}, so training diverged; {kept}. "
                             "Start again in another output directory with a smaller learning rate")

    @torch.no_grad()
    def encode_exemplars(self) -> torch.Tensor:
        """The exemplars' latent means under the current encoder; with ``cached_trunk`` they are read from trunk
        features kept for the next epoch's neighbour gradient."""
        if not (self.config.cached_trunk and self.uses_exemplar_prior):
            return self.model.encode_means(self.train_images)
        self.trunk_features = self.model.encode_features(self.train_images)
        return self.model.mean_from_features(self.trunk_features)

    def _provenance(self) -> dict[str, Any]:
        """Where the best bundle's weights come from: this exaug, the run's command, their epoch and score."""
        return {"exaug_version": __version__, "epochs_trained": self.best_epoch,
                "best_val_elbo": self.best_elbo if math.isfinite(self.best_elbo) else None, "command": self.command}

    def _latent_cache(self, means: torch.Tensor) -> LatentCache:
        """Algorithm 1's latent cache; under DDP one that every rank keeps alike."""
        return LatentCache(means) if self.group is None else ReplicatedLatentCache(means, self.group)

    @property
    def uses_exemplar_prior(self) -> bool:
        return isinstance(self.model.prior, ExemplarPrior)

    def prior_term(self) -> LeaveOneOutExemplarPrior | None:
        """The leave-one-out exemplar prior of eq. 13, or None when the model's own prior is used."""
        if self.cache is None:
            return None
        return LeaveOneOutExemplarPrior(self.model, self.train_images, self.cache,
                                        self.config, self.generator, self.trunk_features)

    def best_model(self) -> ExemplarGenerator:
        """The model of the best epoch (by validation ELBO, else the last), in eval mode, with its exemplar set."""
        self.model.load_state_dict(self.best_state)
        self.model.set_exemplars(self.exemplars, self.train_labels, means=self.best_means)
        return self.model.eval()

    def stopped(self) -> bool:
        counted_from = self.config.warmup_epochs if self.config.patience_after_warmup else 0
        return stopped_early(self.epoch, self.best_epoch, self.config.patience, counted_from,
                             has_validation=self.val_images is not None)

    # ------------------------------------------------------- checkpointing
    def identity(self) -> dict[str, Any]:
        # Not part of what was trained: the epoch budget (a run that used up its budget can be extended
        # in place, and goes on exactly as a run asked for the larger budget would have), the name the
        # start weights were given under (their sha256 stays, so a copy of the bundle elsewhere will do),
        # and the device setting (the random stream's device kind is checked on resuming instead).
        # knn_query changes nothing without the kNN exemplar prior: a run without it resumes whatever the setting.
        uses_knn = self.uses_exemplar_prior and self.config.exemplar_search == "knn"
        trained_under = {key: value for key, value in self.config.to_dict().items()
                         if key not in ("epochs", "init_from", "device") and (uses_knn or key != "knn_query")}
        return canonical_identity({"model_config": self.model_config.to_dict(), "train_config": trained_under,
                                   "data_checksum": self.data_checksum, "val_checksum": self.val_checksum})

    def _resume_advice(self) -> dict[str, str]:
        advice = {"train_config.knn_query": "a run from before knn_query existed searched around the cached means: "
                                            "pass --knn-query cache (TrainConfig(knn_query='cache')) to resume it",
                  "train_config.patience_after_warmup": "a run from before patience_after_warmup existed counted "
                                                        "patience from its best epoch: pass --patience-from-best "
                                                        "(TrainConfig(patience_after_warmup=False)) to resume it",
                  "train_config.gradient_neighbours": "pass the --gradient-neighbours the run was started with "
                                                      "(TrainConfig(gradient_neighbours=...); 'all' is None) to resume "
                                                      "it: runs started while the default was 3 re-encoded the 3 "
                                                      "nearest, runs from before that all k"}
        if self.config.init_from is None:
            return advice
        # A bundle can change under a run that started from it, e.g. when it was itself trained on in place.
        return {**advice, "train_config.init_sha256": f"init_from={self.config.init_from!r} does not hold the weights this "
                                            "run started from (init_sha256): to resume, name a bundle that does "
                                            "(e.g. the start bundle restored, or a copy of it); to start from "
                                            f"{self.config.init_from!r} instead, pass another output directory"}

    def state(self) -> dict[str, Any]:
        # Under DDP each rank's own noise stream goes in too, restored by the same rank.
        return self.with_rank_states({
            "epoch": self.epoch,
            "epoch_budget": self.config.epochs,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "generator_device": self.generator.device.type,
            "cache": None if self.cache is None else self.cache.values,
            "best_elbo": self.best_elbo,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "best_means": self.best_means,
        }, self.noise.get_state())

    def resume(self) -> None:
        path = self.checkpoint_path
        state = load_checkpoint(path, self.identity(), added_settings=SETTINGS_ADDED_SINCE_FIRST_RELEASE,
                                advice=self._resume_advice(), canonical=canonical_identity,
                                structure=CHECKPOINT_STRUCTURE)
        if state["epoch"] > self.config.epochs:
            raise ValueError(f"{self.out} holds a run already trained {state['epoch']} epochs, more than "
                             f"epochs={self.config.epochs}; ask for at least {state['epoch']} epochs to resume or extend it")
        own_noise = self.own_rank_state(state, path)
        self._check_means(state, path)
        with restoring(path):
            restore_random_stream(self.generator, state["generator"], state.get("generator_device"), self.out)
            if own_noise is not None:
                restore_random_stream(self.noise, own_noise, state.get("generator_device"), self.out)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.cache is not None:
                self.cache.refresh(state["cache"])
            # Rewritten below as the best bundle: a crash may have interrupted its last save.
            best = copy.deepcopy(self.model)
            best.load_state_dict(state["best_state"])
        if self.cache is not None and self.config.cached_trunk:  # the checkpointed model's features, as the epoch's
            self.trunk_features = self.model.encode_features(self.train_images)  # end computed them
        self.epoch = state["epoch"]
        self.best_elbo, self.best_epoch = state["best_elbo"], state["best_epoch"]
        self.best_state, self.best_means = state["best_state"], state["best_means"]
        if self.writes_files:
            self._truncate_log()
            best.set_exemplars(self.exemplars, self.train_labels, means=self.best_means)
            save_generator(best, self.out, self.config, self.data_checksum, provenance=self._provenance())

    def _check_means(self, state: dict[str, Any], path: Path) -> None:
        """Refuse saved exemplar means of another shape than this run's: copied into place, they would broadcast."""
        shape = (len(self.exemplars), self.model_config.latent_dim)
        saved = {"best_means": state["best_means"], "cache": state["cache"] if self.cache is not None else None}
        wrong = [f"{key} is {list(value.shape)}" for key, value in saved.items()
                 if value is not None and tuple(value.shape) != shape]
        if self.cache is not None and state["cache"] is None:
            wrong.append("cache is missing")
        if wrong:
            raise CheckpointError(f"{path} holds exemplar means of the wrong shape ({', '.join(wrong)}; this run has "
                                  f"{list(shape)}): it is damaged, or not one exaug wrote; move it away to start "
                                  "this run afresh")

    def start(self) -> None:
        """Begin in a folder with no checkpoint. Files a run with these settings wrote before it was killed,
        ahead of its first checkpoint, are its own and are replaced; any other run's files are refused."""
        existing = [name for name in RUN_FILES if (self.out / name).exists()]
        marker = self.out / RUN_MARKER
        own = marker.exists() and marker.read_text() == self._marker_text()
        if existing and not own:
            raise FileExistsError(
                f"{self.out} already holds {', '.join(existing)} but no checkpoint to resume from, and they are not "
                "the files of a run with these settings; choose an empty output directory so nothing there is "
                "overwritten"
            )
        for name in existing:  # a kill before the first checkpoint: the run starts over, as it would have
            (self.out / name).unlink()
        atomic_write_text(marker, self._marker_text())

    def _marker_text(self) -> str:
        """What marks a folder's files as this run's: the sha256 of its identity (settings and data)."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest() + "\n"

    def keep_record(self, record: dict[str, Any]) -> None:
        if not self.writes_files:
            return
        with open(self.out / LOG_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _truncate_log(self) -> None:
        """Drop log lines of epochs after the checkpoint, which will be trained again, and a line cut short by a kill."""
        if not (self.out / LOG_FILE).exists():
            return
        kept = [record for record in training_log(self.out) if record.get("epoch", 0) <= self.epoch]
        atomic_write_text(self.out / LOG_FILE, "".join(json.dumps(record) + "\n" for record in kept))
