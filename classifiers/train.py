"""fit_classifier: the §5.4 recipe, with or without Exemplar VAE augmentation, resumable per epoch.

Without a generator each step minimises label-smoothed cross-entropy on a real batch.
With one, every real image gets a synthetic twin made on the fly (:class:`exaug.MixedBatchLoader`)
and the step minimises eq. 16. The test error reported is the final epoch's, as in the paper.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, TensorDataset
from tqdm.auto import tqdm

from exaug.atomic import atomic_write_text
from exaug.checkpoint import load_checkpoint, restore_random_stream, save_checkpoint
from exaug.device import resolve_device
from exaug.mixed import MixedBatchLoader, mixed_loss
from exaug.run_lock import run_directory_lock
from exaug.vae import ExemplarVAE

from .config import ClassifierConfig
from .factory import create_classifier

CHECKPOINT_FILE = "checkpoint.pt"
RESULT_FILE = "result.json"
# Recipe fields newer than some checkpoints, with the value those checkpoints were trained under.
SETTINGS_ADDED_SINCE_FIRST_RELEASE = {"config": {"noise_scale": 1.0, "dtype": "float32"}}
# Settings that change how a run executes, not what it learns: a run may resume under other values.
EXECUTION_SETTINGS = ("workers", "device")


def fit_classifier(train: Dataset, test: Dataset, config: ClassifierConfig | None = None,
                   generator: ExemplarVAE | str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                   progress: bool = True, log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train a classifier on ``train`` and report its error on ``test`` after every epoch.

    Args:
        train: dataset of ``(image, label)``; images float in [0, 1] (C×H×W).
        test: dataset the error is measured on (the test set, or validation when tuning).
        config: the recipe (defaults to the paper's, λ = 0.4).
        generator: an ExemplarVAE, bundle directory or bundled name for augmentation; None for LS alone.
        out: directory for ``checkpoint.pt`` (resumed when present) and ``result.json``; None keeps nothing.
            A checkpoint resumes only with the same recipe (workers and device may change, within the device
            kind the run's random streams were saved on), the same generator (by file hashes, or by weights for
            an in-memory one) and the same data (sizes and labels of both sets, read from their label lists, or
            item by item for a dataset without one).
            While training, another run into the same directory is refused (:class:`exaug.run_lock.RunDirectoryBusy`).
        progress: show progress bars on stderr.
        log: called with each epoch's record (default: print it as a JSON line).

    Returns:
        ``{"test_error": final-epoch error in %, "history": [...], "config": ..., ...}``
    """
    config = config or ClassifierConfig()
    # Bad data or a misnamed generator is refused before the output folder is made or locked.
    train_labels = _labels(train)
    task = _describe(train, train_labels)
    _check_evaluation_set(test, task[0])
    identity = {"config": {key: value for key, value in config.to_dict().items() if key not in EXECUTION_SETTINGS},
                "generator": _describe_generator(generator), "train_size": len(train),
                "data": {"train": _describe_labels(train_labels), "test": _describe_labels(_labels(test))}}
    if out is None:
        return _fit(train, test, config, generator, identity, task, None, progress, log)
    with run_directory_lock(out):
        return _fit(train, test, config, generator, identity, task, Path(out), progress, log)


def _fit(train: Dataset, test: Dataset, config: ClassifierConfig, generator: ExemplarVAE | str | os.PathLike | None,
         identity: dict[str, Any], task: tuple[tuple[int, ...], int], out: Path | None, progress: bool,
         log: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    device = resolve_device(config.device)
    input_shape, num_classes = task
    torch.manual_seed(config.seed)
    model = create_classifier(config.model, input_shape, num_classes, config.hidden).to(device, config.torch_dtype)
    # The sampler owns the shuffling stream (saved in checkpoints); worker seeds come from a second
    # stream, so starting workers again after a resume cannot shift the order of batches.
    shuffle = torch.Generator().manual_seed(config.seed)
    worker_seeds = torch.Generator().manual_seed(config.seed + 1)
    loader = DataLoader(train, batch_size=config.batch_size, sampler=RandomSampler(train, generator=shuffle),
                        num_workers=config.workers, generator=worker_seeds,
                        persistent_workers=config.workers > 0, pin_memory=device.type == "cuda")
    mixed = None
    if generator is not None:
        mixed = MixedBatchLoader(loader, generator, device=device, seed=config.seed, noise_scale=config.noise_scale)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum)
    total_steps = config.epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=config.final_lr_factor,
                                                 total_iters=total_steps)
    history: list[dict[str, Any]] = []
    first_epoch = 1
    if out is not None and (out / CHECKPOINT_FILE).exists():
        # Checkpoints from before the data were recorded are taken to hold the data given now.
        older_checkpoints = {**SETTINGS_ADDED_SINCE_FIRST_RELEASE, "data": identity["data"]}
        state = load_checkpoint(out / CHECKPOINT_FILE, identity, added_settings=older_checkpoints)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:  # dropout etc. in timm models on the GPU
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if mixed is not None:  # the twins' noise stream lives on the training device
            restore_random_stream(mixed.random, state["mixed_rng"], state.get("mixed_rng_device"), out)
        history, first_epoch = state["history"], state["epoch"] + 1
        _skip_worker_seeds(worker_seeds, first_epoch - 1)
    log = log or (lambda record: tqdm.write(json.dumps(record), file=sys.stdout))
    test_loader = DataLoader(test, batch_size=1000, shuffle=False)
    for epoch in tqdm(range(first_epoch, config.epochs + 1), desc="epochs", disable=not progress,
                      initial=first_epoch - 1, total=config.epochs, file=sys.stderr):
        started = time.perf_counter()
        if mixed is not None:
            mixed.set_epoch(epoch)
        train_loss = _train_epoch(model, mixed or loader, optimizer, schedule, config, device, progress)
        record = {"epoch": epoch, "train_loss": train_loss, "lr": schedule.get_last_lr()[0],
                  "test_error": classification_error(model, test_loader, device),
                  "seconds": round(time.perf_counter() - started, 3)}
        history.append(record)
        log(record)
        if out is not None:
            save_checkpoint(out / CHECKPOINT_FILE, identity, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "shuffle": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                "mixed_rng": None if mixed is None else mixed.random.get_state(),
                "mixed_rng_device": None if mixed is None else mixed.random.device.type, "history": history})
    result = {"test_error": history[-1]["test_error"], "epochs": config.epochs, "config": config.to_dict(),
              "generator": None if generator is None else str(generator) if not isinstance(generator, ExemplarVAE)
              else "in-memory", "generator_identity": identity["generator"], "train_size": len(train), "test_size": len(test),
              "history": history}
    if out is not None:
        atomic_write_text(out / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result


def _train_epoch(model: torch.nn.Module, batches: Any, optimizer: torch.optim.Optimizer,
                 schedule: torch.optim.lr_scheduler.LRScheduler, config: ClassifierConfig, device: torch.device,
                 progress: bool) -> float:
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
    return total.item() / count


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


def _describe(dataset: Dataset, labels: torch.Tensor) -> tuple[tuple[int, ...], int]:
    """(C×H×W of one image, number of classes) of a labelled dataset whose labels are ``labels``."""
    if len(dataset) == 0:
        raise ValueError("the training set is empty")
    return _image_shape(dataset[0][0], "training"), _class_count(dataset, labels)


def _check_evaluation_set(dataset: Dataset, input_shape: tuple[int, ...]) -> None:
    """Refuse an empty evaluation set, or one whose images are not shaped like the training images."""
    if len(dataset) == 0:
        raise ValueError("the test (evaluation) set is empty")
    shape = _image_shape(dataset[0][0], "test")
    if shape != input_shape:
        raise ValueError(f"test images are {shape} but training images are {input_shape} (C×H×W); "
                         "give both sets the same transforms")


def _image_shape(image: Any, which: str) -> tuple[int, ...]:
    """C×H×W of one dataset image, after checking it is the float tensor the classifier takes."""
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"{which} images must be float C×H×W tensors in [0, 1]; got {type(image).__name__} "
                         f"{getattr(image, 'dtype', '')} {tuple(getattr(image, 'shape', ()))}: add v2.ToImage() "
                         "and v2.ToDtype(torch.float32, scale=True)")
    return tuple(image.shape)


def _class_count(dataset: Dataset, labels: torch.Tensor) -> int:
    """Number of classes: the dataset's class list when it has one, else the largest label + 1."""
    while isinstance(dataset, Subset):  # e.g. a random_split of an ImageFolder: the classes are the whole folder's
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)  # torchvision datasets, ImageFolder
    if classes is not None:
        return len(classes)
    return int(labels.max()) + 1


def _labels(dataset: Dataset) -> torch.Tensor:
    """Every label of a labelled dataset, in order: from its label list when it has one, else by reading
    each of its items once (slow: every image is loaded and transformed)."""
    listed = _listed_labels(dataset)
    if listed is not None:
        return listed
    return torch.as_tensor([dataset[i][1] for i in range(len(dataset))])


def _listed_labels(dataset: Dataset) -> torch.Tensor | None:
    """The labels of ``dataset`` from its label list, or None when it keeps none."""
    if isinstance(dataset, Subset):
        parent = _listed_labels(dataset.dataset)
        return None if parent is None else parent[torch.as_tensor(dataset.indices, dtype=torch.int64)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1]
    for name in ("labels", "targets"):  # exaug's ImageTensorDataset; torchvision datasets and ImageFolder
        labels = getattr(dataset, name, None)
        if labels is not None:
            return torch.as_tensor(labels)
    return None


def _describe_labels(labels: torch.Tensor) -> dict[str, Any]:
    """What identifies a data set to a resumed run: its size and the sha256 of its labels in order."""
    values = labels.detach().to("cpu", torch.int64).contiguous().numpy()
    return {"size": len(values), "labels_sha256": hashlib.sha256(values.tobytes()).hexdigest()}


def _describe_generator(generator: ExemplarVAE | str | os.PathLike | None) -> Any:
    """What a resumed run must match: the bundle's file hashes, however it is named (a rebuilt bundle is another
    generator), or for a generator object the sha256 of its weights."""
    if generator is None:
        return None
    if isinstance(generator, ExemplarVAE):
        digest = hashlib.sha256()
        for name, tensor in generator.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return {"weights_sha256": digest.hexdigest()}
    from exaug.bundle import read_bundle_config

    return {"sha256": read_bundle_config(generator)["sha256"]}
