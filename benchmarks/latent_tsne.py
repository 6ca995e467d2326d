"""Figure 4 of the paper: a t-SNE of test latents coloured by class, one panel per generator (issue 17 §2).

Each generator encodes the same test images to their posterior means μ(x) (no labels were used in training);
scikit-learn's t-SNE maps each set to 2-D with the same settings and seed. Beside each panel goes the number
the paper gives for the same question (Table 5): the kNN classification error on the 40-D means, with the
generator's exemplars as the labelled set, so a picture that looks tidier can be checked against a figure.

Needs the optional extra ``figures`` (scikit-learn): ``pip install -e '.[figures]'``.

    python benchmarks/latent_tsne.py --generator Gaussian=runs/ablations/prior/gaussian/seed0 \
        --generator VampPrior=runs/ablations/prior/vampprior/seed0 \
        --generator exemplar=runs/ablations/prior/exemplar/seed0 --images 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exaug import load_generator
from exaug.atomic import atomic_write_text
from exaug.figures import pyplot, save_png
from exaug.bundle import read_bundle_config, trained_dataset
from exaug.data import load_split
from exaug.device import apply_threads
from exaug.evaluate import knn_errors

KNN_K = 5  # one k for every panel; Table 5 picks k on validation, here the number is a check on the picture


def tsne_of_latents(means: torch.Tensor, seed: int, perplexity: float = 30.0) -> tuple[np.ndarray, float]:
    """2-D t-SNE coordinates of ``means`` (N×D) and the final KL divergence scikit-learn reports."""
    try:
        from sklearn.manifold import TSNE
    except ImportError as error:
        raise SystemExit("latent_tsne.py needs scikit-learn: pip install -e '.[figures]'") from error
    if means.shape[0] <= 3 * perplexity:
        raise SystemExit(f"t-SNE with perplexity {perplexity:g} needs more than {3 * perplexity:g} images; "
                         f"got {means.shape[0]} (raise --images)")
    embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    coordinates = embedding.fit_transform(means.double().numpy())
    return coordinates, float(embedding.kl_divergence_)


def plot(panels: list[dict[str, Any]], labels: np.ndarray, path: Path) -> None:
    figure, axes = pyplot().subplots(1, len(panels), figsize=(4 * len(panels), 4.2), dpi=120, squeeze=False)
    for axis, panel in zip(axes[0], panels):
        coordinates = np.asarray(panel["coordinates"])
        points = axis.scatter(coordinates[:, 0], coordinates[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5,
                              vmax=9.5)
        axis.set_title(f"{panel['name']}\nlatent {KNN_K}-NN error {panel['knn_error']:.2f} %", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(points, ax=axes[0].tolist(), ticks=range(10), shrink=0.8, label="class")
    save_png(figure, path)


def parse_generator(text: str) -> tuple[str, str]:
    name, separator, where = text.partition("=")
    if not separator or not name or not where:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=BUNDLE (a bundle folder or a bundled name)")
    return name, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", type=parse_generator, action="append", required=True,
                        metavar="NAME=BUNDLE", help="a panel: its title and a bundle folder or bundled name")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--images", type=int, default=2000, help="the first N test images")
    parser.add_argument("--seed", type=int, default=0, help="t-SNE's random state, the same for every panel")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latent_tsne.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/figures/latent-tsne.png"))
    args = parser.parse_args()
    apply_threads(args.threads)

    test = load_split(args.dataset, "test")
    images, labels = test.images[: args.images], test.labels[: args.images]
    panels = []
    for name, where in args.generator:
        trained_on = trained_dataset(read_bundle_config(where))
        if trained_on not in (None, args.dataset):
            raise SystemExit(f"generator {name!r} ({where}) was trained on {trained_on}, not {args.dataset}: "
                             f"pass --dataset {trained_on} or a generator of {args.dataset}")
        model = load_generator(where)
        if model.exemplar_labels is None:
            raise SystemExit(f"generator {name!r} ({where}) keeps no exemplar labels, which the kNN check needs: "
                             "fit it on a labelled dataset")
        started = time.perf_counter()
        means = model.encode_means(images).cpu()
        coordinates, divergence = tsne_of_latents(means, args.seed)
        knn_error = knn_errors(model.exemplar_means.cpu(), model.exemplar_labels, means, labels, (KNN_K,))[KNN_K]
        panels.append({"name": name, "generator": where, "knn_error": knn_error, "tsne_kl_divergence": divergence,
                       "seconds": time.perf_counter() - started, "coordinates": coordinates.round(3).tolist()})
        print(f"| {name} | latent {KNN_K}-NN error {knn_error:.2f} % | t-SNE KL {divergence:.3f} |", flush=True)
    results = {"dataset": args.dataset, "torch_threads": torch.get_num_threads(), "test_images": args.images,
               "seed": args.seed, "knn_k": KNN_K,
               "torch": torch.__version__, "machine": platform.machine(), "panels": panels}
    atomic_write_text(args.out, json.dumps(results) + "\n")
    plot(panels, labels.numpy(), args.plot)
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
