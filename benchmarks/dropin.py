"""The drop-in grid: ExemplarAugment against the augmentations a torchvision / timm user already has.

One run trains one classifier (the paper's MLP 2×1024, the PyTorch MNIST example's CNN, or timm's
resnet18 with ``in_chans=1``) on one data regime with one augmentation, and writes ``result.json``.
Every epoch is checkpointed, so a killed run resumes where it stopped; runs are separate processes,
so a plan runs several at once.

    python benchmarks/dropin.py plan val --out benchmarks/results/dropin/plan-val.json
    python benchmarks/dropin.py grid benchmarks/results/dropin/plan-val.json --jobs 2
    python benchmarks/dropin.py plan test --out benchmarks/results/dropin/plan-test.json   # knobs picked on val
    python benchmarks/dropin.py grid benchmarks/results/dropin/plan-test.json --jobs 2
    python benchmarks/dropin.py summary                                                    # prints the test rows
    python benchmarks/tables.py                                   # the docs' tables, docs/dropin.md among them

Fairness rules built in: every augmentation of a (dataset, model, regime) trains the same number of
epochs over the same real images with the same seed (the seed fixes the subset, the initial weights and
the shuffling); knobs are picked on validation (the last 10K training images) by ``plan test`` with a
fixed rule before any test run; test runs pair with "none" by seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import click
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import v2

from exaug import ExemplarAugment, ExemplarCollate, MixedBatchLoader, mixed_loss
from exaug.checkpoint import load_checkpoint, save_checkpoint
from exaug.classifiers import PermutationInvariantMLP
from exaug.data import balanced_subset_rows, load_split
from exaug.atomic import atomic_write_text

RESULTS = Path("benchmarks/results/dropin")
# Generators fitted on the low-data subsets (about 5 MB each, so kept out of git); rebuilt by ``fit-generators``.
GENERATORS = Path(os.environ.get("EXAUG_DROPIN_GENERATORS", "runs/dropin-generators"))
AUGMENTATIONS = ("none", "exemplar", "exemplar-append", "mixed", "affine", "trivialaugment", "mixup-cutmix",
                 "affine+exemplar", "affine+exemplar-append", "hflip", "hflip+exemplar-append",
                 "trivialaugment+exemplar-append")
CLASSIC = ("affine", "trivialaugment", "mixup-cutmix", "hflip")  # what a torchvision / timm user already has
# A horizontal flip keeps a garment's class but not a digit's: tried only where it is label-preserving.
FLIP_AUGMENTATIONS = ("hflip", "hflip+exemplar-append")
FLIP_INVARIANT_DATASETS = ("fashion-mnist",)
MODELS = ("mlp", "cnn", "resnet18")
# Which generator makes a run's twins.
GENERATOR_KINDS = {
    "bundled": "the package's generator (MLP VAE), which saw all 50K training images without labels",
    "subset": "an MLP VAE fitted on the run's own labelled subset alone (see fit-generators)",
    "hvae": "an HVAE fitted like the bundled one, on all 50K training images without labels, in GENERATORS/DATASET-hvae",
    "hvae-longer": "a later snapshot of that HVAE's run, trained longer, in GENERATORS/DATASET-hvae-longer",
}
# The knob each augmentation is tuned on, with the values tried on validation.
KNOBS: dict[str, tuple[str, tuple[float, ...]]] = {
    "exemplar": ("p", (0.25, 0.5, 1.0)),  # 1.0 is ExemplarAugment's default before this grid
    "exemplar-append": ("p", (0.5, 1.0)),
    "mixed": ("lam", (0.4, 0.7)),
    "affine+exemplar": ("p", (0.25,)),
    "affine+exemplar-append": ("p", (0.5, 1.0)),
    "hflip+exemplar-append": ("p", (0.5, 1.0)),
    "trivialaugment+exemplar-append": ("p", (0.5, 1.0)),
}


class ExampleCNN(nn.Module):
    """The network of the PyTorch MNIST example (examples/mnist/main.py): 2 conv, max-pool, 2 FC, dropout."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class RunSpec:
    """One classifier run of the grid; its fields are its identity (and its folder's name)."""

    dataset: str  # mnist | fashion-mnist
    model: str  # one of MODELS
    augmentation: str  # one of AUGMENTATIONS
    subset: str  # "all", "balanced<N>" (N/10 per class, drawn by seed) or "first<N>" (the first N images)
    split: str  # "val": train on the first 50K, score the last 10K; "test": score the test set
    seed: int
    epochs: int
    # one of GENERATOR_KINDS
    generator: str = "bundled"
    p: float = 0.5  # exemplar modes: share of images replaced, or of the batch given an appended twin
    lam: float = 0.4  # mixed: weight on real images in eq. 16
    noise_scale: float = 1.0
    # Provenance, not identity (it changes nothing a run computes, so it is not in the name): "" when the knobs
    # were picked on this regime's own validation runs, else the regime whose picks were reused (regime_label)
    knobs_from: str = ""

    def __post_init__(self) -> None:
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation {self.augmentation!r} is not one of {AUGMENTATIONS}")
        if self.model not in MODELS:
            raise ValueError(f"model {self.model!r} is not one of {MODELS}")
        if self.generator not in GENERATOR_KINDS:
            raise ValueError(f"generator {self.generator!r} must be one of {tuple(GENERATOR_KINDS)}")
        if self.generator == "subset" and not self.subset.startswith("balanced"):
            raise ValueError("a generator fitted on the subset needs a balanced<N> subset")
        if self.split not in ("val", "test"):
            raise ValueError(f"split {self.split!r} must be val or test")
        subset_size(self.subset)

    @property
    def uses_generator(self) -> bool:
        return "exemplar" in self.augmentation or self.augmentation == "mixed"

    @property
    def knob(self) -> str:
        """The tuned setting in words, for tables: "p 0.5", "λ 0.4" or ""."""
        if self.augmentation == "mixed":
            return f"λ {self.lam:g}"
        if self.uses_generator:
            return f"p {self.p:g}" + ("" if self.noise_scale == 1.0 else f", s {self.noise_scale:g}")
        return ""

    def name(self) -> str:
        generator = f"-{self.generator}" if self.uses_generator else ""
        knobs = "" if not self.uses_generator else (
            f"-lam{self.lam:g}" if self.augmentation == "mixed" else f"-p{self.p:g}")
        knobs += "" if self.noise_scale == 1.0 else f"-s{self.noise_scale:g}"
        return (f"{self.dataset}/{self.split}/{self.model}-{self.subset}-e{self.epochs}/"
                f"{self.augmentation}{knobs}{generator}/seed{self.seed}")

    def regime(self) -> str:
        """The model, data and budget, as in the name: "mnist/cnn-balanced1000-e100"."""
        return regime_label(self.dataset, self.model, self.subset, self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def regime_label(dataset: str, model: str, subset: str, epochs: int) -> str:
    return f"{dataset}/{model}-{subset}-e{epochs}"


def subset_size(subset: str) -> int | None:
    """N of "balancedN" / "firstN", None for "all"; anything else is refused."""
    if subset == "all":
        return None
    for prefix in ("balanced", "first"):
        if subset.startswith(prefix) and subset[len(prefix):].isdigit() and int(subset[len(prefix):]) > 0:
            return int(subset[len(prefix):])
    raise ValueError(f"subset {subset!r} must be 'all', 'balanced<N>' or 'first<N>'")


# ----------------------------------------------------------------------------------------------- data
class LabelledImages(Dataset):
    """uint8 images 1×28×28 with int labels, served untransformed: every augmentation happens in the collate."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def training_images(spec: RunSpec, root: str | None = None) -> LabelledImages:
    """The labelled images a run trains on. Subsets come from the first 50K training images under both splits
    (so tuning and testing train on the same images); "all" is 50K for val and 60K for test, as in the paper."""
    pool = load_split(spec.dataset, "trainval" if spec.split == "test" and spec.subset == "all" else "train", root)
    size = subset_size(spec.subset)
    if size is None:
        rows = torch.arange(len(pool))
    elif spec.subset.startswith("first"):
        rows = torch.arange(size)
    else:
        rows = balanced_subset_rows(pool.labels, size, spec.seed)
    return LabelledImages(pool.images[rows], pool.labels[rows])


def generator_source(spec: RunSpec) -> str | Path:
    """The bundled name or bundle folder of the generator that makes this run's twins."""
    if spec.generator == "bundled":
        return spec.dataset
    if spec.generator == "subset":
        return subset_generator_dir(spec)
    folder = GENERATORS / f"{spec.dataset}-{spec.generator}"
    if not folder.is_dir():
        architecture = spec.generator.split("-")[0]
        raise FileNotFoundError(f"{folder} holds no generator; train one there first, e.g. exaug fit-generator "
                                f"--arch {architecture} --dataset {spec.dataset} --out {folder}")
    return folder


def subset_generator_dir(spec: RunSpec) -> Path:
    """Where ``fit-generators`` writes the generator fitted on this run's subset alone."""
    return GENERATORS / f"{spec.dataset}-{spec.subset}-seed{spec.seed}"


def evaluation_images(spec: RunSpec, root: str | None = None) -> torch.utils.data.TensorDataset:
    split = load_split(spec.dataset, spec.split, root)
    return torch.utils.data.TensorDataset(split.images.float() / 255, split.labels)


def classic_transform(augmentation: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The per-image classic augmentation of a run, on uint8 1×28×28 (None: no classic part)."""
    if augmentation.startswith("affine"):
        return v2.RandomAffine(degrees=10, translate=(0.1, 0.1))
    if augmentation.startswith("hflip"):
        return v2.RandomHorizontalFlip()
    if augmentation.startswith("trivialaugment"):
        return v2.TrivialAugmentWide()
    return None


def make_loader(spec: RunSpec, train: LabelledImages, batch_size: int, shuffle: torch.Generator,
                generator: Any) -> DataLoader:
    """A DataLoader of (float images, labels) with the run's augmentation in its collate_fn."""
    classic = classic_transform(spec.augmentation)
    to_float = v2.ToDtype(torch.float32, scale=True)
    per_image = to_float if classic is None else v2.Compose([classic, to_float])
    if "exemplar" in spec.augmentation:
        augment = ExemplarAugment(generator, p=spec.p, noise_scale=spec.noise_scale)
        collate = ExemplarCollate(augment, append=spec.augmentation.endswith("append"), transform=per_image)
    else:
        collate = _then(default_collate, per_image)
    return DataLoader(train, batch_size=batch_size, shuffle=True, generator=shuffle, collate_fn=collate)


def _then(collate: Callable[[Any], Any], per_image: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Any], Any]:
    def collate_and_transform(samples: Any) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = collate(samples)
        return torch.stack([per_image(image) for image in images]), labels
    return collate_and_transform


# -------------------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """How a model family is usually trained; every augmentation of that family gets the same one."""

    batch_size: int
    label_smoothing: float


RECIPES = {
    "mlp": Recipe(batch_size=100, label_smoothing=0.1),  # paper §5.4: SGD 0.9, η 0.1 → η/100 linearly
    "cnn": Recipe(batch_size=64, label_smoothing=0.0),  # PyTorch MNIST example: Adadelta 1.0, StepLR γ 0.7
    "resnet18": Recipe(batch_size=64, label_smoothing=0.1),  # timm-style: AdamW 1e-3, wd 0.05, cosine
}


def build_model(name: str) -> nn.Module:
    if name == "mlp":
        return PermutationInvariantMLP(784, 10, (1024, 1024))
    if name == "cnn":
        return ExampleCNN()
    import timm

    return timm.create_model(name, pretrained=False, num_classes=10, in_chans=1)


def build_optimizer(spec: RunSpec, model: nn.Module, steps_per_epoch: int
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, bool]:
    """(optimizer, schedule, whether the schedule steps per batch rather than per epoch)."""
    total = spec.epochs * steps_per_epoch
    if spec.model == "mlp":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return optimizer, torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.01, total_iters=total), True
    if spec.model == "cnn":
        optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        # The example decays by 0.7 per epoch over 14 epochs; over other budgets the same overall decay as its
        # 10-epoch run (0.7^10) is spread over the run's epochs, so no budget ends with a vanished learning rate.
        gamma = 0.7 ** (10 / spec.epochs) if spec.epochs > 10 else 0.7
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma), False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True


# ---------------------------------------------------------------------------------------------- a run
def run(spec: RunSpec, out: Path, root: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one run (resuming its checkpoint in ``out``) and write ``out/result.json``."""
    result_file = out / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    train, evaluation = training_images(spec, root), evaluation_images(spec, root)
    recipe = RECIPES[spec.model]
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)  # timm's Mixup draws from numpy's global stream
    model = build_model(spec.model)
    generator, provenance = None, None
    if spec.uses_generator:
        from exaug.bundle import bundle_provenance
        from exaug.pretrained import load_generator

        source = generator_source(spec)
        generator, provenance = load_generator(source), bundle_provenance(source)
    shuffle = torch.Generator().manual_seed(spec.seed)
    loader = make_loader(spec, train, recipe.batch_size, shuffle, generator)
    mixed = MixedBatchLoader(loader, generator, seed=spec.seed, noise_scale=spec.noise_scale) \
        if spec.augmentation == "mixed" else None
    optimizer, schedule, per_batch = build_optimizer(spec, model, len(loader))
    mixup = None
    if spec.augmentation == "mixup-cutmix":
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=recipe.label_smoothing, num_classes=10)
    # a checkpoint resumes only with the generator snapshot it started with
    identity = {"spec": spec.to_dict(), "train_size": len(train), "generator_provenance": provenance}
    checkpoint = out / "checkpoint.pt"
    history: list[dict[str, Any]] = []
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(_numpy_state_from_tensors(state["numpy_rng"]))
        if mixed is not None:
            mixed.random.set_state(state["mixed_rng"])
        history = state["history"]
    eval_loader = DataLoader(evaluation, batch_size=1000)
    for epoch in range(len(history) + 1, spec.epochs + 1):
        started = time.perf_counter()
        model.train()
        total_loss, seen = 0.0, 0
        for images, labels in _batches(loader, mixed):
            loss = _loss(model, images, labels, spec, recipe, mixup)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if per_batch:
                schedule.step()
            total_loss += loss.item() * labels.shape[0]
            seen += labels.shape[0]
        if not per_batch:
            schedule.step()
        record = {"epoch": epoch, "train_loss": total_loss / seen, "seconds": round(time.perf_counter() - started, 2)}
        # Scored and checkpointed 5 times a run: scoring 10K images every epoch would cost a 1K-image run more
        # than its training, and a resnet18 checkpoint every epoch is 130 MB written.
        if epoch % max(1, spec.epochs // 5) == 0 or epoch == spec.epochs:
            record[f"{spec.split}_error"] = error(model, eval_loader)
            history.append(record)
            log(json.dumps(record))
            save_checkpoint(checkpoint, identity, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "shuffle": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": _numpy_state_as_tensors(), "mixed_rng": None if mixed is None else mixed.random.get_state(),
                "history": history})
        else:
            history.append(record)
    result = {"spec": spec.to_dict(), "error": history[-1][f"{spec.split}_error"], "train_size": len(train),
              "seconds": round(sum(r["seconds"] for r in history), 1), "torch_threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "generator_provenance": provenance,
              "history": history}
    atomic_write_text(result_file, json.dumps(result, indent=1) + "\n")
    checkpoint.unlink()
    return result


def _numpy_state_as_tensors() -> dict[str, Any]:
    """numpy's global stream state in types a ``weights_only`` checkpoint load accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_tensors(state: dict[str, Any]) -> tuple:
    return (state["kind"], state["keys"].numpy().astype(np.uint32), state["position"], state["has_gauss"],
            state["cached"])


def _batches(loader: DataLoader, mixed: MixedBatchLoader | None) -> Iterable[tuple[torch.Tensor, ...]]:
    """(images, labels) batches, or for the mixed loader (real, synthetic, labels)."""
    if mixed is None:
        yield from loader
        return
    for batch in mixed:
        yield torch.stack([batch.real, batch.synthetic]), batch.target


def _loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, spec: RunSpec, recipe: Recipe,
          mixup: Any) -> torch.Tensor:
    if spec.augmentation == "mixed":  # images: 2×B×C×H×W, real then synthetic, one forward pass
        logits = model(images.flatten(0, 1))
        logits_real, logits_syn = logits.split(labels.shape[0])
        return mixed_loss(logits_real, logits_syn, labels, spec.lam, recipe.label_smoothing)
    if mixup is not None and images.shape[0] % 2 == 0:  # timm's Mixup pairs images: an odd last batch goes plain
        images, soft = mixup(images, labels)
        return torch.sum(-soft * F.log_softmax(model(images), dim=-1), dim=-1).mean()
    return F.cross_entropy(model(images), labels, label_smoothing=recipe.label_smoothing)


@torch.no_grad()
def error(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    wrong = sum((model(images).argmax(1) != labels).sum().item() for images, labels in loader)
    return 100.0 * wrong / len(loader.dataset)


# ---------------------------------------------------------------------------------------------- plans
STOCK_CNN = [("first10000", 1), ("first10000", 10)]  # the stock-CNN case: 1 and 10 epochs on 10K
# Regimes cheap enough to tune on three validation seeds; one epoch of Adadelta is too noisy for one.
CHEAP_ENOUGH_FOR_THREE_VALIDATION_SEEDS = {("cnn", "first10000", 1)}
LOW_DATA = {"mlp": 100, "cnn": None, "resnet18": None}  # None: epochs chosen so each run sees 100K images


def low_data_epochs(model: str, size: int) -> int:
    return LOW_DATA[model] or max(1, 100_000 // size)


def validation_plan(dataset: str, sizes: Iterable[int] = (1000, 5000), generator: str = "bundled") -> list[RunSpec]:
    """Every setting tried on validation (seed 0): each augmentation at each knob value, per model and regime.

    With another generator than the bundled one, only the low-data runs that use a generator (the others do
    not depend on the generator and are in the bundled plan)."""
    regimes = [("cnn", subset, epochs) for subset, epochs in STOCK_CNN] \
        if dataset == "mnist" and generator == "bundled" else []
    regimes += [(model, f"balanced{size}", low_data_epochs(model, size)) for size in sizes for model in MODELS]
    specs = []
    for model, subset, epochs in regimes:
        for augmentation in AUGMENTATIONS:
            if augmentation in FLIP_AUGMENTATIONS and dataset not in FLIP_INVARIANT_DATASETS:
                continue
            base = RunSpec(dataset, model, augmentation, subset, "val", 0, epochs, generator=generator)
            if generator != "bundled" and not base.uses_generator:
                continue
            knob, values = KNOBS.get(augmentation, (None, (None,)))
            seeds = (0, 1, 2) if (model, subset, epochs) in CHEAP_ENOUGH_FOR_THREE_VALIDATION_SEEDS else (0,)
            specs += [dataclasses.replace(base, seed=seed, **({} if knob is None else {knob: value}))
                      for value in values for seed in seeds]
    return specs


def pick_on_validation(results: list[dict[str, Any]]) -> dict[tuple, RunSpec]:
    """The rule, fixed before any test run: per (dataset, model, subset, epochs, augmentation, generator),
    the knob value with the lowest final-epoch validation error, averaged over the validation seeds run
    (seed 0; seeds 0–2 where a run is cheap enough); a tie goes to the milder setting (the smaller p,
    the larger λ)."""
    best: dict[tuple, tuple[tuple[float, float], RunSpec]] = {}
    for spec, error in validation_errors(results).items():
        mildness = spec.p if spec.augmentation != "mixed" else -spec.lam
        score = (error, mildness)
        key = (spec.dataset, spec.model, spec.subset, spec.epochs, spec.augmentation, spec.generator)
        if key not in best or score < best[key][0]:
            best[key] = (score, spec)
    return {key: spec for key, (_, spec) in best.items()}


def test_plan(results: list[dict[str, Any]], seeds: Iterable[int] = (0, 1, 2), scope: str = "all"
              ) -> list[RunSpec]:
    """Each augmentation at its validation-picked knob, on the test set, for every seed.

    ``scope="headline"`` keeps, per regime, only what the claims need, for regimes too dear to test in full:
    "none", the best classic augmentation on validation, the drop-in transform ("exemplar") and the best
    generator-using augmentation on validation (often the same as one of the others)."""
    if scope not in ("all", "headline"):
        raise ValueError(f"scope {scope!r} must be 'all' or 'headline'")
    picked = pick_on_validation(results)
    if scope == "headline":
        picked = headline_picks(picked, validation_errors(results))
    return [dataclasses.replace(spec, split="test", seed=seed) for spec in picked.values() for seed in seeds]


def parse_regime(text: str) -> tuple[str, str, int | None]:
    """"DATASET/SUBSET" or "DATASET/SUBSET-eN" → (dataset, subset, epochs or None)."""
    dataset, _, rest = text.partition("/")
    subset, _, epochs = rest.partition("-e")
    if not dataset or not subset or (epochs and not epochs.isdigit()):
        raise ValueError(f"{text!r} is not DATASET/SUBSET or DATASET/SUBSET-eN, e.g. mnist/balanced1000 or "
                         "mnist/all-e5")
    subset_size(subset)
    return dataset, subset, int(epochs) if epochs else None


def regime_epochs(model: str, subset: str, epochs: int | None) -> int:
    """The epochs a regime names, or a balanced subset's low-data budget for ``model``."""
    if epochs is not None:
        return epochs
    if not subset.startswith("balanced"):
        raise ValueError(f"{subset!r} has no low-data budget: name the epochs, e.g. {subset}-e5")
    return low_data_epochs(model, subset_size(subset))


def transferred_test_plan(results: list[dict[str, Any]], knobs_from: str, target: str,
                          models: Iterable[str] = MODELS, augmentations: Iterable[str] | None = None,
                          seeds: Iterable[int] = (0, 1, 2)) -> list[RunSpec]:
    """Test runs for a regime given no validation runs of its own, at the knobs another regime's validation
    picked: per model, the headline picks (bundled generator) of regime ``knobs_from`` moved to regime
    ``target`` (both "DATASET/SUBSET[-eN]"; without -eN a balanced subset's low-data budget), kept for
    ``augmentations`` only (None: all four headline picks). This is how the grid reaches regimes too dear to
    tune; each run records where its knobs came from (``RunSpec.knobs_from``)."""
    source_dataset, source_subset, source_epochs = parse_regime(knobs_from)
    dataset, subset, epochs = parse_regime(target)
    wanted = set(AUGMENTATIONS if augmentations is None else augmentations)
    unknown = wanted - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"augmentations {sorted(unknown)} are not among {AUGMENTATIONS}")
    picked = headline_picks(pick_on_validation(results), validation_errors(results))
    plan = []
    for model in models:
        source_regime = regime_label(source_dataset, model, source_subset,
                                     regime_epochs(model, source_subset, source_epochs))
        source = [spec for spec in picked.values() if spec.regime() == source_regime and spec.generator == "bundled"
                  and spec.augmentation in wanted]
        missing = sorted(wanted - {spec.augmentation for spec in source}) if augmentations is not None else []
        if missing or not source:
            raise ValueError(f"{source_regime} has no headline validation pick"
                             f"{' for ' + ', '.join(missing) if missing else 's'}: run its validation plan first")
        for spec in sorted(source, key=lambda spec: AUGMENTATIONS.index(spec.augmentation)):
            moved = dataclasses.replace(spec, dataset=dataset, subset=subset, split="test",
                                        epochs=regime_epochs(model, subset, epochs), knobs_from=source_regime)
            plan += [dataclasses.replace(moved, seed=seed) for seed in seeds]
    return plan


def validation_runs(results: list[dict[str, Any]]) -> dict[RunSpec, list[float]]:
    """Each validation setting (as its seed-0 spec) with the errors of the validation seeds run."""
    errors: dict[RunSpec, list[float]] = defaultdict(list)
    for result in results:
        spec = RunSpec(**result["spec"])
        if spec.split == "val":
            errors[dataclasses.replace(spec, seed=0)].append(result["error"])
    return errors


def validation_errors(results: list[dict[str, Any]]) -> dict[RunSpec, float]:
    """Each validation setting (as its seed-0 spec) with its error averaged over the validation seeds run."""
    return {spec: float(np.mean(values)) for spec, values in validation_runs(results).items()}


def headline_picks(picked: dict[tuple, RunSpec], errors: dict[RunSpec, float]) -> dict[tuple, RunSpec]:
    """The picks a headline test needs: per regime "none", "exemplar", the classic augmentation and the
    generator-using one with the lowest validation error (ties to the earlier in AUGMENTATIONS)."""
    by_regime: dict[tuple, list[RunSpec]] = defaultdict(list)
    for spec in picked.values():
        by_regime[(spec.dataset, spec.model, spec.subset, spec.epochs, spec.generator)].append(spec)
    kept = {}
    for specs in by_regime.values():
        order = sorted(specs, key=lambda spec: (errors[spec], AUGMENTATIONS.index(spec.augmentation)))
        best_classic = next((spec for spec in order if spec.augmentation in CLASSIC), None)
        best_generator = next((spec for spec in order if spec.uses_generator), None)
        for spec in specs:
            if spec.augmentation in ("none", "exemplar") or spec in (best_classic, best_generator):
                kept[(spec.dataset, spec.model, spec.subset, spec.epochs, spec.augmentation, spec.generator)] = spec
    return kept


def read_results(folder: Path = RESULTS) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("runs/**/result.json"))]


# -------------------------------------------------------------------------------------------- summary
def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Test rows: mean ± std over seeds, and the mean (± std) of the paired difference by seed against "none"
    and against the best classic augmentation, the one of CLASSIC with the lowest validation error. A regime
    with validation runs of its own is judged on them; a transferred one on the regime its knobs came from. A
    transferred row whose knob its own regime's validation has since picked too counts as tuned there."""
    groups: dict[tuple, dict[int, float]] = defaultdict(dict)
    knobs_from: dict[tuple, str] = {}
    validation: dict[tuple[str, str], list[float]] = defaultdict(list)
    for result in results:
        spec = RunSpec(**result["spec"])
        regime = (spec.dataset, spec.model, spec.subset, spec.epochs)
        if spec.split == "val":
            validation[(spec.regime(), spec.augmentation)].append(result["error"])
        else:
            groups[(*regime, spec.augmentation, spec.generator, spec.knob)][spec.seed] = result["error"]
            knobs_from[(*regime, spec.augmentation, spec.generator, spec.knob)] = spec.knobs_from
    own_picks = {key: spec.knob for key, spec in pick_on_validation(results).items()}
    validated = {label for label, _ in validation}
    rows = []
    for key, by_seed in sorted(groups.items()):
        regime = key[:4]
        # a transferred knob its own regime's validation picked too counts as tuned there
        source = "" if own_picks.get((*regime, key[4], key[5])) == key[6] else knobs_from[key]
        tuned_on = regime_label(*regime) if regime_label(*regime) in validated else source
        classic = [name for name in CLASSIC if (tuned_on, name) in validation]
        best_classic = min(classic, key=lambda name: np.mean(validation[(tuned_on, name)])) if classic else None
        errors = list(by_seed.values())
        rows.append({
            "dataset": key[0], "model": key[1], "subset": key[2], "epochs": key[3], "augmentation": key[4],
            "generator": key[5], "knob": key[6], "knobs_from": source, "seeds": sorted(by_seed),
            "errors": errors,
            "mean": float(np.mean(errors)), "std": float(np.std(errors, ddof=1)) if len(errors) > 1 else None,
            "vs_none": _paired(by_seed, _test_errors(groups, regime, "none")),
            "best_classic": best_classic,
            "vs_best_classic": None if best_classic in (None, key[4]) else
            _paired(by_seed, _test_errors(groups, regime, best_classic)),
        })
    return rows


def _test_errors(groups: dict[tuple, dict[int, float]], regime: tuple, augmentation: str) -> dict[int, float]:
    return next((by_seed for key, by_seed in groups.items() if key[:4] == regime and key[4] == augmentation), {})


def _paired(errors: dict[int, float], baseline: dict[int, float]) -> dict[str, Any] | None:
    """Mean and std of ``errors − baseline`` over the seeds both have; None when they share none."""
    differences = [errors[seed] - baseline[seed] for seed in errors if seed in baseline]
    if not differences or errors is baseline:
        return None
    return {"mean": float(np.mean(differences)), "std": float(np.std(differences, ddof=1)) if len(differences) > 1
            else None, "seeds": len(differences)}


# Rows that joined the candidate set after test results had been seen (dataset, model, augmentation, knob): the
# flip after a first Fashion-MNIST test run at the MNIST knobs, the Fashion-MNIST tuning of the CNN after that
# run, and TrivialAugment + appended twins after every other row of its table had been tested. Tables mark them
# with ADDED_AFTER_TEST_MARK, so that no reader takes them for blind picks.
ADDED_AFTER_TEST_RESULTS = {
    ("fashion-mnist", "mlp", "hflip", ""), ("fashion-mnist", "mlp", "hflip+exemplar-append", "p 1"),
    ("fashion-mnist", "mlp", "trivialaugment+exemplar-append", "p 1"),
    ("fashion-mnist", "cnn", "trivialaugment", ""), ("fashion-mnist", "cnn", "exemplar", "p 0.5"),
    ("fashion-mnist", "cnn", "exemplar-append", "p 1"),
    ("fashion-mnist", "cnn", "trivialaugment+exemplar-append", "p 0.5")}
ADDED_AFTER_TEST_MARK = " †"


def added_after_test_results(row: dict[str, Any]) -> bool:
    """Whether a :func:`summarize` row joined the candidate set after test results (ADDED_AFTER_TEST_RESULTS)."""
    return (row["dataset"], row["model"], row["augmentation"], row["knob"]) in ADDED_AFTER_TEST_RESULTS


def row_uses_generator(row: dict[str, Any]) -> bool:
    """Whether a :func:`summarize` row's augmentation makes twins (its generator column means something)."""
    return RunSpec(row["dataset"], row["model"], row["augmentation"], row["subset"], "test", 0,
                   row["epochs"]).uses_generator


def mean_text(row: dict[str, Any]) -> str:
    """A :func:`summarize` row's mean test error, with ± its std over the seeds when there are several."""
    return f"{row['mean']:.2f}" + ("" if row["std"] is None else f" ± {row['std']:.2f}")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The test rows of :func:`summarize`; the generator column says which generator made the twins (one of
    :data:`GENERATOR_KINDS`); a row added after test results is marked (ADDED_AFTER_TEST_MARK)."""
    lines = ["| dataset | model | data | epochs | generator | augmentation | knob (val) | seeds | test error % "
             "| vs none (paired) | vs best classic (paired) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        generator = row["generator"] if row_uses_generator(row) else ""
        augmentation = row["augmentation"] + (ADDED_AFTER_TEST_MARK if added_after_test_results(row) else "")
        lines.append(f"| {row['dataset']} | {row['model']} | {row['subset']} | {row['epochs']} | {generator} | "
                     f"{augmentation} | {knob_label(row)} | {len(row['seeds'])} | {mean_text(row)} | "
                     f"{paired_text(row['vs_none'])} | {paired_text(row['vs_best_classic'], row['best_classic'])} |")
    return "\n".join(lines) + "\n"


def knob_label(row: dict[str, Any]) -> str:
    """The knob, and for a transferred row the regime whose validation picked it, which also named the best
    classic augmentation it is paired with (so knob-less rows say it too)."""
    if not row["knobs_from"]:
        return row["knob"]
    return f"{row['knob']} (val of {row['knobs_from']})".lstrip()


def validation_markdown(results: list[dict[str, Any]]) -> str:
    """Every setting tried on validation: its final-epoch error, averaged over the validation seeds run."""
    errors = validation_runs(results)
    lines = ["| dataset | model | data | epochs | generator | augmentation | knob | seeds | validation error % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for spec in sorted(errors, key=lambda s: (s.dataset, s.model, s.subset, s.epochs, s.generator, s.augmentation,
                                              s.knob)):
        generator = spec.generator if spec.uses_generator else ""
        lines.append(f"| {spec.dataset} | {spec.model} | {spec.subset} | {spec.epochs} | {generator} | "
                     f"{spec.augmentation} | {spec.knob} | {len(errors[spec])} | {np.mean(errors[spec]):.2f} |")
    return "\n".join(lines) + "\n"


def paired_text(paired: dict[str, Any] | None, against: str | None = None) -> str:
    if paired is None:
        return ""
    spread = "" if paired["std"] is None else f" ± {paired['std']:.2f}"
    return f"{paired['mean']:+.2f}{spread}" + ("" if against is None else f" ({against})")


# ------------------------------------------------------------------------------------------------ CLI
@click.group()
def cli() -> None:
    """The drop-in benchmark: plan, run, summarise."""


@cli.command("run")
@click.option("--spec", "spec_json", required=True, help="The run as JSON (RunSpec fields).")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
def run_command(spec_json: str, results: Path, threads: int) -> None:
    """Train one run, resuming its checkpoint; a finished run is not trained again."""
    torch.set_num_threads(threads)
    spec = RunSpec(**json.loads(spec_json))
    result = run(spec, results / "runs" / spec.name())
    print(f"{spec.name()}: {result['error']:.2f} % ({result['seconds']:.0f} s)")


@cli.command("plan")
@click.argument("stage", type=click.Choice(["val", "test"]))
@click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist"]), default="mnist", show_default=True)
@click.option("--sizes", type=int, multiple=True, default=(1000, 5000), show_default=True)
@click.option("--seeds", type=int, multiple=True, default=(0, 1, 2), show_default=True)
@click.option("--generator", type=click.Choice(list(GENERATOR_KINDS)), default="bundled", show_default=True,
              help="val: the semi-supervised plan (bundled generator), the one with generators fitted on the "
                   "subsets, or the one with an HVAE fitted on all training images")
@click.option("--scope", type=click.Choice(["all", "headline"]), default="all", show_default=True,
              help="test: every augmentation, or only none, the drop-in transform and the best classic and "
                   "generator-using ones on validation")
@click.option("--knobs-from", metavar="DATASET/SUBSET[-eN]", default=None,
              help="test: reuse the headline picks of this regime's validation (e.g. mnist/balanced1000) for the "
                   "regime --to, which has no validation runs of its own")
@click.option("--to", "target", metavar="DATASET/SUBSET[-eN]", default=None,
              help="with --knobs-from: the regime to test, e.g. mnist/balanced5000 or mnist/all-e5 (a balanced "
                   "subset without -eN gets each model's low-data budget)")
@click.option("--model", "models", multiple=True, type=click.Choice(MODELS),
              help="val, or test with --knobs-from: only these models (default: all)")
@click.option("--augmentation", "augmentations", multiple=True, type=click.Choice(AUGMENTATIONS),
              help="val, or test with --knobs-from: only these augmentations (default: all; for a transferred "
                   "test, every headline pick)")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def plan_command(stage: str, dataset: str, sizes: tuple[int, ...], seeds: tuple[int, ...], generator: str,
                 scope: str, knobs_from: str | None, target: str | None, models: tuple[str, ...],
                 augmentations: tuple[str, ...], results: Path, out: Path) -> None:
    """Write the runs of a stage: every knob on validation, or the validation picks on test."""
    if (knobs_from is None) != (target is None):
        raise click.UsageError("--knobs-from and --to go together: the regime tuned, and the regime to test")
    if (models or augmentations) and stage == "test" and knobs_from is None:
        raise click.UsageError("on test, --model and --augmentation choose among transferred picks; give "
                               "--knobs-from too")
    if stage == "val":
        if knobs_from is not None:
            raise click.UsageError("--knobs-from makes a test plan; use it with 'plan test'")
        specs = [spec for spec in validation_plan(dataset, sizes, generator)
                 if spec.model in (models or MODELS) and spec.augmentation in (augmentations or AUGMENTATIONS)]
    elif knobs_from is not None:
        try:
            specs = transferred_test_plan(read_results(results), knobs_from, target, models or MODELS,
                                          augmentations or None, seeds)
        except ValueError as error:
            raise click.UsageError(str(error)) from None
    else:
        specs = [s for s in test_plan(read_results(results), seeds, scope) if s.dataset == dataset]
    atomic_write_text(out, json.dumps([s.to_dict() for s in specs], indent=1) + "\n")
    print(f"{len(specs)} runs written to {out}")


@cli.command("fit-generators")
@click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist"]), default="mnist", show_default=True)
@click.option("--sizes", type=int, multiple=True, default=(1000, 5000), show_default=True)
@click.option("--seeds", type=int, multiple=True, default=(0, 1, 2), show_default=True)
def fit_generators_command(dataset: str, sizes: tuple[int, ...], seeds: tuple[int, ...]) -> None:
    """Fit one generator per low-data subset on that subset alone, through the exaug CLI (resumable)."""
    for size in sizes:
        for seed in seeds:
            spec = RunSpec(dataset, "mlp", "exemplar", f"balanced{size}", "val", seed, 1, generator="subset")
            bundle = subset_generator_dir(spec)
            folder = GENERATORS / "images" / bundle.name
            if not folder.exists():
                subprocess.run(["exaug", "data", "subset", dataset, "--size", str(size), "--seed", str(seed),
                                "--out", str(folder)], check=True)
            # exaug fit-generator resumes an unfinished run and leaves a finished one as it is
            # --knn-query cache and --gradient-neighbours all: every subset generator of the grid trains as the
            # first ones did, before the posterior query and the 3-nearest gradient became the defaults (issue 17)
            subprocess.run(["exaug", "fit-generator", "--dataset", str(folder), "--channels", "1", "--seed",
                            str(seed), "--knn-query", "cache", "--gradient-neighbours", "all", "--threads", "1",
                            "--no-progress", "--out", str(bundle)], check=True, stdout=subprocess.DEVNULL)
            print(f"{bundle}: fitted", flush=True)


@cli.command("grid")
@click.argument("plan", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="runs at once, one thread each")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS, show_default=True)
@click.option("--only", default="", help="run only specs whose name contains this text")
def grid_command(plan: Path, jobs: int, results: Path, only: str) -> None:
    """Run every unfinished run of PLAN, ``--jobs`` processes at a time (logs beside each run)."""
    pending = [RunSpec(**s) for s in json.loads(plan.read_text())]
    pending = [s for s in pending if only in s.name() and not (results / "runs" / s.name() / "result.json").exists()]
    print(f"{len(pending)} runs to go", flush=True)
    running: list[tuple[subprocess.Popen, RunSpec]] = []
    while pending or running:
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            folder = results / "runs" / spec.name()
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "log.txt", "a") as log:
                command = [sys.executable, __file__, "run", "--spec", json.dumps(spec.to_dict()),
                           "--results", str(results)]
                running.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), spec))
        time.sleep(1)
        for process, spec in list(running):
            if process.poll() is not None:
                running.remove((process, spec))
                status = "done" if process.returncode == 0 else f"FAILED ({process.returncode}, see log.txt)"
                print(f"{time.strftime('%H:%M:%S')} {spec.name()}: {status}", flush=True)


@cli.command("summary")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS, show_default=True)
def summary_command(results: Path) -> None:
    """Print the test table and write the test rows and validation picks as JSON beside the runs; the docs' tables
    come from the same runs through ``python benchmarks/tables.py``."""
    all_results = read_results(results)
    rows = summarize(all_results)
    print(markdown_table(rows))
    picks = {"/".join(map(str, key)): spec.knob for key, spec in pick_on_validation(all_results).items()}
    atomic_write_text(results / "summary.json", json.dumps({"test_rows": rows, "validation_picks": picks}, indent=1) + "\n")


if __name__ == "__main__":
    cli()
