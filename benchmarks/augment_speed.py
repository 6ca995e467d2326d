"""What on-the-fly generation costs a classifier, and ExemplarAugment's throughput per DataLoader worker.

Two measurements, each side by side in this one process:

1. One training step of the paper's MLP (2×1024) on a MixedBatch — 100 synthetic twins made
   by MixedBatchLoader, then forward/backward over 100 real + 100 synthetic images —
   against the same step on 200 real images, the steps taking turns. The generation share
   of the augmented step is (augmented − real-only) / augmented; the target is ≤ 10 %.
   Generation timed on its own is printed beside it as a check.
2. Images per second through a DataLoader with one worker on the same MNIST images: per-image
   transforms ExemplarAugment and v2.RandAugment, and ExemplarCollate, which makes the twins of a
   whole batch in one generator call inside the worker (replace mode, p = 1, so every image is
   generated). The target: the drop-in path at least as fast per worker as RandAugment.

    python benchmarks/augment_speed.py --generator mnist --out benchmarks/results/augment_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from exaug import ExemplarAugment, ExemplarCollate, MixedBatchLoader, mixed_loss
from exaug.classifiers import PermutationInvariantMLP
from exaug.atomic import atomic_write_text
from exaug.data import load_split
from exaug.device import apply_threads, resolve_device


TARGET_GENERATION_SHARE = 0.10  # generation may take at most this share of the augmented step


def time_interleaved(steps: dict[str, Callable[[], None]], count: int, device: torch.device,
                     warmup: int = 5) -> dict[str, float]:
    """Median seconds per call of each step, the steps taking turns so machine noise hits them alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    durations: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(count):
        for name, step in steps.items():
            synchronize(device)
            started = time.perf_counter()
            step()
            synchronize(device)
            durations[name].append(time.perf_counter() - started)
    return {name: sorted(values)[len(values) // 2] for name, values in durations.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def classifier_steps(generator: str, images: torch.Tensor, labels: torch.Tensor, steps: int,
                     device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    model = PermutationInvariantMLP(784, 10, (1024, 1024)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mixed = MixedBatchLoader([], generator, device=device, seed=0)
    batches = [(images[i:i + 100].to(device), labels[i:i + 100].to(device)) for i in range(0, steps * 200, 200)]
    cursor = {"index": 0}

    def next_batch():
        batch = batches[cursor["index"] % len(batches)]
        cursor["index"] += 1
        return batch

    def update(loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def augmented_step():
        real, target = next_batch()
        synthetic = mixed.synthesize(real)
        logits = model(torch.cat([real, synthetic]))
        update(mixed_loss(*logits.split(100), target, lam=0.4))

    def real_only_step():
        real, target = next_batch()
        more, _ = next_batch()
        update(F.cross_entropy(model(torch.cat([real, more])), torch.cat([target, target]), label_smoothing=0.1))

    def generation_only():
        mixed.synthesize(next_batch()[0])

    timed = time_interleaved({"augmented": augmented_step, "real_only": real_only_step,
                              "generation": generation_only}, steps, device)
    share = (timed["augmented"] - timed["real_only"]) / timed["augmented"]
    return {
        "augmented_step_ms": 1000 * timed["augmented"],
        "real_only_step_ms": 1000 * timed["real_only"],
        "generation_ms": 1000 * timed["generation"],
        "generation_share_of_augmented_step": share,
        "generation_alone_share_of_augmented_step": timed["generation"] / timed["augmented"],
        "target_share": TARGET_GENERATION_SHARE,
        "target_met": share <= TARGET_GENERATION_SHARE,
    }


class TransformedImages(Dataset):
    """(image, 0) pairs, each image passed through ``transform`` (None: as stored)."""

    def __init__(self, images: torch.Tensor, transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        return (image if self.transform is None else self.transform(image)), 0


THROUGHPUT_BATCH = 100
PREFETCH_FACTOR = 2  # DataLoader's default: batches a worker fetches ahead, drained before the clock starts


def worker_throughput(transform, images: torch.Tensor, collate_fn=None) -> float:
    """Images per second through a one-worker DataLoader applying ``transform`` per image and ``collate_fn``
    per batch of 100."""
    loader = DataLoader(TransformedImages(images, transform), batch_size=THROUGHPUT_BATCH, num_workers=1,
                        collate_fn=collate_fn, prefetch_factor=PREFETCH_FACTOR)
    iterator = iter(loader)
    for _ in range(loader.prefetch_factor + 1):  # start the worker and drain what it fetched ahead
        next(iterator)
    started = time.perf_counter()
    count = sum(images.shape[0] for images, _ in iterator)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="mnist", help="bundled name or bundle directory")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--images", type=int, default=5000, help="images per throughput measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads (default: all cores)")
    parser.add_argument("--device", default="auto", help="where the classifier step runs: auto, cpu or cuda")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/augment_speed.json"))
    args = parser.parse_args()
    untimed = (PREFETCH_FACTOR + 1) * THROUGHPUT_BATCH
    if args.images < untimed + THROUGHPUT_BATCH:
        parser.error(f"--images {args.images} leaves nothing to time: the first {untimed} start the worker, so "
                     f"give at least {untimed + THROUGHPUT_BATCH}")
    apply_threads(args.threads)
    device = resolve_device(args.device)

    train = load_split("mnist", "trainval")  # what the paper's classifiers train on
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    floats, labels = train.images[order].float() / 255, train.labels[order]
    steps = classifier_steps(args.generator, floats, labels, args.steps, device)
    print(f"augmented step (100 real + 100 synthetic): {steps['augmented_step_ms']:.1f} ms")
    print(f"real-only step (200 real):                 {steps['real_only_step_ms']:.1f} ms")
    print(f"generation of 100 twins alone:             {steps['generation_ms']:.1f} ms")
    verdict = "met" if steps["target_met"] else "NOT met"
    print(f"generation share of the augmented step:    {100 * steps['generation_share_of_augmented_step']:.1f} % "
          f"(target <= {100 * TARGET_GENERATION_SHARE:.0f} %: {verdict}); timed alone: "
          f"{100 * steps['generation_alone_share_of_augmented_step']:.1f} %")

    images = train.images[order[: args.images]]
    augment = ExemplarAugment.from_pretrained(args.generator, p=1.0)  # every image generated: the full cost
    exemplar = worker_throughput(augment, images)
    drop_in = ExemplarAugment(augment.generator)  # what a user drops in: the same generator at the default p
    exemplar_default = worker_throughput(drop_in, images)
    collate = worker_throughput(None, images, ExemplarCollate(augment))
    randaugment = worker_throughput(v2.RandAugment(), images)
    print(f"\nper-worker throughput: ExemplarAugment {exemplar:.0f} img/s (p = 1), {exemplar_default:.0f} img/s "
          f"(default p = {drop_in.p:g}), ExemplarCollate {collate:.0f} img/s, RandAugment {randaugment:.0f} img/s")
    print(f"ratio to RandAugment: per image {exemplar / randaugment:.2f} (p = 1), "
          f"{exemplar_default / randaugment:.2f} (default p), batched {collate / randaugment:.2f} "
          f"(target >= 1: {'met' if collate >= randaugment else 'NOT met'} by the batched path, "
          f"{'met' if exemplar_default >= randaugment else 'NOT met'} by the default transform)")

    report = {
        "benchmark": "augment_speed", "generator": args.generator, "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "classifier_step": steps,
        "worker_throughput_images_per_s": {"ExemplarAugment": exemplar, "ExemplarAugment_default_p": exemplar_default,
                                           "default_p": drop_in.p, "ExemplarCollate": collate,
                                           "RandAugment": randaugment, "ratio": exemplar / randaugment,
                                           "default_p_ratio": exemplar_default / randaugment,
                                           "batched_ratio": collate / randaugment},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
