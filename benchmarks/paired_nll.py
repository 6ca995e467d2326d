"""Test NLL of several generators on the same images, paired image by image.

Each generator scores the same first N test images, binarised once with exaug's evaluation seed, with the
same importance-sampling settings as ``exaug evaluate`` (IWAE, S samples, the certified near-exemplar
estimator). Because the images are shared, the difference of two generators' NLLs is a paired difference,
and its standard error is that of the per-image differences, far smaller than either NLL's own spread.
Each generator's progress is saved beside ``--out`` as it goes; the same command, rerun, continues it.

    python benchmarks/paired_nll.py --generator mlp=mnist --generator hvae=carry/mnist-hvae \
        --images 1000 --samples 5000 --threads 1 --out benchmarks/results/paired_nll/mnist-hvae-50k.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import time
from pathlib import Path
from typing import Any

import torch

from exaug import load_generator
from exaug.atomic import atomic_write_text
from exaug.bundle import bundle_size, read_bundle_config, recorded_provenance, trained_dataset
from exaug.data import load_split
from exaug.device import apply_threads
from exaug.evaluate import binarize_once, iwae_log_likelihood


def scored(source: str, images: torch.Tensor, samples: int, checkpoint: Path) -> dict[str, Any]:
    """The per-image IWAE bounds of the generator at ``source`` (a bundled name or a bundle folder), resumable
    through ``checkpoint``. ``seconds`` times this call only: a call that continued a stopped one says so, in
    ``resumed``."""
    config = read_bundle_config(source)
    model = load_generator(source)
    resumed = checkpoint.exists()
    started = time.perf_counter()
    bounds = iwae_log_likelihood(model, images, samples, checkpoint=checkpoint)
    return {"source": source, "architecture": config["model"].get("architecture", "vae"),
            "provenance": recorded_provenance(config), "bundle_bytes": bundle_size(source),
            "seconds": round(time.perf_counter() - started, 1),
            "resumed": resumed, "nll": -bounds.mean().item(), "bounds": bounds.tolist()}


def paired_difference(first: list[float], second: list[float]) -> dict[str, float]:
    """NLL(second) − NLL(first) over shared images, with the standard error of the per-image differences."""
    differences = -(torch.tensor(second, dtype=torch.float64) - torch.tensor(first, dtype=torch.float64))
    return {"mean": differences.mean().item(), "sem": differences.std().item() / math.sqrt(len(differences)),
            "share_lower": (differences < 0).double().mean().item()}


def generator_sources(parser: argparse.ArgumentParser, entries: list[str], count: int | None = None,
                      ) -> tuple[dict[str, str], str]:
    """The ``--generator NAME=BUNDLE`` entries as {name: bundle}, in order (the first is the baseline), and the one
    training dataset they all record; ``count`` asks for exactly that many, else at least two. Anything else is
    the parser's error, naming what was given."""
    sources = dict(entry.split("=", 1) for entry in entries if "=" in entry)
    wanted = "at least twice" if count is None else f"exactly {count} times"
    if len(sources) != len(entries) or len(sources) < 2 or count is not None and len(sources) != count:
        parser.error(f"--generator takes NAME=BUNDLE, {wanted}, with distinct names; got {entries}")
    datasets = {trained_dataset(read_bundle_config(source)) for source in sources.values()}
    if len(datasets) != 1 or None in datasets:
        parser.error(f"the generators must record one training dataset; they record {sorted(map(str, datasets))}")
    return sources, datasets.pop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", action="append", required=True, metavar="NAME=BUNDLE",
                        help="a label and a bundled name or bundle folder; the first is the baseline")
    parser.add_argument("--images", type=int, default=1000, help="the first IMAGES test images")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sources, dataset = generator_sources(parser, args.generator)
    apply_threads(args.threads)
    test = load_split(dataset, "test")
    images = binarize_once(test.images[: args.images].float() / 255.0)
    # one file per generator beside --out saves its progress; a rerun of the same command continues from them
    checkpoints = {name: args.out.with_name(f"{args.out.stem}.{re.sub(r'[^A-Za-z0-9]+', '-', name)}.iwae-checkpoint.pt")
                   for name in sources}
    if len(set(checkpoints.values())) < len(checkpoints):
        parser.error(f"the names {sorted(sources)} differ only in punctuation; give each generator a distinct name")
    results = {name: scored(source, images, args.samples, checkpoints[name]) for name, source in sources.items()}
    baseline = next(iter(results))
    report = {"benchmark": "paired_nll", "images": len(images), "samples": args.samples, "threads": args.threads,
              "baseline": baseline, "generators": results,
              "differences": {name: paired_difference(results[baseline]["bounds"], result["bounds"])
                              for name, result in results.items() if name != baseline},
              "torch": torch.__version__, "machine": platform.machine()}
    atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    for checkpoint in checkpoints.values():
        checkpoint.unlink(missing_ok=True)
    for name, result in results.items():
        print(f"{name}: NLL {result['nll']:.2f} nats on {len(images)} images ({result['seconds']} s)")
    for name, difference in report["differences"].items():
        print(f"{name} − {baseline}: {difference['mean']:+.2f} ± {difference['sem']:.2f} nats (paired), "
              f"lower on {100 * difference['share_lower']:.0f} % of images")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
