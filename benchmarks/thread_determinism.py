"""Whether a training step gives the same numbers at another CPU thread count, per architecture.

A resumed run repeats an unbroken one exactly only where each step's numbers do not depend on anything but
the checkpoint. One thing they can depend on is the number of threads torch splits a reduction over. This
script takes one batch of binarised MNIST test images and, for each architecture (Gaussian prior, so only the
networks are compared), computes the ELBO and its gradients at each thread count of ``--threads``, twice at
the first; it reports whether the repeat is bit-identical, and the largest gap to the first thread count.

    python benchmarks/thread_determinism.py --threads 1 2 --out benchmarks/results/thread_determinism.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from exaug import ModelConfig
from exaug.atomic import atomic_write_text
from exaug.data import load_split
from exaug.evaluate import binarize_once
from exaug.models import ARCHITECTURES, build_generator


def step_numbers(model: torch.nn.Module, images: torch.Tensor, threads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's per-image ELBO and the gradient of its mean, at ``threads`` threads, with fixed noise."""
    torch.set_num_threads(threads)
    model.zero_grad()
    terms = model.elbo_terms(images, torch.Generator().manual_seed(0))
    elbo = terms.reconstruction - terms.kl
    (-elbo.mean()).backward()
    gradient = torch.cat([parameter.grad.flatten() for parameter in model.parameters() if parameter.grad is not None])
    return elbo.detach().clone(), gradient.clone()


def compare(architecture: str, images: torch.Tensor, thread_counts: list[int]) -> dict[str, object]:
    torch.manual_seed(0)
    model = build_generator(ModelConfig(architecture=architecture, input_shape=(1, 28, 28), prior="gaussian"))
    first = step_numbers(model, images, thread_counts[0])
    repeat = step_numbers(model, images, thread_counts[0])
    report: dict[str, object] = {"repeat_identical": all(torch.equal(a, b) for a, b in zip(first, repeat))}
    for threads in thread_counts[1:]:
        other = step_numbers(model, images, threads)
        report[f"threads_{threads}"] = {
            "elbo_identical": torch.equal(first[0], other[0]),
            "gradient_identical": torch.equal(first[1], other[1]),
            "elbo_max_gap": (first[0] - other[0]).abs().max().item(),
            "gradient_max_gap": (first[1] - other[1]).abs().max().item(),
            "gradient_max_magnitude": first[1].abs().max().item(),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts; the first is the reference")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.threads) < 2:
        parser.error("--threads needs a reference count and at least one other, e.g. --threads 1 2")
    images = binarize_once(load_split("mnist", "test").images[: args.batch].float() / 255.0)
    results = {architecture: compare(architecture, images, args.threads) for architecture in args.architectures}
    report = {"benchmark": "thread_determinism", "threads": args.threads, "batch": args.batch,
              "architectures": results, "torch": torch.__version__, "machine": platform.machine()}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for architecture, result in results.items():
        for key, gap in ((key, value) for key, value in result.items() if key.startswith("threads_")):
            print(f"{architecture}: repeat identical {result['repeat_identical']}; at {key.split('_')[1]} threads "
                  f"ELBO identical {gap['elbo_identical']}, gradient identical {gap['gradient_identical']} "
                  f"(largest gap {gap['gradient_max_gap']:.2e} of gradients up to {gap['gradient_max_magnitude']:.2e})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
