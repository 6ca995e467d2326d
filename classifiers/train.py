"""fit_classifier: the §5.4 recipe, with or without Exemplar VAE augmentation, resumable per epoch.

Without a generator each step minimises label-smoothed cross-entropy on a real batch.
With one, every real image gets a synthetic twin made on the fly (:class:`exaug.MixedBatchLoader`)
and the step minimises eq. 16. The test error reported is the final epoch's, as in the paper.

Under ``torch.distributed`` each rank trains on its shard of every epoch (a ``DistributedSampler``), the model is
wrapped in ``DistributedDataParallel`` so gradients are averaged over ranks, and ``batch_size`` is per rank: N ranks
at batch B step as one process at batch N·B. Rank 0 scores the test set and hands the error to every rank.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler
from tqdm.auto import tqdm

from exaug.atomic import atomic_write_text
from exaug.checkpoint import (CHECKPOINT_FILE, CheckpointError, load_checkpoint, restore_random_stream, restoring,
                              tensor_digest)
from exaug.data import dataset_labels, describe_labels
from exaug.distributed import ProcessGroup, data_parallel, decided_by_writer, rank_seed, summed, training_device
from exaug.epochs import EpochCallback, EpochLog, EpochTrainer
from exaug.mixed import MixedBatchLoader, mixed_loss
from exaug.models import ExemplarGenerator

from .config import ClassifierConfig
from .factory import create_classifier
from .inputs import check_evaluation_set, describe_task

RESULT_FILE = "result.json"
# Recipe fields newer than some checkpoints, with the value those checkpoints were trained under.
SETTINGS_ADDED_SINCE_FIRST_RELEASE = {"config": {"noise_scale": 1.0, "dtype": "float32"}}
# Settings that change how a run executes, not what it learns: a run may resume under other values.
EXECUTION_SETTINGS = ("workers", "device")
# What a classifier checkpoint holds, by type (checked before any of it is used).
CHECKPOINT_STRUCTURE = {"epoch": int, "model": dict, "optimizer": dict, "schedule": dict, "shuffle": torch.Tensor,
                        "torch_rng": torch.Tensor, "history": list}


def fit_classifier(train: Dataset, test: Dataset, config: ClassifierConfig | None = None,
                   generator: ExemplarGenerator | str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                   progress: bool = True, log: EpochLog | None = None,
                   callbacks: Iterable[EpochCallback] = ()) -> dict[str, Any]:
    """Train a classifier on ``train`` and report its error on ``test`` after every epoch.

    Args:
        train: dataset of ``(image, label)``; images float in [0, 1] (C×H×W).
        test: dataset the error is measured on (the test set, or validation when tuning).
        config: the recipe (defaults to the paper's, λ = 0.4).
        generator: an ExemplarGenerator, bundle directory or bundled name for augmentation; None for LS alone.
        out: directory for ``checkpoint.pt`` (resumed when present) and ``result.json``; None keeps nothing.
            A checkpoint resumes only with the same recipe (workers and device may change, within the device
            kind the run's random streams were saved on), the same generator (by file hashes, or by weights for
            an in-memory one) and the same data (sizes and labels of both sets, read from their label lists, or
            item by item for a dataset without one).
            While training, another run into the same directory is refused (:class:`exaug.run_lock.RunDirectoryBusy`).
        progress: show progress bars on stderr.
        log: called with each epoch's record (default: print it as a JSON line).
        callbacks: each called with the trainer (its ``model``, ``epoch``) and each epoch's record once that
            epoch's checkpoint is on disk; an exception raised in one stops the run there, and the same call
            later resumes it.

    Returns:
        ``{"test_error": final-epoch error in %, "history": [...], "config": ..., ...}``
    """
    config = config or ClassifierConfig()
    # Bad data or a misnamed generator is refused before the output folder is made or locked.
    train_labels = dataset_labels(train)
    task = describe_task(train, train_labels)
    check_evaluation_set(test, task[0])
    identity = {"config": {key: value for key, value in config.to_dict().items() if key not in EXECUTION_SETTINGS},
                "generator": _describe_generator(generator), "train_size": len(train),
                "data": {"train": describe_labels(train_labels), "test": describe_labels(dataset_labels(test))}}
    trainer = ClassifierTrainer(train, test, config, generator, identity, task, None if out is None else Path(out))
    trainer.fit(progress=progress, log=log, callbacks=callbacks)
    return trainer.result()


class ClassifierTrainer(EpochTrainer):
    """One classifier run: the model, SGD with its linear decay, the shuffling and twin-noise streams, the history."""

    def __init__(self, train: Dataset, test: Dataset, config: ClassifierConfig,
                 generator: ExemplarGenerator | str | os.PathLike | None, identity: dict[str, Any],
                 task: tuple[tuple[int, ...], int], out: Path | None) -> None:
        super().__init__(out, config.epochs)
        self.config, self.generator_source, self._identity = config, generator, identity
        self.train_size, self.test_size = len(train), len(test)
        self.device = device = training_device(config.device, self.group)
        input_shape, num_classes = task
        torch.manual_seed(config.seed)
        self.model = create_classifier(config.model, input_shape, num_classes, config.hidden)
        self.model.to(device, config.torch_dtype)
        # What a step runs: under DDP the wrapper averages each step's gradients over the ranks.
        self.stepped = self.model if self.group is None else data_parallel(self.model, device)
        if self.group is not None:  # the weights start alike on every rank; dropout differs by rank
            torch.manual_seed(rank_seed(config.seed, self.group.rank))
        # The sampler owns the shuffling stream (saved in checkpoints); worker seeds come from a second
        # stream, so starting workers again after a resume cannot shift the order of batches.
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.worker_seeds = torch.Generator().manual_seed(config.seed + 1)
        self.loader = DataLoader(train, batch_size=config.batch_size,
                                 sampler=_sampler(train, self.shuffle, config.seed, self.group),
                                 num_workers=config.workers,
                                 generator=self.worker_seeds, persistent_workers=config.workers > 0,
                                 pin_memory=device.type == "cuda")
        self.mixed = None
        if generator is not None:
            self.mixed = MixedBatchLoader(self.loader, generator, device=device, seed=config.seed,
                                          noise_scale=config.noise_scale)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.learning_rate, momentum=config.momentum)
        self.schedule = torch.optim.lr_scheduler.LinearLR(self.optimizer, start_factor=1.0,
                                                          end_factor=config.final_lr_factor,
                                                          total_iters=config.epochs * len(self.loader))
        self.test_loader = DataLoader(test, batch_size=1000, shuffle=False)
        self.history: list[dict[str, Any]] = []

    def resume(self) -> None:
        # Checkpoints from before the data were recorded are taken to hold the data given now.
        older_checkpoints = {**SETTINGS_ADDED_SINCE_FIRST_RELEASE, "data": self._identity["data"]}
        path = self.checkpoint_path
        state = load_checkpoint(path, self._identity, added_settings=older_checkpoints, structure=CHECKPOINT_STRUCTURE)
        own_streams = self.own_rank_state(state, path)
        history = state["history"]
        if len(history) != state["epoch"] or not all(isinstance(record, dict) and "test_error" in record
                                                     for record in history):
            raise CheckpointError(f"{path} holds {state['epoch']} epochs but not a record of each: it is damaged, or "
                                  "not one exaug wrote; move it away to start this run afresh")
        streams = state if own_streams is None else own_streams
        with restoring(path):
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.shuffle.set_state(state["shuffle"])
            torch.set_rng_state(streams["torch_rng"])
            if self.device.type == "cuda" and streams.get("cuda_rng") is not None:  # dropout etc. in timm models on GPU
                torch.cuda.set_rng_state_all(streams["cuda_rng"])
            if self.mixed is not None:  # the twins' noise stream lives on the training device
                restore_random_stream(self.mixed.random, streams["mixed_rng"], streams.get("mixed_rng_device"),
                                      self.out)
        self.history, self.epoch = history, state["epoch"]
        _skip_worker_seeds(self.worker_seeds, self.epoch)

    def train_epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        if isinstance(self.loader.sampler, DistributedSampler):
            self.loader.sampler.set_epoch(epoch)
        total, count = _train_steps(self.stepped, self.mixed or self.loader, self.optimizer, self.schedule,
                                    self.config, self.device, progress)
        if self.group is not None:
            total, count = summed(torch.tensor([total, count], dtype=torch.float64)).tolist()
        test_error = decided_by_writer(self.group, lambda: classification_error(self.model, self.test_loader,
                                                                                self.device))
        return {"train_loss": total / count, "lr": self.schedule.get_last_lr()[0], "test_error": test_error}

    def keep_record(self, record: dict[str, Any]) -> None:
        self.history.append(record)

    def identity(self) -> dict[str, Any]:
        return self._identity

    def state(self) -> dict[str, Any]:
        streams = self._random_streams()
        # Under DDP each rank's own streams go in too, restored by the same rank.
        return self.with_rank_states({"epoch": self.epoch, "model": self.model.state_dict(),
                                      "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                                      "shuffle": self.shuffle.get_state(), **streams, "history": self.history}, streams)

    def _random_streams(self) -> dict[str, Any]:
        """This process's streams of dropout and twin noise."""
        mixed = self.mixed
        return {"torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
                "mixed_rng": None if mixed is None else mixed.random.get_state(),
                "mixed_rng_device": None if mixed is None else mixed.random.device.type}

    def finish(self) -> None:
        if self.out is not None:
            atomic_write_text(self.out / RESULT_FILE, json.dumps(self.result(), indent=2) + "\n")

    def result(self) -> dict[str, Any]:
        """The run's report: the final epoch's test error, the recipe, the generator and the whole history."""
        generator = self.generator_source
        return {"test_error": self.history[-1]["test_error"], "epochs": self.config.epochs,
                "config": self.config.to_dict(),
                "generator": None if generator is None else str(generator) if not isinstance(generator, ExemplarGenerator)
                else "in-memory", "generator_identity": self._identity["generator"], "train_size": self.train_size,
                "test_size": self.test_size, "history": self.history}


def _train_steps(model: torch.nn.Module, batches: Any, optimizer: torch.optim.Optimizer,
                 schedule: torch.optim.lr_scheduler.LRScheduler, config: ClassifierConfig, device: torch.device,
                 progress: bool) -> tuple[float, int]:
    """One epoch of steps; returns the summed loss (weighted by batch size) and the number of images."""
    model.train()
    # The loss is summed on the device and read once per epoch: a read per step would stall a GPU.
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    # tqdm.auto calls iter() on what it wraps when built, and again when looped over: handed a DataLoader,
    # that would start each epoch twice (workers load batches that are thrown away, the sampler shuffles twice).
    for batch in tqdm(iter(batches), total=len(batches), desc="steps", leave=False, disable=not progress,
                      file=sys.stderr):
        if isinstance(batch, tuple) and hasattr(batch, "synthetic"):
            # One forward pass over real and synthetic images together; the MLP has no batch statistics.
            logits = model(torch.cat([batch.real, batch.synthetic]).to(config.torch_dtype))
            logits_real, logits_syn = logits.split(batch.real.shape[0])
            loss = mixed_loss(logits_real, logits_syn, batch.target, config.lam, config.label_smoothing)
            size = batch.real.shape[0]
        else:
            images = batch[0].to(device, config.torch_dtype, non_blocking=True)
            target = batch[1].to(device, non_blocking=True)
            loss = F.cross_entropy(model(images), target, label_smoothing=config.label_smoothing)
            size = images.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.detach() * size
        count += size
    return total.item(), count


def _sampler(train: Dataset, shuffle: torch.Generator, seed: int, group: ProcessGroup | None) -> Sampler:
    """Alone: a random order from the run's shuffling stream; under DDP: this rank's shard of a permutation shared
    by all ranks, from ``seed`` and the epoch."""
    if group is None:
        return RandomSampler(train, generator=shuffle)
    return DistributedSampler(train, num_replicas=group.world_size, rank=group.rank, shuffle=True, seed=seed)



@torch.no_grad()
def classification_error(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> float:
    """Error rate in % of ``model`` over ``loader``'s ``(images, labels)``, images cast to the model's dtype."""
    model.eval()
    dtype = next(model.parameters()).dtype
    wrong = seen = 0
    for images, target in loader:
        predicted = model(images.to(device, dtype)).argmax(1)
        wrong += (predicted != target.to(device)).sum().item()
        seen += target.shape[0]
    return 100.0 * wrong / seen


def _skip_worker_seeds(worker_seeds: torch.Generator, epochs: int) -> None:
    """Advance the loader's worker-seed stream past the seeds of ``epochs`` finished epochs.

    Persistent workers draw their base seed once, when they start; without this a resumed run's
    workers would replay the random numbers (random transforms) of the run's first epoch.
    Each draw matches the DataLoader's own (one int64 per iterator it starts).
    """
    for _ in range(epochs):
        torch.empty((), dtype=torch.int64).random_(generator=worker_seeds)


def _describe_generator(generator: ExemplarGenerator | str | os.PathLike | None) -> Any:
    """What a resumed run must match: the bundle's file hashes, however it is named (a rebuilt bundle is another
    generator), or for a generator object the sha256 of its weights."""
    if generator is None:
        return None
    if isinstance(generator, ExemplarGenerator):
        return {"weights_sha256": tensor_digest(generator.state_dict().items())}
    from exaug.bundle import read_bundle_config

    return {"sha256": read_bundle_config(generator)["sha256"]}
