"""How often a synthetic twin still looks like its exemplar's class, to a classifier trained without augmentation.

A twin inherits its exemplar's label (§5.4). When the generator's kernel carries a twin
across a class boundary, that label is wrong, and augmentation feeds the classifier label
noise. This benchmark takes a classifier trained on real images only (a ``seedN`` folder of
``exaug fit-classifier --generator none``), makes one twin per training exemplar with the
kernel width scaled by each factor in ``--scales`` (1 is the paper's σ, 0 decodes the
exemplar mean), and reports the share of twins the classifier assigns to another class,
next to its error on the real exemplars.

    python benchmarks/twin_label_agreement.py --generator mnist --classifier runs/clf-mnist-ls/seed0 \\
        --out benchmarks/results/twin_label_agreement_mnist.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from exaug.atomic import atomic_write_text
from exaug.bundle import read_bundle_config, trained_dataset
from exaug.pretrained import load_generator
from exaug.checkpoint import IDENTITY_KEY
from exaug.classifiers import create_classifier
from exaug.classifiers.train import CHECKPOINT_FILE
from exaug.device import apply_threads
from exaug.data import load_split
from exaug.twins import twins_around


def recorded_dataset(generator: str) -> str:
    """The dataset a generator (bundled name or folder) was trained on, which its exemplars come from."""
    dataset = trained_dataset(read_bundle_config(generator))
    if dataset is None:
        raise SystemExit(f"{generator} does not record its training dataset; re-export it with exaug export --dataset")
    return dataset


def load_real_only_classifier(run: Path, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """The model saved in a fit-classifier seed folder, which must have been trained without a generator."""
    if not (run / CHECKPOINT_FILE).is_file():
        raise SystemExit(f"{run / CHECKPOINT_FILE} does not exist; pass a seedN folder that "
                         f"exaug fit-classifier --generator none has written")
    state = torch.load(run / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    identity = state[IDENTITY_KEY]
    if identity["generator"] is not None:
        raise SystemExit(f"{run} was trained with augmentation; pass a run of fit-classifier --generator none")
    config = identity["config"]
    model = create_classifier(config["model"], input_shape, num_classes, config["hidden"])
    model.load_state_dict(state["model"])
    return model.eval()


@torch.no_grad()
def disagreement(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share (%) of ``images`` that ``model`` assigns to a class other than ``labels``."""
    return 100.0 * (model(images).argmax(1) != labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="mnist", help="bundled name or bundle directory")
    parser.add_argument("--classifier", type=Path, required=True, help="a seedN folder of fit-classifier --generator none")
    parser.add_argument("--count", type=int, default=10000, help="exemplars used (the first COUNT)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0],
                        help="kernel-width factors (1 = the learned σ)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default: benchmarks/results/twin_label_agreement_DATASET.json)")
    args = parser.parse_args()
    apply_threads(args.threads)

    dataset = recorded_dataset(args.generator)
    generator = load_generator(args.generator).eval()
    exemplars = load_split(dataset, "train")
    images = exemplars.images[: args.count].float() / 255
    labels = exemplars.labels[: args.count]
    model = load_real_only_classifier(args.classifier, tuple(images.shape[1:]), int(exemplars.labels.max()) + 1)

    means = generator.exemplar_means[: args.count]
    sigma = generator.kernel_std().item()
    random = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(means.shape[0], generator.twin_noise_dim, generator=random)
    results = {"real_exemplars": disagreement(model, images, labels)}
    print(f"{dataset}, {args.count} training exemplars, kernel σ = {sigma:.3f}")
    print(f"  real exemplars: {results['real_exemplars']:.2f} % assigned to another class")
    for scale in args.scales:
        with torch.no_grad():
            twins = twins_around(generator, means, None, scale * noise, like=images).reshape(images.shape)
        results[f"twins_sigma_x{scale:g}"] = disagreement(model, twins, labels)
        print(f"  twins at {scale:g}·σ: {results[f'twins_sigma_x{scale:g}']:.2f} % assigned to another class")

    report = {"benchmark": "twin_label_agreement", "torch_threads": torch.get_num_threads(),
              "generator": args.generator, "dataset": dataset,
              "classifier": str(args.classifier), "count": args.count, "kernel_sigma": sigma,
              "disagreement_percent": results}
    out = args.out or Path(f"benchmarks/results/twin_label_agreement_{dataset}.json")
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
