"""What on-the-fly generation costs a classifier, and ExemplarAugment's throughput per DataLoader worker.

Two measurements, each side by side in this one process:

1. One training step of the paper's MLP (2×1024) on a MixedBatch — 100 synthetic twins made
   by MixedBatchLoader, then forward/backward over 100 real + 100 synthetic images —
   against the same step on 200 real images. The generation share of the augmented step
   is (augmented − real-only) / augmented; the target is ≤ 10 %.
2. Images per second through a DataLoader with one worker, per-image transform, for
   ExemplarAugment and for v2.RandAugment on the same MNIST images.

    python benchmarks/augment_speed.py --generator mnist --out benchmarks/results/augment_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from exaug import ExemplarAugment, MixedBatchLoader, mixed_loss
from exaug.classifiers import PermutationInvariantMLP
from exaug.cli.options import apply_threads
from exaug.data import load_split


def time_steps(step, count: int, warmup: int = 5) -> float:
    """Median seconds of ``count`` calls of ``step`` after ``warmup`` untimed ones (robust to noise)."""
    for _ in range(warmup):
        step()
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        durations.append(time.perf_counter() - started)
    return sorted(durations)[len(durations) // 2]


def classifier_steps(generator: str, images: torch.Tensor, labels: torch.Tensor, steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = PermutationInvariantMLP(784, 10, (1024, 1024))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mixed = MixedBatchLoader([], generator, seed=0)
    batches = [(images[i:i + 100], labels[i:i + 100]) for i in range(0, steps * 200, 200)]
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

    augmented = time_steps(augmented_step, steps)
    real_only = time_steps(real_only_step, steps)
    generation = time_steps(generation_only, steps)
    return {
        "augmented_step_ms": 1000 * augmented,
        "real_only_step_ms": 1000 * real_only,
        "generation_ms": 1000 * generation,
        "generation_share_of_augmented_step": (augmented - real_only) / augmented,
        "generation_alone_share_of_augmented_step": generation / augmented,
    }


class TransformedImages(Dataset):
    def __init__(self, images: torch.Tensor, transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.images[index])


def worker_throughput(transform, images: torch.Tensor) -> float:
    """Images per second through a one-worker DataLoader applying ``transform`` per image."""
    loader = DataLoader(TransformedImages(images, transform), batch_size=100, num_workers=1)
    iterator = iter(loader)
    next(iterator)  # start the worker and warm it up
    started = time.perf_counter()
    count = sum(batch.shape[0] for batch in iterator)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="mnist", help="bundled name or bundle directory")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--images", type=int, default=5000, help="images per throughput measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/augment_speed.json"))
    args = parser.parse_args()
    apply_threads(args.threads)

    train = load_split("mnist", "trainval")  # what the paper's classifiers train on
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    floats, labels = train.images[order].float() / 255, train.labels[order]
    steps = classifier_steps(args.generator, floats, labels, args.steps)
    print(f"augmented step (100 real + 100 synthetic): {steps['augmented_step_ms']:.1f} ms")
    print(f"real-only step (200 real):                 {steps['real_only_step_ms']:.1f} ms")
    print(f"generation of 100 twins alone:             {steps['generation_ms']:.1f} ms")
    print(f"generation share of the augmented step:    {100 * steps['generation_share_of_augmented_step']:.1f} % "
          f"(difference), {100 * steps['generation_alone_share_of_augmented_step']:.1f} % (timed alone); target <= 10 %")

    images = train.images[order[: args.images]]
    exemplar = worker_throughput(ExemplarAugment.from_pretrained(args.generator), images)
    randaugment = worker_throughput(v2.RandAugment(), images)
    print(f"\nper-worker throughput: ExemplarAugment {exemplar:.0f} img/s, RandAugment {randaugment:.0f} img/s "
          f"(ratio {exemplar / randaugment:.2f})")

    report = {
        "benchmark": "augment_speed", "generator": args.generator, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "classifier_step": steps,
        "worker_throughput_images_per_s": {"ExemplarAugment": exemplar, "RandAugment": randaugment,
                                           "ratio": exemplar / randaugment},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
